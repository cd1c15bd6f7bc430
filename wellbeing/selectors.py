"""Reads for wellbeing: effective policy, break state, exposure sums, and check-ins (every read of those logged)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, cast

from django.contrib.auth.models import User
from django.db.models import Count, Exists, F, Func, IntegerField, Max, Min, Model, Q, QuerySet, Subquery, Sum
from django.db.models.functions import Coalesce
from django.utils import formats, timezone
from django.utils.translation import gettext

from core import compiled
from core.roles import Role, has_role
from intake.models import Category, Severity
from wellbeing import rules
from wellbeing.models import (
    Break,
    CheckIn,
    CheckInRead,
    CheckInReadRefused,
    ExposureEntry,
    OrganisationPolicy,
    PersonalPolicy,
    QueuePolicy,
    Shift,
    TeamMembership,
    TeamPolicy,
    _checkin_read_allowed,
)

# ---- policy --------------------------------------------------------------------------------------------------------

if TYPE_CHECKING:
    from review.models import Queue


def personal_policy_of(*, user: User) -> PersonalPolicy:
    return PersonalPolicy.objects.filter(user=user).first() or PersonalPolicy(user=user)


@dataclass(frozen=True)
class PolicyRows:
    """The policy rows that apply to a reviewer (and a queue), as stored: each layer after the organisation's only
    tightens it (rules.policy_combine)."""

    organisation: OrganisationPolicy
    queue: QueuePolicy | None
    team_id: int | None
    team: TeamPolicy | None
    personal: PersonalPolicy | None

    @property
    def layers(self) -> list[rules.PolicyLayer]:
        """Organisation, then queue, then the reviewer's team, then personal. The order does not change the result,
        since every layer after the first can only tighten."""
        rows: list[tuple[str, Any]] = [("organisation", self.organisation), ("queue", self.queue),
                                       ("team", self.team), ("personal", self.personal)]
        return [rules.PolicyLayer.from_model(name, row) for name, row in rows if row is not None]

    @property
    def opted_out(self) -> frozenset[str]:
        """Categories the reviewer opted out of, except the one this queue is the specialist queue for."""
        if self.personal is None or not self.personal.opted_out_categories:
            return frozenset()
        opted_out = {c for c in self.personal.opted_out_categories if c in Category.values}
        opted_out.discard(self.queue.specialist_category if self.queue is not None else "")
        return frozenset(opted_out)


def _with_own_policies(reviewer_id: int) -> QuerySet[User]:
    """The reviewer with their personal policy and their team's policy, in one read."""
    return User.objects.filter(pk=reviewer_id).select_related("wellbeing_policy", "team_membership__team__policy")


def _queue_policy_row(queue_id: int) -> QuerySet[QueuePolicy]:
    return QueuePolicy.objects.filter(queue_id=queue_id)


def queue_policy_of(*, queue_id: int) -> QueuePolicy | None:
    """The queue's own wellbeing policy, if it has one. Compiled once per process."""
    return compiled.first("wellbeing.queue_policy", QueuePolicy, lambda *, queue_id: _queue_policy_row(queue_id),
                          queue_id=queue_id)


def _rows_of(user: User | None, queue: Queue | None) -> PolicyRows:
    membership: TeamMembership | None = getattr(user, "team_membership", None)
    return PolicyRows(
        organisation=OrganisationPolicy.objects.current(),
        queue=queue_policy_of(queue_id=queue.pk) if queue is not None else None,
        team_id=membership.team_id if membership is not None else None,
        team=getattr(membership.team, "policy", None) if membership is not None else None,
        personal=getattr(user, "wellbeing_policy", None),
    )


def policy_rows(*, reviewer: User | int, queue: Queue | None = None) -> PolicyRows:
    reviewer_id = reviewer if isinstance(reviewer, int) else reviewer.pk
    return _rows_of(_with_own_policies(reviewer_id).first(), queue)


def settlement_policy(*, organisation: OrganisationPolicy | None = None) -> rules.EffectivePolicy:
    """What settling an item needs of the policy: only the organisation's own settings (rules.ORGANISATION_ONLY:
    the bounds of one item and the extra for revealed seconds; the weight was fixed on the entry at claim), so one
    read instead of every layer. `organisation`: the row as a read of the caller's loaded it (or its defaults);
    read here when not given."""
    row = organisation if organisation is not None else OrganisationPolicy.objects.current()
    return rules.policy_combine([rules.PolicyLayer.from_model("organisation", row)])


def policy_layers(*, reviewer: User | int, queue: Queue | None = None) -> list[rules.PolicyLayer]:
    return policy_rows(reviewer=reviewer, queue=queue).layers


def policy_effective(*, reviewer: User | int, queue: Queue | None = None) -> rules.EffectivePolicy:
    return rules.policy_combine(policy_layers(reviewer=reviewer, queue=queue))


def categories_excluded(*, reviewer: User, queue: Queue) -> frozenset[str]:
    """Categories the reviewer opted out of, except the one this queue is the specialist queue for."""
    return policy_rows(reviewer=reviewer, queue=queue).opted_out


# ---- shifts and breaks ----------------------------------------------------------------------------------------------


def shift_open(*, reviewer_id: int) -> Shift | None:
    return Shift.objects.filter(reviewer_id=reviewer_id, ended_at__isnull=True).first()


def shift_latest(*, reviewer_id: int) -> Shift | None:
    return Shift.objects.filter(reviewer_id=reviewer_id).order_by("-started_at").first()


def last_activity(*, shift: Shift) -> datetime | None:
    """When the reviewer last finished an item in this shift (entries settle as their claim ends)."""
    found = last_finished_entry(shift=shift)
    return found.ended_at if found is not None else None


def is_holding(*, reviewer_id: int, now: datetime) -> bool:
    return _held_claims(reviewer_id, now).exists()


@dataclass(frozen=True)
class BreakSituation:
    """Everything the break rules looked at, so the gate can record exactly what they decided."""

    state: rules.BreakState
    work_since: datetime
    last_activity: datetime | None
    active: Break | None
    pending: Break | None


def break_situation(
    *, shift: Shift, policy: rules.EffectivePolicy, now: datetime, holding: bool, has_breaks: bool = True,
    activity: tuple[datetime | None] | None = None,
) -> BreakSituation:
    """`has_breaks=False` and `activity=(last_activity,)`: the caller has read both already (the claim gate's
    snapshot), so neither is asked again."""
    rows = list(Break.objects.filter(shift=shift)) if has_breaks else []
    started = [b for b in rows if b.started_at is not None]
    pending = next((b for b in rows if b.kind == Break.Kind.SCHEDULED and b.started_at is None), None)
    spans = {
        b.pk: rules.BreakSpan(b.started_at, b.effective_end, b.kind == Break.Kind.VOLUNTARY)
        for b in started
        if b.started_at is not None
    }
    active = next((b for b in started if b.pk in spans and spans[b.pk].started_at <= now < spans[b.pk].ends_at), None)
    work_since = rules.work_stretch_start(
        shift_started_at=shift.started_at, rested_at=shift.rested_at, breaks=list(spans.values()), policy=policy,
        now=now,
    )
    last = last_activity(shift=shift) if activity is None else activity[0]
    state = rules.break_phase(
        policy=policy, work_since=work_since, last_activity=last, holding=holding,
        active=spans[active.pk] if active is not None else None, now=now,
    )
    return BreakSituation(state=state, work_since=work_since, last_activity=last, active=active, pending=pending)


def last_rest_end(*, shift: Shift, now: datetime) -> datetime:
    """When the reviewer last came back to work, from the record: the end of the latest break of this shift that
    has ended (of any kind, however short), the last rest the claim gate recorded, or the shift's start. What "since
    the last break" means wherever it is shown (services.breaks_catch_up records breaks that began by themselves)."""
    ends: list[datetime] = [b.effective_end for b in Break.objects.filter(shift=shift, started_at__isnull=False,
                                                                          started_at__lte=now)]
    candidates = [shift.started_at, *(e for e in ends if e is not None and e <= now)]
    if shift.rested_at is not None and shift.rested_at <= now:
        candidates.append(shift.rested_at)
    return max(candidates)


def break_state(*, reviewer_id: int, now: datetime | None = None) -> rules.BreakState:
    """Where a reviewer stands in the break schedule. Read-only: the claim gate records what this describes."""
    now = now or timezone.now()
    shift = shift_open(reviewer_id=reviewer_id)
    if shift is None or now >= shift.ends_at:
        # Off shift, a voluntary break may still be running.
        loose = Break.objects.filter(reviewer_id=reviewer_id, shift__isnull=True, started_at__lte=now,
                                     ends_at__gt=now, ended_at__isnull=True).first()
        if loose is not None and loose.started_at and loose.ends_at:
            return rules.BreakState(rules.Phase.ON_BREAK, break_starts_at=loose.started_at,
                                    break_ends_at=loose.ends_at, voluntary=True, next_change_at=loose.ends_at)
        return rules.BreakState(rules.Phase.OFF_SHIFT)
    policy = policy_effective(reviewer=reviewer_id)
    holding = is_holding(reviewer_id=reviewer_id, now=now)
    return break_situation(shift=shift, policy=policy, now=now, holding=holding).state


def clock_phrase(moment: datetime | None, *, now: datetime | None = None) -> str:
    """"at 14:20", or "tomorrow at 04:00": for the middle of a sentence."""
    if moment is None:
        return ""
    local = timezone.localtime(moment)
    if local.date() == timezone.localtime(now or timezone.now()).date():
        return gettext("at %(time)s") % {"time": formats.time_format(local, "H:i")}
    return clock(moment, now=now)


def clock(moment: datetime | None, *, now: datetime | None = None) -> str:
    """A plain local time ("14:20"), with the day when it is not today. Never a countdown."""
    if moment is None:
        return ""
    local = timezone.localtime(moment)
    today = timezone.localtime(now or timezone.now()).date()
    if local.date() == today:
        return formats.time_format(local, "H:i")
    if local.date() == today + timedelta(days=1):
        return gettext("tomorrow at %(time)s") % {"time": formats.time_format(local, "H:i")}
    return gettext("%(day)s at %(time)s") % {"day": formats.date_format(local, "D j M"),
                                             "time": formats.time_format(local, "H:i")}


def clock_full(moment: datetime, *, seconds: bool = False) -> str:
    """A moment with its date and time zone, "Sun 6 Dec 2026, 16:52 UTC", for refusals that say when trying again
    can work: the API client and a reader in another zone can both place it (the console shows it in the reader's
    own zone too)."""
    local = timezone.localtime(moment)
    time_text = formats.time_format(local, "H:i:s" if seconds else "H:i")
    return f"{formats.date_format(local, 'D j M Y')}, {time_text} {local.tzname() or 'UTC'}"


def break_message(state: rules.BreakState, *, now: datetime | None = None) -> str:
    """One calm sentence about the break, for the banner, the break screen and websocket pushes."""
    if state.phase == rules.Phase.DUE:
        return (gettext("A break is due. Finish what you are doing and start it when it suits you; new items pause at "
                        "%(now)s.") % {"now": clock(state.window_ends_at, now=now)})
    if state.phase == rules.Phase.FINISH_ITEM:
        return gettext("Your break is next: finish this item, or give it back, and the break begins. No new items "
                       "until then.")
    if state.phase == rules.Phase.ON_BREAK:
        return gettext("You are on a break until %(now)s.") % {"now": clock(state.break_ends_at, now=now)}
    return ""


def break_payload(state: rules.BreakState, *, now: datetime | None = None) -> dict[str, Any]:
    """What a websocket push or the state endpoint says about a break (JSON-ready)."""

    def iso(moment: datetime | None) -> str | None:
        return moment.isoformat() if moment is not None else None

    return {
        "phase": state.phase.value,
        "message": break_message(state, now=now),
        "due_at": iso(state.due_at),
        "window_ends_at": iso(state.window_ends_at),
        "ends_at": iso(state.break_ends_at),
        "ends_at_text": clock(state.break_ends_at, now=now),
        "voluntary": state.voluntary,
    }


@dataclass(frozen=True)
class BreakCounts:
    due: int
    taken: int
    voluntary: int
    cut_short: int


def breaks_counted(*, reviewer: User, since: datetime, until: datetime | None = None) -> BreakCounts:
    """Scheduled breaks due and taken, voluntary breaks, and breaks cut short, from `since`."""
    rows = Break.objects.filter(reviewer=reviewer).filter(
        Q(started_at__gte=since) | Q(started_at__isnull=True, due_at__gte=since)
    )
    if until is not None:
        rows = rows.filter(Q(started_at__lt=until) | Q(started_at__isnull=True, due_at__lt=until))
    found = rows.aggregate(
        due=Count("pk", filter=Q(kind=Break.Kind.SCHEDULED)),
        taken=Count("pk", filter=Q(kind=Break.Kind.SCHEDULED, started_at__isnull=False)),
        voluntary=Count("pk", filter=Q(kind=Break.Kind.VOLUNTARY)),
        cut_short=Count("pk", filter=Q(ended_at__isnull=False, ended_at__lt=F("ends_at"))),
    )
    return BreakCounts(**found)


def break_recent(*, reviewer: User, now: datetime, within: timedelta = timedelta(minutes=30)) -> Break | None:
    """The break that ended most recently, if it ended within `within` (for the welcome-back check-in)."""
    candidates = Break.objects.filter(reviewer=reviewer, started_at__lte=now,
                                      started_at__gte=now - within - timedelta(hours=2)).order_by("-started_at")
    for candidate in candidates[:3]:
        end = candidate.effective_end
        if end is not None and now - within <= end <= now:
            return candidate
    return None


# ---- exposure ------------------------------------------------------------------------------------------------------


class _Sum(Func):
    """SUM without GROUP BY: an aggregate over a filtered queryset that stays one scalar subquery."""

    function = "SUM"
    output_field = IntegerField()


def _in_shift(shift_id: int | None) -> Q:
    """Entries of the shift; of no shift, none (every entry belongs to one)."""
    return Q(shift_id=shift_id) if shift_id is not None else Q(pk__in=[])


def _spoken_for(shift_id: int | None) -> QuerySet[ExposureEntry, Any]:
    """Weighted seconds of the shift's cap in use: settled exposure, plus reservations of items still open (or whose
    item was purged before it was settled: they count their reservation, the most they could have been)."""
    return (ExposureEntry.objects.filter(_in_shift(shift_id)).order_by()
            .values(total=Coalesce(_Sum(Coalesce("exposure", "reserved")), 0)))


def _severe_in_last_hour(reviewer_id: int, now: datetime) -> QuerySet[ExposureEntry]:
    return ExposureEntry.objects.filter(reviewer_id=reviewer_id, severity=Severity.SEVERE,
                                        claimed_at__gt=now - timedelta(hours=1), claimed_at__lte=now)


def _severe_ended(reviewer_id: int) -> QuerySet[ExposureEntry]:
    return ExposureEntry.objects.filter(reviewer_id=reviewer_id, severity=Severity.SEVERE, ended_at__isnull=False)


def _finished_in(shift_id: int | None) -> QuerySet[ExposureEntry]:
    return ExposureEntry.objects.filter(_in_shift(shift_id), ended_at__isnull=False).order_by("-ended_at", "-pk")


def _live(now: datetime, through: str = "") -> Q:
    """A live lease: a claim not ended and not run out (`through`: the path to the claim, e.g. "claim__")."""
    return Q(**{f"{through}ended_at__isnull": True, f"{through}expires_at__gt": now})


def _lapsed(now: datetime, through: str = "") -> Q:
    """A lapsed lease: a claim not ended whose time ran out (the claim path sweeps these back first)."""
    return Q(**{f"{through}ended_at__isnull": True, f"{through}expires_at__lte": now})


def holding_entries(*, now: datetime) -> QuerySet[ExposureEntry]:
    """Ledger entries of items someone holds now: a live lease. Every claim opens its entry in the claim's
    transaction (exposure_open) and settles it where the claim ends, so "unsettled, its claim live" is "held";
    wellbeing reads it through the entry's own foreign key, never importing review."""
    return ExposureEntry.objects.filter(_live(now, "claim__"), exposure__isnull=True)


def claim_model() -> type[Model]:
    """The claim model, reached through the ledger entry's own foreign key (wellbeing does not import review)."""
    return ExposureEntry._meta.get_field("claim").related_model


def reveal_model() -> type[Model]:
    """The model of a claim's reveals, reached the same way."""
    return cast("type[Model]", claim_model()._meta.get_field("reveals").related_model)


# The claim gate's two lease reads go to the claims themselves, each on the claim's own index (the reviewer's open
# claims; a queue's open claims by expiry), not through the ledger: joined from the entries, PostgreSQL could plan
# them as a scan of every open claim for each unsettled entry when its statistics were taken with few leases open,
# which with a thousand moderators holding items cost 8-15 ms a claim (issue 20). A claim is open exactly while
# its entry is unsettled (both change in Claim.end's transaction), so these are the same leases.
def _held_claims(reviewer_id: int, now: datetime) -> QuerySet[Model]:
    return claim_model()._default_manager.filter(_live(now), reviewer_id=reviewer_id)


def _lapsed_in(queue_id: int, now: datetime) -> QuerySet[Model]:
    """Leases in this queue that ran out and were not taken back yet (the claim path sweeps them first)."""
    return claim_model()._default_manager.filter(_lapsed(now), queue_id=queue_id)


def exposure_spoken_for(*, shift: Shift) -> int:
    return int(_spoken_for(shift.pk)[0]["total"])


def severe_in_last_hour(*, reviewer: User, now: datetime) -> tuple[int, datetime | None]:
    found = _severe_in_last_hour(reviewer.pk, now).aggregate(count=Count("pk"), oldest=Min("claimed_at"))
    return int(found["count"]), found["oldest"]


def last_finished_entry(*, shift: Shift) -> ExposureEntry | None:
    return _finished_in(shift.pk).first()


def last_severe_end(*, reviewer: User) -> datetime | None:
    end: datetime | None = _severe_ended(reviewer.pk).aggregate(end=Max("ended_at"))["end"]
    return end


@dataclass(frozen=True)
class GateSnapshot:
    """Everything the claim gate (services.claim_gate) decides on, read under the reviewer's shift lock."""

    held_claim_id: int | None
    rows: PolicyRows
    # Of the shift (zero/None without one):
    spoken_for: int  # weighted seconds: settled exposure + open reservations
    break_rows: int
    last_finished: tuple[datetime, int] | None  # when the last item of the shift ended, and its severity
    # Of the reviewer, across shifts:
    severe_last_hour: int
    severe_oldest: datetime | None
    last_severe_end: datetime | None
    expired_leases_in_queue: bool

    @property
    def layers(self) -> list[rules.PolicyLayer]:
        return self.rows.layers

    @property
    def policy(self) -> rules.EffectivePolicy:
        return rules.policy_combine(self.rows.layers)

    @property
    def opted_out(self) -> frozenset[str]:
        return self.rows.opted_out

    @property
    def team_id(self) -> int | None:
        return self.rows.team_id

    @property
    def last_activity(self) -> datetime | None:
        return self.last_finished[0] if self.last_finished else None

    @property
    def last_finished_severity(self) -> int | None:
        return self.last_finished[1] if self.last_finished else None


def gate_snapshot(*, reviewer: User, queue: Queue, shift: Shift | None, now: datetime) -> GateSnapshot:
    """Read what the claim gate decides on. Call with the reviewer's shift row locked (when there is one), and not
    in the statement that waited for it: in READ COMMITTED a statement sees what was committed when it started.

    The reads above, each the one definition of its figure, go to the database as scalar subqueries of one
    statement, with the reviewer's personal and team policies (joined) and the organisation's and the queue's
    (compiled.columns_of): one round trip on the hottest path Veil has."""
    personal, team = "wellbeing_policy__", "team_membership__team__policy__"
    organisation, queue_layer = "organisation_policy_", "queue_policy_"

    def build(*, reviewer_id: int, queue_id: int, shift_id: int | None, now: datetime) -> QuerySet[User, Any]:
        severe_hour = _severe_in_last_hour(reviewer_id, now).order_by()
        last_finished = _finished_in(shift_id)
        query: QuerySet[User, Any] = (
            _with_own_policies(reviewer_id)
            .annotate(
                held=Subquery(_held_claims(reviewer_id, now).order_by("-claimed_at").values("pk")[:1]),
                spoken=Subquery(_spoken_for(shift_id)),
                break_rows=Subquery(Break.objects.filter(Q(shift_id=shift_id) if shift_id is not None
                                                         else Q(pk__in=[]))
                                    .order_by()
                                    .values(n=Func("pk", function="COUNT"))),
                finished_at=Subquery(last_finished.values("ended_at")[:1]),
                finished_severity=Subquery(last_finished.values("severity")[:1]),
                severe_count=Subquery(severe_hour.values(n=Func("pk", function="COUNT"))),
                severe_oldest=Subquery(severe_hour.values(oldest=Func("claimed_at", function="MIN"))),
                severe_end=Subquery(_severe_ended(reviewer_id).order_by("-ended_at").values("ended_at")[:1]),
                expired=Exists(_lapsed_in(queue_id, now)),
                **compiled.columns_of(OrganisationPolicy, OrganisationPolicy.objects.row(), organisation),
                **compiled.columns_of(QueuePolicy, _queue_policy_row(queue_id), queue_layer),
            )
            # The policy rows select_related would load, as columns: compiled once, bound on every claim.
            .values("held", "spoken", "break_rows", "finished_at", "finished_severity", "severe_count",
                    "severe_oldest", "severe_end", "expired", "team_membership__team_id",
                    *compiled.model_paths(PersonalPolicy, personal), *compiled.model_paths(TeamPolicy, team),
                    *compiled.model_paths(OrganisationPolicy, organisation),
                    *compiled.model_paths(QueuePolicy, queue_layer))
        )
        return query

    found_rows = compiled.rows("wellbeing.gate_snapshot", build, reviewer_id=reviewer.pk, queue_id=queue.pk,
                               shift_id=shift.pk if shift is not None else None, now=now)
    if not found_rows:
        raise User.DoesNotExist("User matching query does not exist.")
    found = found_rows[0]
    finished_at = found["finished_at"]
    rows = PolicyRows(
        organisation=OrganisationPolicy.objects.or_defaults(compiled.instance(OrganisationPolicy, found, organisation)),
        queue=compiled.instance(QueuePolicy, found, queue_layer),
        team_id=found["team_membership__team_id"],
        team=compiled.instance(TeamPolicy, found, team),
        personal=compiled.instance(PersonalPolicy, found, personal),
    )
    return GateSnapshot(
        held_claim_id=found["held"],
        rows=rows,
        spoken_for=int(found["spoken"] or 0),
        break_rows=int(found["break_rows"] or 0),
        last_finished=(finished_at, int(found["finished_severity"])) if finished_at is not None else None,
        severe_last_hour=int(found["severe_count"] or 0),
        severe_oldest=found["severe_oldest"],
        last_severe_end=found["severe_end"],
        expired_leases_in_queue=bool(found["expired"]),
    )


Grouping = Literal["day", "week", "shift", "reviewer"]


def exposure_totals(
    *, group_by: Grouping, reviewers: QuerySet[User] | list[int] | None = None, since: date | None = None,
    until: date | None = None,
) -> list[dict[str, Any]]:
    """Exposure sums per reviewer and day, week or shift (or per reviewer overall), for pages and later for the
    lead dashboard and the OH report. Weighted seconds: `exposure_seconds` of settled entries, `reserved_open` of
    items still open; `screen_total` and `reveal_total` are plain seconds, `reveals` a count."""
    rows = ExposureEntry.objects.all()
    if reviewers is not None:
        rows = rows.filter(reviewer__in=reviewers)
    if since is not None:
        rows = rows.filter(day__gte=since)
    if until is not None:
        rows = rows.filter(day__lte=until)
    keys = ["reviewer"] if group_by == "reviewer" else ["reviewer", group_by]
    return list(
        rows.values(*keys)
        .annotate(
            items=Count("pk"),
            severe_items=Count("pk", filter=Q(severity=Severity.SEVERE)),
            exposure_seconds=Coalesce(Sum("exposure"), 0),
            reserved_open=Coalesce(Sum("reserved", filter=Q(exposure__isnull=True)), 0),
            screen_total=Coalesce(Sum("screen_seconds"), 0),
            reveals=Coalesce(Sum("reveal_count"), 0),
            reveal_total=Coalesce(Sum("reveal_seconds"), 0),
        )
        .order_by(*keys)
    )


def week_start(day: date) -> date:
    return day - timedelta(days=day.weekday())


@dataclass(frozen=True)
class Gauge:
    """Exposure against a cap, in words first: never a countdown."""

    used_seconds: int
    cap_seconds: int
    near_percent: int
    scope: Literal["shift", "day"] = "shift"

    @property
    def used_minutes(self) -> int:
        return round(self.used_seconds / 60)

    @property
    def cap_minutes(self) -> int:
        return round(self.cap_seconds / 60)

    @property
    def share(self) -> float:
        return self.used_seconds / self.cap_seconds if self.cap_seconds else 0.0

    @property
    def step(self) -> int:
        """The share used in 5 % steps, for the bar's width class (no inline styles under the CSP)."""
        return min(100, round(self.share * 20) * 5)

    @property
    def level(self) -> str:
        if self.share >= 1:
            return "limit"
        if self.share * 100 >= self.near_percent:
            return "most"
        return "light" if self.share < 0.25 else "moderate"

    @property
    def used_words(self) -> str:
        return duration_words(self.used_minutes)

    @property
    def detail(self) -> str:
        """'About 1 h 20 min' or 'Under a minute', of severe-equivalent exposure."""
        if self.used_minutes < 1:
            return gettext("Under a minute")
        return gettext("About %(duration)s") % {"duration": self.used_words}

    @property
    def words(self) -> str:
        if self.scope == "day":
            return {"light": gettext("Light so far"), "moderate": gettext("Moderate"), "most": gettext("A heavy day"),
                    "limit": gettext("A full shift's limit or more")}[self.level]
        return {
            "light": gettext("Light so far"),
            "moderate": gettext("Moderate"),
            "most": gettext("Most of the limit used: milder items come first now"),
            "limit": gettext("Limit reached: no more items this shift"),
        }[self.level]


def duration_words(minutes: int, *, seconds: int | None = None) -> str:
    if minutes < 1:
        return gettext("%(seconds)s seconds") % {"seconds": seconds} if seconds else gettext("under a minute")
    hours, rest = divmod(minutes, 60)
    if not hours:
        return f"{rest} min"
    return f"{hours} h {rest} min" if rest else f"{hours} h"


@dataclass(frozen=True)
class DayExposure:
    day: date
    gauge: Gauge
    items: int


@dataclass(frozen=True)
class WellbeingOverview:
    policy: rules.EffectivePolicy
    shift: Shift | None
    shift_gauge: Gauge | None
    today: Gauge
    week_days: list[DayExposure]
    week_total_minutes: int
    breaks_today: BreakCounts
    breaks_week: BreakCounts
    break_state: rules.BreakState
    who5_due: bool
    next_shift_at: datetime | None


def overview(*, reviewer: User, now: datetime) -> WellbeingOverview:
    """Everything the My wellbeing page shows, except check-ins (read separately, and logged)."""
    policy = policy_effective(reviewer=reviewer)
    shift = shift_open(reviewer_id=reviewer.pk)
    if shift is not None and now >= shift.ends_at:
        shift = None
    today = timezone.localdate(now)
    monday = week_start(today)
    by_day = {row["day"]: row for row in exposure_totals(group_by="day", reviewers=[reviewer.pk], since=monday,
                                                           until=today)}

    def gauge(seconds: int, scope: Literal["shift", "day"] = "day") -> Gauge:
        return Gauge(used_seconds=seconds, cap_seconds=policy.cap_seconds, near_percent=policy.near_cap_percent,
                     scope=scope)

    week_days = []
    for offset in range(7):
        day = monday + timedelta(days=offset)
        if day > today:
            break
        row = by_day.get(day, {})
        week_days.append(DayExposure(day=day, gauge=gauge(int(row.get("exposure_seconds", 0))),
                                     items=int(row.get("items", 0))))
    start_of_day = timezone.make_aware(datetime.combine(today, datetime.min.time()))
    start_of_week = timezone.make_aware(datetime.combine(monday, datetime.min.time()))
    latest = shift_latest(reviewer_id=reviewer.pk)
    next_shift_at = None
    if shift is None and latest is not None and latest.ended_at is not None:
        next_shift_at = max(latest.ended_at + policy.rest_between_shifts, now)
        if latest.end_reason == Shift.EndReason.MANUAL and now < latest.ends_at:
            next_shift_at = now  # an early end can be resumed until the planned end
    last_who5 = CheckIn.objects.filter(user=reviewer, kind=CheckIn.Kind.WHO5, created_at__gt=now - timedelta(days=7))
    return WellbeingOverview(
        policy=policy,
        shift=shift,
        shift_gauge=gauge(settled_exposure(shift=shift), "shift") if shift is not None else None,
        today=gauge(int(by_day.get(today, {}).get("exposure_seconds", 0))),
        week_days=week_days,
        week_total_minutes=round(sum(d.gauge.used_seconds for d in week_days) / 60),
        breaks_today=breaks_counted(reviewer=reviewer, since=start_of_day),
        breaks_week=breaks_counted(reviewer=reviewer, since=start_of_week),
        break_state=break_state(reviewer_id=reviewer.pk, now=now),
        who5_due=not last_who5.exists(),  # exists() loads no answers
        next_shift_at=next_shift_at,
    )


def settled_exposure(*, shift: Shift) -> int:
    total = ExposureEntry.objects.filter(shift=shift).aggregate(total=Sum("exposure"))
    return int(total["total"] or 0)


@dataclass(frozen=True)
class Settlement:
    """What an exposure entry counts for once its claim has ended (see services._settle, which stores it)."""

    ended_at: datetime
    screen_seconds: int
    reveal_count: int
    reveal_seconds: int
    counted_seconds: int
    exposure: int


def settlements(entries: list[ExposureEntry], *, policy: rules.EffectivePolicy,
                shown: dict[int, list[float]] | None = None) -> dict[int, Settlement]:
    """Compute, without writing, what finished entries count for: from the claim's own times and the logged
    reveals. Entries whose claim is gone (content purged) count their reservation, the most they could have been.
    `shown`: the seconds each reveal showed, by claim, when the caller has read the reveals already (Claim.end)."""
    reveals: dict[int, list[float]] = dict(shown or {})
    claim_ids = [e.claim_id for e in entries if e.claim_id and e.claim_id not in reveals]
    if claim_ids:
        reveals_of: Any = reveal_model()
        for reveal in compiled.instances("wellbeing.settlements.reveals", reveals_of, lambda *, claim_ids:
                                         reveals_of._default_manager.filter(claim_id__in=claim_ids),
                                         claim_ids=claim_ids):
            reveals.setdefault(reveal.claim_id, []).append(reveal.seconds_shown)
    found: dict[int, Settlement] = {}
    for entry in entries:
        claim = entry.claim
        if claim is None or claim.ended_at is None:
            if entry.claim_id is not None:
                continue  # still open: nothing to settle yet
            found[entry.pk] = Settlement(entry.claimed_at + timedelta(seconds=policy.item_seconds_max), 0, 0, 0,
                                         policy.item_seconds_max, entry.reserved)
            continue
        found[entry.pk] = settlement_of(claimed_at=entry.claimed_at, claim_ended_at=claim.ended_at,
                                        shown=reveals.get(claim.pk, []), weight_percent=entry.weight_percent,
                                        reserved=entry.reserved, policy=policy)
    return found


def settlement_of(*, claimed_at: datetime, claim_ended_at: datetime, shown: list[float], weight_percent: int,
                  reserved: int, policy: rules.EffectivePolicy) -> Settlement:
    """What one finished entry counts for: claim to end on screen, plus its reveals (seconds shown each)."""
    screen = max(0.0, (claim_ended_at - claimed_at).total_seconds())
    counted = rules.counted_seconds(screen_seconds=screen, reveal_seconds=sum(shown), policy=policy)
    # Never more than was reserved at claim time, even if the policy changed since.
    exposure = min(rules.weighted(counted, weight_percent), reserved)
    return Settlement(claim_ended_at, round(screen), len(shown), round(sum(shown)), counted, exposure)


def exposure_finished(*, shift: Shift, policy: rules.EffectivePolicy) -> int:
    """Weighted seconds of the items finished in this shift, settled or not yet (read-only): what the moderator's
    own gauge shows once their page has settled them. Items still on screen are not counted yet."""
    settled = settled_exposure(shift=shift)
    pending = list(ExposureEntry.objects.filter(shift=shift, exposure__isnull=True)
                   .filter(Q(claim__ended_at__isnull=False) | Q(claim__isnull=True))
                   .select_related("claim"))
    return settled + sum(s.exposure for s in settlements(pending, policy=policy).values())


# ---- check-ins: health data, every read logged ----------------------------------------------------------------------


@contextmanager
def _checkin_reading() -> Iterator[None]:
    token = _checkin_read_allowed.set(True)
    try:
        yield
    finally:
        _checkin_read_allowed.reset(token)


def checkin_reader_allowed(*, reader: User, subject: User | int) -> bool:
    """The person themself, or occupational health for the person's team (granted by wellbeing.health_access, shown
    to the person). Never team leads, never a superuser (even one in the OH group and a team's health staff), never
    an inactive account."""
    subject_id = subject if isinstance(subject, int) else subject.pk
    if not reader.is_authenticated or not reader.is_active:
        return False
    if reader.pk == subject_id:
        return True
    if reader.is_superuser or not has_role(reader, Role.OCCUPATIONAL_HEALTH):
        return False
    return TeamMembership.objects.filter(user_id=subject_id, team__health_staff=reader).exists()


def checkins_read(
    *, subject: User, reader: User, purpose: str, since: datetime | None = None
) -> list[CheckIn]:
    """The only way to load check-in answers. Logs every read, and every refused attempt, then returns the rows.

    Raises CheckInReadRefused (a PermissionDenied) for anyone but the person and occupational health.
    """
    now = timezone.now()
    if not checkin_reader_allowed(reader=reader, subject=subject):
        CheckInRead.objects.create(at=now, reader=reader, subject=subject, purpose=purpose[:40], allowed=False)
        raise CheckInReadRefused(gettext("Check-ins are private: only the person and occupational health can read "
                                         "them."))
    rows = CheckIn.objects.filter(user=subject)
    if since is not None:
        rows = rows.filter(created_at__gte=since)
    with _checkin_reading():
        found = list(rows)
    CheckInRead.objects.create(at=now, reader=reader, subject=subject, purpose=purpose[:40], allowed=True,
                               rows=len(found))
    return found


# ---- export ----------------------------------------------------------------------------------------------------------


def _iso(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, timedelta):
        return int(value.total_seconds())
    return value


EXPORT_PARTS = ("shifts", "exposure", "breaks", "checkins", "limits")


def export_for(*, user: User, parts: tuple[str, ...] = EXPORT_PARTS) -> dict[str, list[dict[str, Any]]]:
    """A person's own wellbeing data, table by table (check-ins only through the logged path, only if asked)."""
    result: dict[str, list[dict[str, Any]]] = {}
    if "shifts" in parts:
        result["shifts"] = _export_shifts(user)
    if "exposure" in parts:
        result["exposure"] = _export_exposure(user)
    if "breaks" in parts:
        result["breaks"] = _export_breaks(user)
    if "checkins" in parts:
        result["checkins"] = [
            {"id": c.pk, "kind": c.kind, "created_at": _iso(c.created_at), "mood": c.mood,
             "who5_answers": " ".join(str(a) for a in (c.who5_answers or [])), "who5_raw": c.who5_raw,
             "who5_percent": c.who5_percent}
            for c in sorted(checkins_read(subject=user, reader=user, purpose="export"), key=lambda c: c.created_at)
        ]
    if "limits" in parts:
        result["limits"] = _export_limits(user)
    return result


def _export_shifts(user: User) -> list[dict[str, Any]]:
    return [
        {k: _iso(v) for k, v in row.items()}
        for row in Shift.objects.filter(reviewer=user).order_by("started_at").values(
            "id", "started_at", "ends_at", "ended_at", "end_reason", "day"
        )
    ]


def _export_exposure(user: User) -> list[dict[str, Any]]:
    return [
        {k: _iso(v) for k, v in row.items()}
        for row in ExposureEntry.objects.filter(reviewer=user).order_by("claimed_at").values(
            "id", "shift_id", "item_id", "queue_id", "severity", "category", "weight_percent", "claimed_at",
            "ended_at", "screen_seconds", "reveal_count", "reveal_seconds", "counted_seconds", "reserved", "exposure",
            "day", "week",
        )
    ]


def _export_breaks(user: User) -> list[dict[str, Any]]:
    breaks = []
    for b in Break.objects.filter(reviewer=user).order_by("pk"):
        breaks.append({
            "id": b.pk, "shift_id": b.shift_id, "kind": b.kind, "due_at": _iso(b.due_at),
            "started_at": _iso(b.started_at), "ends_at": _iso(b.ends_at), "ended_at": _iso(b.ended_at),
            "started_automatically": b.started_automatically, "cut_short": b.cut_short,
        })
    return breaks


def _export_limits(user: User) -> list[dict[str, Any]]:
    personal = personal_policy_of(user=user)
    return [
        {"setting": name, "value": _iso(getattr(personal, name))}
        for name in ("shift_length", "exposure_cap_units", "severe_per_hour", "cooldown", "break_every",
                     "break_length")
    ] + [{"setting": "opted_out_categories", "value": " ".join(personal.opted_out_categories or [])}]
