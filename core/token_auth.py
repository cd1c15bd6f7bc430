"""DRF's token authentication with its read compiled (named in settings' DEFAULT_AUTHENTICATION_CLASSES).

A module of its own: DRF imports the classes its settings name while rest_framework.views is still loading, so
this must not import DRF's views (core.api_auth does).
"""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext_lazy as _
from rest_framework import exceptions
from rest_framework.authentication import TokenAuthentication

from core import compiled


class CompiledTokenAuthentication(TokenAuthentication):
    """DRF's token authentication, its one read (the token with its user) compiled once per process (core.compiled):
    every API request of a token client makes it, and Django built and compiled the queryset each time."""

    def authenticate_credentials(self, key: str) -> tuple[Any, Any]:
        from django.contrib.auth.models import User
        from rest_framework.authtoken.models import Token

        from core.roles import role_columns, roles_loaded

        def build(*, key: str) -> Any:
            # The token, its user and the user's roles (which every API view checks next): one read.
            roles = role_columns("user", "role_")
            return (Token.objects.filter(key=key).annotate(**roles)
                    .values(*compiled.model_paths(Token, ""), *compiled.model_paths(User, "user__"), *roles))

        found = compiled.rows("core.api_token", build, key=key)
        token = compiled.instance(Token, found[0], "") if found else None
        user = compiled.instance(User, found[0], "user__") if found else None
        if token is None or user is None:
            raise exceptions.AuthenticationFailed(_("Invalid token."))
        token.user = user
        roles_loaded(user, found[0], "role_")
        if not user.is_active:
            raise exceptions.AuthenticationFailed(_("User inactive or deleted."))
        return (user, token)
