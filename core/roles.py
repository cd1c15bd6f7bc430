"""The roles Veil knows, as Django groups, and the checks every view, API endpoint and socket uses."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from enum import StrEnum
from functools import wraps
from typing import Any, TypeVar

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, Group, User
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.db.models import Exists, OuterRef, QuerySet
from django.http import HttpRequest, HttpResponseBase
from django.utils.translation import gettext, gettext_lazy
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.views import APIView

from core import compiled


class Role(StrEnum):
    MODERATOR = "moderator"
    TEAM_LEAD = "team_lead"
    OCCUPATIONAL_HEALTH = "occupational_health"
    # Service accounts of requester systems that submit items through the API with a token.
    REQUESTER = "requester"


UserLike = AbstractBaseUser | AnonymousUser


def has_role(user: Any, *roles: Role) -> bool:
    """Superusers (admins) pass every role check except occupational health: health data stays with OH staff."""
    if user is None or not user.is_authenticated or not user.is_active:
        return False
    cached: set[str] | None = getattr(user, "_veil_roles", None)
    if cached is None:
        # Read on every request that checks a role (each claim and decision), unless the request's user was loaded
        # with them (role_columns): compiled once per process.
        cached = {row["name"] for row in compiled.rows(
            "core.roles", lambda *, user_id: role_groups(user_id).values("name"), user_id=user.pk)}
        user._veil_roles = cached
    if any(role.value in cached for role in roles):
        return True
    return bool(user.is_superuser) and Role.OCCUPATIONAL_HEALTH not in roles


def role_groups(user: Any) -> QuerySet[Group]:
    """The groups that give a user their roles: the one definition has_role reads, and role_columns loads."""
    return Group.objects.filter(user=user)


def role_columns(user_path: str, prefix: str) -> dict[str, Exists]:
    """Annotations that load the roles of the user at `user_path` (e.g. "user" from a token) with the read that
    loads the user: a boolean column `prefix` + role for each role, from role_groups. Give them to the user with
    roles_loaded, so has_role reads nothing more."""
    return {prefix + role.value: Exists(role_groups(OuterRef(user_path)).filter(name=role.value)) for role in Role}


def roles_loaded(user: Any, row: Mapping[str, Any], prefix: str) -> None:
    """The roles read by role_columns, kept on the user as has_role keeps what it reads."""
    user._veil_roles = {role.value for role in Role if row[prefix + role.value]}


def roles_of(user: Any) -> set[str]:
    return {role.value for role in Role if has_role(user, role)}


def roles_context(request: HttpRequest) -> dict[str, object]:
    user = getattr(request, "user", None)
    return {"veil_roles": roles_of(user) if user is not None else set()}


V = TypeVar("V", bound=Callable[..., HttpResponseBase])


def role_required(*roles: Role) -> Callable[[V], V]:
    """Anonymous -> login page; signed in without the role -> 403."""

    def decorator(view: V) -> V:
        @wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            if not has_role(request.user, *roles):
                raise PermissionDenied(gettext("Your role does not give access to this page."))
            return view(request, *args, **kwargs)

        # Not type-checked below: functools.wraps' result is not typed as the view it wraps
        return wrapped  # type: ignore[return-value]

    return decorator


class HasRole(BasePermission):
    """DRF permission: `permission_classes = [HasRole.for_roles(Role.MODERATOR)]`."""

    roles: tuple[Role, ...] = ()
    message = gettext_lazy("Your role does not allow this.")

    def has_permission(self, request: Request, view: APIView) -> bool:
        return has_role(request.user, *self.roles)

    @classmethod
    def for_roles(cls, *roles: Role) -> type[HasRole]:
        return type(f"HasRole_{'_'.join(r.value for r in roles)}", (cls,), {"roles": roles})


def signed_in(request: Any) -> User:
    """The signed-in user of a request (Django or DRF) that a role check has already let through."""
    user = request.user
    if not isinstance(user, User) or not user.is_authenticated:
        raise PermissionDenied(gettext("Sign in first."))
    return user
