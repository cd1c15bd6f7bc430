"""What a worker sees about their own data on My wellbeing: who looked at it and when, their consent to follow-up,
and who started the break they are on. It belongs to the worker (principle 3); leads and OH read through
oversight, and every one of their looks is listed here."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext

from wellbeing.models import Break, CheckInRead, DataAccess, FollowUpConsent, LeadAction


def display_name(user: User) -> str:
    return user.get_full_name() or user.get_username()



def break_started_by_lead(*, reviewer_id: int, now: datetime) -> bool:
    """Whether the break running now was started by someone else (a team lead), for the break screen's wording."""
    active = Break.objects.filter(reviewer_id=reviewer_id, started_at__lte=now, ends_at__gt=now,
                                  ended_at__isnull=True).exclude(started_by__isnull=True).first()
    return active is not None and active.started_by_id != reviewer_id



@dataclass(frozen=True)
class Look:
    day: date
    last_at: datetime
    who: str
    what: str
    times: int



def looks_at(*, user: User, since: datetime) -> list[Look]:
    """Who looked at this person's individual data, and when, newest first: live team views, OH follow-up pages,
    reads of their check-ins by occupational health, and what a lead did about their shift. Grouped per day, person
    and kind, so a lead's view left open does not bury everything else. Their own looks are not listed."""
    grouped: dict[tuple[date, int | None, str], list[datetime]] = {}
    names: dict[int | None, str] = {None: gettext("a deleted account")}

    def add(at: datetime, who: User | None, what: str) -> None:
        key = (timezone.localdate(at), who.pk if who is not None else None, what)
        grouped.setdefault(key, []).append(at)
        if who is not None:
            names[who.pk] = display_name(who)

    for access in DataAccess.objects.filter(subject=user, at__gte=since).exclude(viewer=user).select_related("viewer"):
        add(access.at, access.viewer, access.get_what_display())
    for read in (CheckInRead.objects.filter(subject=user, at__gte=since, allowed=True).exclude(reader=user)
                 .select_related("reader")):
        add(read.at, read.reader, gettext("Read your check-in answers (%(purpose)s)") % {"purpose": read.purpose})
    for action in LeadAction.objects.filter(subject=user, at__gte=since).select_related("lead"):
        add(action.at, action.lead, action.get_action_display())
    looks = [Look(day, max(times), names.get(who, "someone"), what, len(times))
             for (day, who, what), times in grouped.items()]
    return sorted(looks, key=lambda look: look.last_at, reverse=True)


def consenting(user_ids: Iterable[int]) -> set[int]:
    """Who has given (and not since withdrawn) consent to individual follow-up."""
    latest: dict[int, bool] = {}
    for user_id, given in (FollowUpConsent.objects.filter(user_id__in=list(user_ids)).order_by("at", "id")
                           .values_list("user_id", "given")):
        latest[user_id] = given
    return {user_id for user_id, given in latest.items() if given}



def consent_given(*, user: User) -> bool:
    return user.pk in consenting([user.pk])


def followup_consent_set(*, user: User, given: bool, now: datetime | None = None) -> FollowUpConsent | None:
    """Give or withdraw consent to be named to occupational health for follow-up. Recorded only when it changes.
    Refusing has no consequence anywhere: only the OH follow-up list reads it."""
    now = now or timezone.now()
    with transaction.atomic():
        User.objects.select_for_update().filter(pk=user.pk).first()
        current = FollowUpConsent.objects.filter(user=user).order_by("-at", "-id").first()
        if (current is not None and current.given) == given:
            return None
        return FollowUpConsent.objects.create(user=user, given=given, at=now)
