"""Occupational-health access to a team: granted and ended only by an audited action, visible to the team.

Team.health_staff decides who is occupational health for a team (its reports, its follow-up list and, for those who
consent, their check-ins). It changes through `health_access_grant` / `health_access_end` (the `health_access`
management command), which check who may hold the access and record who authorised it. Every change of the field,
whichever way it was made (a shell, a script, a data migration), is also recorded by the m2m_changed receiver below
as a HealthAccessGrant row, so nothing widens access silently; the team's members see the open rows on their own
wellbeing page. The Django admin shows the list and cannot change it, and superusers can never hold it: an
administrator cannot make themself occupational health with a few saves in the admin.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction
from django.db.models.signals import m2m_changed
from django.utils import timezone
from django.utils.translation import gettext

from core.errors import ReviewError
from core.roles import Role
from wellbeing.models import HealthAccessGrant, Team

GRANT_ACTION = "health_access"
OUTSIDE = "outside health_access"


@dataclass(frozen=True)
class _Actor:
    user: User | None
    reason: str


_acting: contextvars.ContextVar[_Actor | None] = contextvars.ContextVar("veil_health_access_actor", default=None)


@contextmanager
def _as(actor: User, reason: str) -> Iterator[None]:
    token = _acting.set(_Actor(actor, reason[:300]))
    try:
        yield
    finally:
        _acting.reset(token)


def check_health_staff(*, staff: User) -> None:
    """Raises ReviewError unless the account may be occupational health: an active, non-superuser member of the
    occupational_health group."""
    if staff.is_superuser:
        raise ReviewError("superuser_refused", gettext("%(username)s is a superuser. Administrators never hold "
                                                       "occupational-health access: use a separate, non-superuser "
                                                       "account for OH work.") % {
                                                           "username": staff.username}, status=400)
    if not staff.is_active:
        raise ReviewError("inactive", gettext("%(username)s is not an active account.") % {
            "username": staff.username}, status=400)
    if not staff.groups.filter(name=Role.OCCUPATIONAL_HEALTH.value).exists():
        raise ReviewError("not_oh", gettext("%(username)s is not in the occupational_health group.") % {
            "username": staff.username}, status=400)


def health_access_grant(*, team: Team, staff: User, granted_by: User, reason: str = "") -> HealthAccessGrant:
    """Make `staff` occupational health for `team`, recorded with who authorised it and why."""
    check_health_staff(staff=staff)
    if not granted_by.is_active:
        raise ReviewError("inactive", gettext("The account authorising the access must be active."), status=400)
    with transaction.atomic(), _as(granted_by, reason):
        team.health_staff.add(staff)
        _record(team_ids={team.pk}, staff_ids={staff.pk}, added=True)  # nothing new if the receiver recorded it
    return HealthAccessGrant.objects.get(team=team, staff=staff, ended_at__isnull=True)


def health_access_end(*, team: Team, staff: User, ended_by: User, reason: str = "") -> int:
    """End `staff`'s occupational-health access to `team`; returns how many open grants were closed (0 or 1)."""
    with transaction.atomic(), _as(ended_by, reason):
        was_open = HealthAccessGrant.objects.filter(team=team, staff=staff, ended_at__isnull=True).count()
        team.health_staff.remove(staff)
        _record(team_ids={team.pk}, staff_ids={staff.pk}, added=False)
    return was_open


def checkin_readers_of(*, user: User) -> list[HealthAccessGrant]:
    """The open grants of the person's team: who, besides themself, can read their check-ins (if they consent to
    follow-up) and since when."""
    return list(HealthAccessGrant.objects.filter(team__memberships__user=user, ended_at__isnull=True)
                .select_related("staff", "granted_by", "team").order_by("granted_at", "id"))


def _record(*, team_ids: set[int], staff_ids: set[int], added: bool) -> None:
    actor = _acting.get()
    now: datetime = timezone.now()
    how = GRANT_ACTION if actor is not None else OUTSIDE
    for team_id in team_ids:
        for staff_id in staff_ids:
            current = HealthAccessGrant.objects.filter(team_id=team_id, staff_id=staff_id, ended_at__isnull=True)
            if added and not current.exists():
                HealthAccessGrant.objects.create(team_id=team_id, staff_id=staff_id, granted_at=now, how=how,
                                                 granted_by=actor.user if actor else None,
                                                 reason=actor.reason if actor else "")
            elif not added:
                current.update(ended_at=now, ended_by=actor.user if actor else None)


def _health_staff_changed(sender: Any, instance: Any, action: str, reverse: bool, model: Any,
                          pk_set: set[int] | None, **kwargs: Any) -> None:
    if action == "pre_clear":
        # The ids are gone by post_clear, so they are read (and the grants closed) before.
        if reverse:
            team_ids = set(Team.objects.filter(health_staff=instance).values_list("pk", flat=True))
            _record(team_ids=team_ids, staff_ids={instance.pk}, added=False)
        else:
            _record(team_ids={instance.pk}, staff_ids=set(instance.health_staff.values_list("pk", flat=True)),
                    added=False)
        return
    if action not in ("post_add", "post_remove") or not pk_set:
        return
    added = action == "post_add"
    if reverse:  # user.teams_in_care.add(team...)
        _record(team_ids=set(pk_set), staff_ids={instance.pk}, added=added)
    else:
        _record(team_ids={instance.pk}, staff_ids=set(pk_set), added=added)


def connect() -> None:
    m2m_changed.connect(_health_staff_changed, sender=Team.health_staff.through, dispatch_uid="veil-health-access")
