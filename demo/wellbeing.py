"""Demo teams and weeks of wellbeing history, for `manage.py seed_demo` (so `make run` shows the live team view and
the OH reports with something in them). Synthetic and deterministic; idempotent: teams are made when missing,
history is added only for complete weeks that have none yet, and a few of the lead's team members are put on shift
"now" only when none of them is.

Two departments, teams of 8, 6, 4 and 5: the team of 4 is suppressed in the reports, and its sibling of 5 with it
(complementary suppression), while their department total shows. A few people consented to OH follow-up; some of
them, and some who did not, show a pattern that needs attention.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any

from django.contrib.auth.models import Group, User
from django.db import connection, transaction
from django.utils import timezone

from core.roles import Role
from intake.models import Category, Severity
from review.models import Queue
from wellbeing import health_access, rules, selectors
from wellbeing.models import (
    Break,
    CheckIn,
    Department,
    ExposureEntry,
    FollowUpConsent,
    QueuePolicy,
    Shift,
    Team,
    TeamMembership,
)

HISTORY_WEEKS = 6
SEED = 20_260_302


@dataclass(frozen=True)
class Person:
    username: str
    first: str
    last: str
    load: float = 0.6  # usual share of the cap per shift
    heavy_recently: bool = False  # the last two weeks close to the cap
    mood: float = 3.6  # usual 1-5 answer
    low_lately: bool = False  # the last check-ins low
    who5: int = 16  # usual raw WHO-5
    consents: bool = False


@dataclass(frozen=True)
class TeamSpec:
    department: str
    name: str
    queue: str
    lead: str
    people: tuple[Person, ...]
    severity_mix: tuple[int, int, int, int]  # weights of none / low / medium / severe items
    live: bool = False  # put some of them on shift now


TEAMS = (
    TeamSpec("Trust & Safety operations", "Riverbank first line", "reported-posts", "lead", (
        Person("moderator", "", "", load=0.55, consents=False),
        Person("demo-ana", "Ana", "Ibarra", load=0.62),
        Person("demo-bo", "Bo", "Lindqvist", load=0.5, mood=3.9),
        Person("demo-cem", "Cem", "Aksoy", load=0.58, who5=14),
        Person("demo-dara", "Dara", "Okafor", load=0.7, heavy_recently=True, consents=True),
        Person("demo-eli", "Eli", "Moreau", load=0.55, mood=3.0, low_lately=True, who5=11, consents=True),
        Person("demo-fin", "Fin", "Walsh", load=0.6, consents=True),
        Person("demo-gus", "Gus", "Haddad", load=0.72, heavy_recently=True),
    ), (30, 30, 25, 15), live=True),
    TeamSpec("Trust & Safety operations", "Harbourline marketplace", "marketplace-listings", "demo-lead-harbour", (
        Person("demo-hana", "Hana", "Sato", load=0.4),
        Person("demo-ivo", "Ivo", "Petrov", load=0.45, mood=3.8),
        Person("demo-jo", "Jo", "Mensah", load=0.42, consents=True),
        Person("demo-kai", "Kai", "Berger", load=0.38),
        Person("demo-lea", "Lea", "Novak", load=0.5, who5=15),
        Person("demo-max", "Max", "Duarte", load=0.44),
    ), (50, 30, 15, 5)),
    TeamSpec("Specialist review", "Northgate specialist", "specialist-violence", "demo-lead-northgate", (
        Person("demo-nia", "Nia", "Adeyemi", load=0.8, heavy_recently=True, mood=3.2),
        Person("demo-oli", "Oli", "Kowalski", load=0.75, who5=12),
        Person("demo-pia", "Pia", "Rossi", load=0.78, consents=True),
        Person("demo-raf", "Raf", "Silva", load=0.7),
    ), (10, 15, 30, 45)),
    TeamSpec("Specialist review", "Night review", "reported-posts", "demo-lead-night", (
        Person("demo-sam", "Sam", "Ortiz", load=0.6),
        Person("demo-tea", "Tea", "Horvat", load=0.55, mood=3.3),
        Person("demo-uma", "Uma", "Khan", load=0.65, low_lately=True, mood=2.8, who5=10),
        Person("demo-vic", "Vic", "Laine", load=0.6),
        Person("demo-wen", "Wen", "Zhao", load=0.58),
    ), (25, 30, 25, 20)),
)
HEALTH_ACCOUNT = "health"


def _account(username: str, first: str, last: str, role: Role) -> User:
    user, created = User.objects.get_or_create(username=username, defaults={"first_name": first, "last_name": last})
    if created:
        user.set_unusable_password()  # demo colleagues: nobody signs in as them
        user.save(update_fields=["password"])
    user.groups.add(Group.objects.get(name=role.value))
    return user


def _ensure_teams() -> dict[str, tuple[Team, TeamSpec, dict[str, User]]]:
    teams: dict[str, tuple[Team, TeamSpec, dict[str, User]]] = {}
    health = User.objects.filter(username=HEALTH_ACCOUNT).first()
    for spec in TEAMS:
        department, _ = Department.objects.get_or_create(name=spec.department)
        team, _ = Team.objects.get_or_create(department=department, name=spec.name)
        lead = User.objects.filter(username=spec.lead).first() or _account(
            spec.lead, spec.lead.split("-")[-1].title(), "(demo lead)", Role.TEAM_LEAD)
        team.leads.add(lead)
        if health is not None and not team.health_staff.filter(pk=health.pk).exists():
            granter = User.objects.filter(username="admin", is_superuser=True).first()
            if granter is not None:  # through the audited grant, as a real deployment would
                health_access.health_access_grant(team=team, staff=health, granted_by=granter, reason="demo data")
            else:
                team.health_staff.add(health)
        people: dict[str, User] = {}
        for person in spec.people:
            user = User.objects.filter(username=person.username).first() or _account(
                person.username, person.first, person.last, Role.MODERATOR)
            TeamMembership.objects.get_or_create(user=user, defaults={"team": team})
            people[person.username] = user
            if person.consents and not FollowUpConsent.objects.filter(user=user).exists():
                FollowUpConsent.objects.create(user=user, given=True,
                                               at=timezone.now() - timedelta(weeks=HISTORY_WEEKS + 1))
        teams[spec.name] = (team, spec, people)
    specialist = Queue.objects.filter(slug="specialist-violence").first()
    if specialist is not None:
        QueuePolicy.objects.get_or_create(queue=specialist, defaults={"specialist_category": Category.VIOLENCE,
                                                                      "exposure_cap_units": 180})
    return teams


class _Builder:
    """Collects rows for one bulk insert per model."""

    def __init__(self, policy: rules.EffectivePolicy, rng: random.Random) -> None:
        self.policy, self.rng = policy, rng
        self.entries: list[tuple[Any, ...]] = []
        self.breaks: list[Break] = []
        self.checkins: list[CheckIn] = []

    def shift(self, *, user: User, spec: TeamSpec, person: Person, queue: Queue | None, start: datetime,
              share: float, until: datetime | None = None, mood_low: bool = False, heavy: bool = False) -> Shift:
        """A shift from `start` with scheduled breaks, and items between them up to `share` of the cap (of the part
        of the shift done so far; a heavy shift works through heavier items, as close to the cap as time allows).
        Closed at its planned end unless `until` (now, for a shift still running)."""
        rng, policy = self.rng, self.policy
        ends = start + policy.shift_length
        stop = until or ends
        closed = until is None
        shift = Shift.objects.create(reviewer=user, started_at=start, ends_at=ends, day=timezone.localdate(start),
                                     ended_at=ends if closed else None,
                                     end_reason=Shift.EndReason.LENGTH if closed else "")
        pauses = self._breaks(shift=shift, person=person, start=start, stop=stop, closed=closed, mood_low=mood_low)
        done = (stop - start).total_seconds() / policy.shift_length.total_seconds()
        target = share * policy.cap_seconds * (1.0 if heavy else done)
        mix = (5, 10, 30, 55) if heavy else spec.severity_mix
        used, moment = 0, start + timedelta(minutes=2)
        severities = list(Severity.values)
        ops = connection.ops
        day = ops.adapt_datefield_value(shift.day)
        week = ops.adapt_datefield_value(selectors.week_start(shift.day))
        queue_id = queue.pk if queue is not None else None
        while used < target:
            counted = rng.randint(240, policy.item_seconds_max) if heavy else rng.randint(90, policy.item_seconds_max)
            for began, ended in pauses:  # nothing on screen during a break
                if moment < ended and moment + timedelta(seconds=counted) > began:
                    moment = ended + timedelta(seconds=30)
            if moment + timedelta(seconds=counted) > stop - timedelta(minutes=2):
                break
            severity = rng.choices(severities, weights=mix)[0]
            weight = policy.weight(severity)
            revealed = rng.choice([0, 0, 4, 8]) if severity >= Severity.MEDIUM else 0
            exposure = rules.weighted(counted, weight)
            # In the order of ENTRY_FIELDS, adapted for the database as the ORM would.
            self.entries.append((
                user.pk, shift.pk, queue_id, severity, Category.OTHER.value, weight,
                ops.adapt_datetimefield_value(moment),
                ops.adapt_datetimefield_value(moment + timedelta(seconds=counted)),
                counted, 1 if revealed else 0, revealed, counted, policy.reserve_for(severity), exposure, day, week,
            ))
            used += exposure
            moment += timedelta(seconds=counted + (rng.randint(5, 20) if heavy else rng.randint(20, 140)))
        if closed and rng.random() < 0.5:
            self.checkins.append(CheckIn(user=user, kind=CheckIn.Kind.SHIFT_END, created_at=ends,
                                         mood=self._mood(person, mood_low)))
        return shift

    def _mood(self, person: Person, low: bool) -> int:
        if low or self.rng.random() < 0.08:
            return self.rng.choice([1, 2])
        return min(5, max(1, round(self.rng.gauss(person.mood, 0.7))))

    def _breaks(self, *, shift: Shift, person: Person, start: datetime, stop: datetime, closed: bool,
                mood_low: bool) -> list[tuple[datetime, datetime]]:
        """Scheduled breaks every 50 minutes of work (some started by themselves when the window passed), now and
        then one the person chose; returns when each one ran."""
        rng, policy = self.rng, self.policy
        pauses = []
        due = start + policy.break_every
        while due < stop:
            late = rng.random() < 0.12
            began = due + (policy.break_window if late else timedelta(minutes=rng.randint(0, 4)))
            if began + policy.break_length > stop and not closed:
                break  # the break now running or due is written by the caller
            self.breaks.append(Break(reviewer=shift.reviewer, shift=shift, kind=Break.Kind.SCHEDULED, due_at=due,
                                     started_at=began, ends_at=began + policy.break_length,
                                     started_automatically=late, started_by=None if late else shift.reviewer))
            pauses.append((began, began + policy.break_length))
            if rng.random() < 0.35:
                self.checkins.append(CheckIn(user=shift.reviewer, kind=CheckIn.Kind.AFTER_BREAK,
                                             created_at=began + policy.break_length + timedelta(minutes=1),
                                             mood=self._mood(person, mood_low)))
            due = began + policy.break_length + policy.break_every
        if closed and rng.random() < 0.15 and len(pauses) > 3:
            chosen = pauses[2][1] + timedelta(minutes=20)
            self.breaks.append(Break(reviewer=shift.reviewer, shift=shift, kind=Break.Kind.VOLUNTARY,
                                     started_at=chosen, ends_at=chosen + timedelta(minutes=5),
                                     started_by=shift.reviewer))
            pauses.append((chosen, chosen + timedelta(minutes=5)))
        return sorted(pauses)

    def save(self) -> None:
        _insert_entries(self.entries)
        Break.objects.bulk_create(self.breaks, batch_size=2000)
        CheckIn.objects.bulk_create(self.checkins, batch_size=2000)


ENTRY_FIELDS = ("reviewer", "shift", "queue", "severity", "category", "weight_percent", "claimed_at", "ended_at",
                "screen_seconds", "reveal_count", "reveal_seconds", "counted_seconds", "reserved", "exposure", "day",
                "week")


def _insert_entries(rows: list[tuple[Any, ...]]) -> None:
    """Tens of thousands of ledger rows: one prepared INSERT run with executemany (bulk_create spends most of its
    time building model instances and a fresh statement per batch). Rows hold values already adapted."""
    if not rows:
        return
    fields = [ExposureEntry._meta.get_field(name) for name in ENTRY_FIELDS]
    # Not type-checked below: get_field may name a relation in general; these are columns
    columns = ", ".join(connection.ops.quote_name(str(f.column)) for f in fields)  # type: ignore[union-attr]
    sql = (f"INSERT INTO {connection.ops.quote_name(ExposureEntry._meta.db_table)} ({columns}) "  # noqa: S608
           f"VALUES ({', '.join(['%s'] * len(fields))})")
    with connection.cursor() as cursor:
        cursor.executemany(sql, rows)


def _who5(rng: random.Random, person: Person, low: bool) -> list[int]:
    raw = rng.randint(6, 11) if low else min(25, max(5, round(rng.gauss(person.who5, 2))))
    answers = [raw // 5] * 5
    for n in range(raw - sum(answers)):
        answers[n % 5] += 1
    return answers


def _history(teams: dict[str, tuple[Team, TeamSpec, dict[str, User]]], now: datetime) -> int:
    """Complete weeks before this one, for every demo person, where they have none yet."""
    this_monday = selectors.week_start(timezone.localdate(now))
    made = 0
    for offset in range(HISTORY_WEEKS, 0, -1):
        monday = this_monday - timedelta(weeks=offset)
        recent = offset <= 2
        for _team, spec, people in teams.values():
            queue = Queue.objects.filter(slug=spec.queue).first()
            for person in spec.people:
                user = people[person.username]
                if Shift.objects.filter(reviewer=user, day__gte=monday, day__lte=monday + timedelta(days=6)).exists():
                    continue
                rng = random.Random(f"{SEED}-{person.username}-{monday.isoformat()}")  # noqa: S311  (demo data)
                builder = _Builder(selectors.policy_effective(reviewer=user), rng)
                days = [0, 1, 2, 3, 4]
                days.remove(rng.choice(days))  # four shifts a week
                for day in days:
                    start = timezone.make_aware(datetime.combine(monday + timedelta(days=day), time(9, 0))) + \
                        timedelta(minutes=rng.randint(0, 30))
                    heavy = person.heavy_recently and recent and day != days[-1]
                    share = 0.97 if heavy else min(0.85, max(0.15, rng.gauss(person.load, 0.1)))
                    builder.shift(user=user, spec=spec, person=person, queue=queue, start=start, share=share,
                                  mood_low=person.low_lately and recent, heavy=heavy)
                    made += 1
                if rng.random() < (0.95 if len(spec.people) >= 5 else 0.8):
                    builder.checkins.append(CheckIn(
                        user=user, kind=CheckIn.Kind.WHO5,
                        created_at=timezone.make_aware(datetime.combine(monday + timedelta(days=days[0]),
                                                                        time(17, 10))),
                        who5_answers=(answers := _who5(rng, person, person.low_lately and recent)),
                        who5_raw=sum(answers)))
                builder.save()
    return made


def _live(teams: dict[str, tuple[Team, TeamSpec, dict[str, User]]], now: datetime) -> int:
    """Some of the lead's team on shift now (not the demo moderator: their shift is theirs to start)."""
    made = 0
    for _team, spec, people in teams.values():
        if not spec.live:
            continue
        colleagues = [p for p in spec.people if p.username != "moderator"]
        users = [people[p.username] for p in colleagues]
        if Shift.objects.filter(reviewer__in=users, ended_at__isnull=True, ends_at__gt=now).exists():
            continue
        queue = Queue.objects.filter(slug=spec.queue).first()
        for n, person in enumerate(colleagues[:5]):
            user = people[person.username]
            Shift.objects.filter(reviewer=user, ended_at__isnull=True).update(ended_at=now, end_reason="manual")
            rng = random.Random(f"{SEED}-{person.username}-live-{timezone.localdate(now)}")  # noqa: S311
            policy = selectors.policy_effective(reviewer=user)
            # Different points of the shift; the one who has had heavy weeks is near the cap again.
            started = now - timedelta(minutes=[95, 170, 55, 380, 210][n])
            builder = _Builder(policy, rng)
            share = 0.97 if person.heavy_recently else person.load
            shift = builder.shift(user=user, spec=spec, person=person, queue=queue, start=started, share=share,
                                  until=now, heavy=person.heavy_recently)
            if n == 1:  # on a break right now
                builder.breaks.append(Break(reviewer=user, shift=shift, kind=Break.Kind.SCHEDULED,
                                            due_at=now - timedelta(minutes=4), started_at=now - timedelta(minutes=3),
                                            ends_at=now - timedelta(minutes=3) + policy.break_length,
                                            started_by=user))
            builder.save()
            made += 1
    return made


def seed_wellbeing_demo(*, now: datetime | None = None) -> str:
    """Create what is missing; return a one-line summary."""
    now = now or timezone.now()
    with transaction.atomic():
        teams = _ensure_teams()
        shifts = _history(teams, now)
        live = _live(teams, now)
    sizes = ", ".join(str(len(spec.people)) for _team, spec, _people in teams.values())
    return (f"Wellbeing demo: {len(teams)} teams (sizes {sizes}); {shifts} past shifts added, {live} people put on "
            "shift now")
