"""Helpers shared by the team-lead and occupational-health tests (no tests in this module)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta

import pytest
from django.contrib.auth.models import User

from tests.helpers.factories import make_user
from wellbeing import rules, selectors
from wellbeing.models import Break, Department, ExposureEntry, Shift, Team, TeamMembership

# A Monday: weeks of history before it are complete weeks.
MONDAY = date(2026, 3, 2)
NOW = datetime(2026, 3, 11, 10, 0, tzinfo=UTC)  # the Wednesday after the week of MONDAY + 1 week


@pytest.fixture
def fast_passwords(settings):
    """A test module makes its accounts quickly with `pytestmark = pytest.mark.usefixtures("fast_passwords")` (its
    tests sign in with force_login). Not for browser tests: the server process checks passwords with the production
    hashers."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]



def make_team(name: str, *, department: Department | str, members: Iterable[User] = (), leads: Iterable[User] = (),
              health: Iterable[User] = ()) -> Team:
    if isinstance(department, str):
        department = Department.objects.get_or_create(name=department)[0]
    team = Team.objects.create(name=name, department=department)
    for user in members:
        TeamMembership.objects.create(team=team, user=user)
    team.leads.add(*leads)
    team.health_staff.add(*health)
    return team


def people(prefix: str, count: int) -> list[User]:
    return [make_user(f"{prefix}{n}", "moderator") for n in range(count)]


def past_shift(user: User, day: date, *, units: dict[int, float] | None = None, reveals: int = 0,
               breaks_due: int = 0, breaks_taken: int = 0, auto: int = 0) -> Shift:
    """A finished shift on `day` (09:00-17:00 UTC) with settled exposure of `units` per severity (minutes of
    severe-equivalent) and scheduled breaks."""
    start = datetime(day.year, day.month, day.day, 9, 0, tzinfo=UTC)
    shift = Shift.objects.create(reviewer=user, started_at=start, ends_at=start + timedelta(hours=8),
                                 ended_at=start + timedelta(hours=8), end_reason="length", day=day)
    policy = selectors.policy_effective(reviewer=user)
    moment = start + timedelta(minutes=5)
    for severity, amount in (units or {}).items():
        seconds = round(amount * 60)
        weight = policy.weight(severity)
        while seconds > 0:
            exposure = min(seconds, rules.weighted(policy.item_seconds_max, weight))
            ExposureEntry.objects.create(
                reviewer=user, shift=shift, severity=severity, category="other", weight_percent=weight,
                claimed_at=moment, ended_at=moment + timedelta(seconds=60), screen_seconds=60, counted_seconds=60,
                reveal_count=reveals, reveal_seconds=reveals * 5, reserved=policy.reserve_for(severity),
                exposure=exposure, day=day, week=selectors.week_start(day))
            reveals = 0
            seconds -= exposure
            moment += timedelta(minutes=2)
    for n in range(breaks_due):
        due = start + timedelta(minutes=50 * (n + 1))
        taken = n < breaks_taken
        Break.objects.create(reviewer=user, shift=shift, kind="scheduled", due_at=due,
                             started_at=due if taken else None, ends_at=due + timedelta(minutes=10) if taken else None,
                             started_automatically=taken and n < auto)
    return shift
