"""Writes for wellbeing: the claim gate, the exposure ledger, shifts, breaks, check-ins and policy changes.

The one way in from review is `claim_gate` + `exposure_open`, called by `review.services.item_claim` inside its
transaction, and `exposure_settle_claim`, called where a claim ends. Wellbeing never imports review: the ledger
entry's foreign key to its claim is how it reads the claim's times and reveals, and a break asks review to give the
item in hand back through `wellbeing.signals.viewing_stopped`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import IntegrityError, transaction
from django.db.models import Field, Q, QuerySet
from django.utils import timezone
from django.utils.translation import gettext, gettext_lazy
from django.utils.translation import gettext as _

from core import compiled, realtime
from core.errors import ReviewError
from intake.models import Category, Severity
from wellbeing import realtime as team_realtime
from wellbeing import rules, selectors
from wellbeing.models import (
    BREAK_EVERY,
    BREAK_WINDOW,
    Break,
    CheckIn,
    CheckInRead,
    DurationBetween,
    ExposureEntry,
    OrganisationPolicy,
    PersonalPolicy,
    PolicyChange,
    QueuePolicy,
    Shift,
    Team,
    TeamMembership,
    TeamPolicy,
)
from wellbeing.selectors import clock, clock_full
from wellbeing.signals import viewing_stopped

if TYPE_CHECKING:
    from review.models import Claim, Queue, RevealEvent

VOLUNTARY_BREAK_MINUTES = (5, 10, 15, 20, 30)
PERSONAL_FIELDS = ("shift_length", "exposure_cap_units", "severe_per_hour", "cooldown", "break_every", "break_length")
QUEUE_FIELDS = ("specialist_category", "exposure_cap_units", "severe_per_hour", "cooldown", "weight_none",
                "weight_low", "weight_medium")
WHO5_ITEMS = (
    gettext_lazy("I have felt cheerful and in good spirits"),
    gettext_lazy("I have felt calm and relaxed"),
    gettext_lazy("I have felt active and vigorous"),
    gettext_lazy("I woke up feeling fresh and rested"),
    gettext_lazy("My daily life has been filled with things that interest me"),
)
# Raw WHO-5 below this suggests poor wellbeing (Topp et al. 2015).
WHO5_LOW_RAW = 13


def _refused(code: str, detail: str, *, retry_at: datetime | None = None) -> ReviewError:
    return ReviewError(code, detail, status=409, retry_at=retry_at)


def _push_later(reviewer_id: int, event: str) -> None:
    """Tell the reviewer's consoles, once committed. The payload is the break state at sending time."""

    def send() -> None:
        payload = selectors.break_payload(selectors.break_state(reviewer_id=reviewer_id))
        realtime.notify_user(user_id=reviewer_id, event=event, **payload)
        team_realtime.reviewer_changed(reviewer_id=reviewer_id)

    transaction.on_commit(send)


# ---- shifts -----------------------------------------------------------------------------------------------------


def _shift_locked(*, reviewer_id: int) -> Shift | None:
    """The reviewer's open shift, its row locked: the first lock every claim, break and shift change of this reviewer
    takes (the lock order is written once, in review.services._lease_first), so one reviewer's requests queue up
    behind each other."""
    return compiled.first("wellbeing.shift_locked", Shift,
                          lambda *, reviewer_id: Shift.objects.select_for_update().filter(reviewer_id=reviewer_id,
                                                                                          ended_at__isnull=True),
                          reviewer_id=reviewer_id)


def _shift_new(*, reviewer: User, policy: rules.EffectivePolicy, now: datetime) -> Shift:
    latest = Shift.objects.select_for_update().filter(reviewer=reviewer).order_by("-started_at").first()
    if latest is not None and latest.ended_at is None:
        return latest  # another request of this reviewer opened it while we waited for the lock
    if latest is not None and latest.ended_at is not None:
        if latest.end_reason == Shift.EndReason.MANUAL and now < latest.ends_at:
            # Ended early by hand and back before the planned end: the same shift (same cap, same clock) resumes.
            latest.ended_at = None
            latest.end_reason = ""
            latest.save(update_fields=["ended_at", "end_reason"])
            return latest
        next_start = latest.ended_at + policy.rest_between_shifts
        if now < next_start:
            ended = clock(latest.ended_at, now=now)
            how: dict[str, str] = {
                Shift.EndReason.LENGTH.value: gettext("Your shift reached its full length at %(ended)s") % {
                    "ended": ended},
                Shift.EndReason.CUTOFF.value: gettext("Your shift reached the day's cut-off at %(ended)s") % {
                    "ended": ended},
                Shift.EndReason.LEAD.value: gettext("Your team lead ended your shift early at %(ended)s, to protect "
                                                    "your rest") % {"ended": ended},
            }
            how_it_ended = how.get(latest.end_reason, f"Your last shift ended at {ended}")
            raise _refused("shift_over", gettext("%(how_it_ended)s, so there are no more items for now. Thank you; "
                                                 "please rest. A new shift can start from %(next_start)s.") % {
                                                     "how_it_ended": how_it_ended,
                                                     "next_start": clock_full(next_start)}, retry_at=next_start)
    local = timezone.localtime(now)
    if policy.day_cutoff is not None and local.time() >= policy.day_cutoff:
        raise _refused("shift_over", gettext("Reviewing stops at %(m)s each day. Please rest; you can start again "
                                             "tomorrow.") % {"m": format(policy.day_cutoff, "%H:%M")})
    if policy.day_start is not None and local.time() < policy.day_start:
        raise _refused("shift_over", gettext("Reviewing starts at %(m)s. Please come back then.") % {
            "m": format(policy.day_start, "%H:%M")})
    ends = now + policy.shift_length
    if policy.day_cutoff is not None:
        ends = min(ends, timezone.make_aware(datetime.combine(local.date(), policy.day_cutoff)))
    try:
        with transaction.atomic():
            shift = Shift.objects.create(reviewer=reviewer, started_at=now, ends_at=ends, day=local.date())
    except IntegrityError:
        # Another request of the same reviewer started one a moment ago: use it (and wait for its lock).
        found = _shift_locked(reviewer_id=reviewer.pk)
        if found is None:
            raise
        return found
    # A break taken before the shift began and still running belongs to it now (claims wait for its end, and it
    # can still be ended early, being voluntary).
    Break.objects.filter(reviewer=reviewer, shift__isnull=True, started_at__lte=now, ends_at__gt=now,
                         ended_at__isnull=True).update(shift=shift)
    return shift


def _shift_close(shift: Shift, *, at: datetime, reason: str) -> None:
    shift.ended_at = at
    shift.end_reason = reason
    shift.save(update_fields=["ended_at", "end_reason"])
    # A break still running when the shift ends is recorded as cut short by it.
    Break.objects.filter(shift=shift, started_at__lte=at, ends_at__gt=at, ended_at__isnull=True).update(ended_at=at)


def _planned_end_reason(shift: Shift, policy: rules.EffectivePolicy) -> str:
    cutoff = policy.day_cutoff
    if cutoff is not None and timezone.localtime(shift.ends_at).time() == cutoff:
        return Shift.EndReason.CUTOFF
    return Shift.EndReason.LENGTH


def _shift_for(*, reviewer: User, policy: rules.EffectivePolicy, now: datetime) -> Shift:
    """The reviewer's open shift, locked; one past its planned end is closed, and a new one starts if the rest
    since then is long enough (a shift left open overnight does not cost the next morning's first claim)."""
    shift = _shift_locked(reviewer_id=reviewer.pk)
    if shift is not None and now >= shift.ends_at:
        _shift_close(shift, at=shift.ends_at, reason=_planned_end_reason(shift, policy))
        shift = None
    return shift or _shift_new(reviewer=reviewer, policy=policy, now=now)


def shift_start(*, reviewer: User, now: datetime | None = None) -> Shift:
    """Start a shift (or carry on with the open one). Refused within the rest period after the last one."""
    now = now or timezone.now()
    policy = selectors.policy_effective(reviewer=reviewer)
    refusal: ReviewError | None = None
    with transaction.atomic():
        try:
            shift = _shift_for(reviewer=reviewer, policy=policy, now=now)
        except ReviewError as exc:
            refusal = exc  # keep the closing of a shift past its end
        else:
            _push_later(reviewer.pk, "shift.started")
    if refusal is not None:
        raise refusal
    return shift


def shift_end(*, reviewer: User, now: datetime | None = None, by_lead: bool = False) -> Shift | None:
    """End the open shift now. A break running at that moment is recorded as cut short. Ended by a team lead
    (oversight.team_services.lead_end_shift), it cannot be resumed: the rest between shifts starts now."""
    now = now or timezone.now()
    with transaction.atomic():
        shift = _shift_locked(reviewer_id=reviewer.pk)
        if shift is None:
            return None
        if now >= shift.ends_at:
            _shift_close(shift, at=shift.ends_at, reason=_planned_end_reason(shift, selectors.policy_effective(
                reviewer=reviewer)))
        else:
            _shift_close(shift, at=now, reason=Shift.EndReason.LEAD if by_lead else Shift.EndReason.MANUAL)
        _push_later(reviewer.pk, "shift.ended")
    return shift


# ---- the claim gate ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClaimConstraints:
    """What item_claim may offer after the gate let the reviewer through."""

    shift_id: int
    policy: rules.EffectivePolicy
    max_severity: int
    prefer_benign: bool  # interleaving: after a severe item, an item rated 'none' first
    lower_severity_first: bool  # near the cap
    excluded_categories: frozenset[str]
    # Why the offer is narrowed, most important first: the refusal when only held-back items are waiting.
    limits: tuple[ReviewError, ...] = ()
    team_id: int | None = None  # the reviewer's team, whose live view hears of the claim
    expired_leases_waiting: bool = False  # leases in this queue ran out and are not yet returned to it
    # The clock reading the gate decided on, taken once the shift lock was held: the claim and its exposure entry
    # are stamped with it, so a lease never starts (or ends) early by the time spent waiting for the lock.
    now: datetime | None = None

    def refusal_when_empty(self) -> ReviewError | None:
        return self.limits[0] if self.limits else None


@dataclass(frozen=True)
class HeldClaim:
    """The reviewer holds a live lease already: item_claim gives that item back and the gate decides nothing."""

    claim_id: int


def claim_gate(*, reviewer: User, queue: Queue, now: datetime | None = None) -> ClaimConstraints | HeldClaim:
    """May this reviewer take another item now, and of what kind? Call inside item_claim's transaction.

    Locks the reviewer's shift row (starting a shift if none is open), so a reviewer's concurrent claims queue up
    behind each other; then reads what it decides on (selectors.gate_snapshot: settled totals, since every claim
    settles its exposure when it ends) and checks the shift, the break schedule and the exposure cap. A reviewer
    who holds a live lease gets `HeldClaim` and nothing else is checked. Raises ReviewError with a sentence a tired
    person understands; what it recorded on the way (a shift that ended, a break that started) is meant to be
    committed, so item_claim commits before raising it.
    """
    shift = _shift_locked(reviewer_id=reviewer.pk)
    now = now or timezone.now()  # after the lock: see ClaimConstraints.now
    snap = selectors.gate_snapshot(reviewer=reviewer, queue=queue, shift=shift, now=now)
    if snap.held_claim_id is not None:
        return HeldClaim(snap.held_claim_id)
    policy = snap.policy
    if shift is None or now >= shift.ends_at:
        if shift is not None:
            _shift_close(shift, at=shift.ends_at, reason=_planned_end_reason(shift, policy))
        shift = _shift_new(reviewer=reviewer, policy=policy, now=now)
        # Read again now that the new shift's row is locked: a concurrent first claim of theirs may have won.
        snap = selectors.gate_snapshot(reviewer=reviewer, queue=queue, shift=shift, now=now)
        if snap.held_claim_id is not None:
            return HeldClaim(snap.held_claim_id)
    _breaks_check(shift=shift, policy=policy, now=now, has_breaks=snap.break_rows > 0,
                  last_activity=snap.last_activity)
    if shift.queue_assigned_id is not None and shift.queue_assigned_id != queue.pk:
        assigned = Shift.objects.filter(pk=shift.pk).values_list("queue_assigned__name", flat=True).first()
        raise _refused("moved", gettext("Your team lead moved you to %(queue)s for the rest of this shift, to "
                                        "lighten the load. New items come from there.") % {
                                            "queue": assigned or gettext("a lighter queue")})
    constraints = _exposure_constraints(shift=shift, policy=policy, snap=snap, used=snap.spoken_for, now=now)
    return replace(constraints, now=now)


def _breaks_check(*, shift: Shift, policy: rules.EffectivePolicy, now: datetime, has_breaks: bool,
                  last_activity: datetime | None) -> None:
    situation = selectors.break_situation(shift=shift, policy=policy, now=now, holding=False, has_breaks=has_breaks,
                                          activity=(last_activity,))
    state = situation.state
    reviewer_id = shift.reviewer_id
    if state.phase == rules.Phase.ON_BREAK:
        if state.starts_automatically:
            _auto_break_record(shift=shift, situation=situation)
            _push_later(reviewer_id, "break.started")
            raise _refused("break_due", gettext("Time for your break: new items pause until %(break_ends_at)s. Step "
                                                "away from the screen if you can.") % {
                                                    "break_ends_at": _until(state.break_ends_at)},
                           retry_at=state.break_ends_at)
        raise _refused("on_break", gettext("You are on a break until %(break_ends_at)s. New items can be claimed "
                                           "after that.") % {"break_ends_at": _until(state.break_ends_at)},
                       retry_at=state.break_ends_at)
    if state.phase == rules.Phase.DUE and situation.pending is None:
        Break.objects.create(reviewer_id=reviewer_id, shift=shift, kind=Break.Kind.SCHEDULED, due_at=state.due_at)
        _push_later(reviewer_id, "break.due")
    elif state.phase == rules.Phase.RESTED:
        if (state.due_at is not None or situation.pending is not None) and _auto_break_record(
                shift=shift, situation=situation) is None:
            # Idle for a full break already when the window closed: that time, until now, was the break.
            row = situation.pending or Break(reviewer_id=reviewer_id, shift=shift, kind=Break.Kind.SCHEDULED,
                                             due_at=state.due_at)
            row.started_at = situation.last_activity or situation.work_since
            row.ends_at = now
            row.started_automatically = True
            row.save()
        shift.rested_at = now
        shift.save(update_fields=["rested_at"])
        _push_later(reviewer_id, "break.schedule")


def _auto_break_record(*, shift: Shift, situation: selectors.BreakSituation) -> Break | None:
    """Record the scheduled break the schedule started by itself (its window passed with nothing in hand), or one
    that came and went while nothing was open, with the times the schedule gives it. The one place these rows are
    written: the claim gate, the lead's view and the periodic catch-up (breaks_catch_up) all come here, so whoever
    looks first, every "on break until" and "since the last break" reads the same record."""
    state = situation.state
    on_its_own = state.phase == rules.Phase.ON_BREAK and state.starts_automatically
    automatic = on_its_own or state.phase == rules.Phase.RESTED
    if not automatic or state.break_starts_at is None or state.break_ends_at is None:
        return None
    row = situation.pending or Break(reviewer_id=shift.reviewer_id, shift=shift, kind=Break.Kind.SCHEDULED,
                                     due_at=state.due_at)
    row.started_at, row.ends_at, row.started_automatically = state.break_starts_at, state.break_ends_at, True
    row.save()
    return row


def breaks_catch_up(*, reviewer_id: int, now: datetime | None = None) -> Break | None:
    """Record a break that started by itself since anyone last looked (see _auto_break_record). Claims record them
    too, but a reviewer who claims nothing would otherwise have no row for a break the schedule says they are on, or
    had. Idempotent; called by the lead's view before it reads, and every minute by the beat task."""
    now = now or timezone.now()
    with transaction.atomic():
        shift = _shift_locked(reviewer_id=reviewer_id)
        if shift is None or now >= shift.ends_at:
            return None
        policy = selectors.policy_effective(reviewer=reviewer_id)
        holding = selectors.is_holding(reviewer_id=reviewer_id, now=now)
        situation = selectors.break_situation(shift=shift, policy=policy, now=now, holding=holding)
        row = _auto_break_record(shift=shift, situation=situation)
        if row is not None and situation.state.phase == rules.Phase.ON_BREAK:
            _push_later(reviewer_id, "break.started")
    return row


def breaks_catch_up_all(*, now: datetime | None = None) -> int:
    """breaks_catch_up for every open shift (the beat task, for breaks nobody was looking at)."""
    from django.db.models import Exists, OuterRef

    now = now or timezone.now()
    # Only shifts where the schedule can have started a break by itself (rules.break_state): that needs a break's
    # window to have closed, at the earliest the shortest break_every + break_window any policy allows after the
    # shift began, and nothing in hand. Everyone else is skipped without a lock: with a thousand reviewers at work,
    # looking at each of them every minute cost 8 s of a worker's time and held up their claims behind the locks.
    holding = selectors.holding_entries(now=now).filter(reviewer_id=OuterRef("reviewer_id"))
    reviewer_ids = list(
        Shift.objects.filter(ended_at__isnull=True, ends_at__gt=now,
                             started_at__lte=now - (BREAK_EVERY[0] + BREAK_WINDOW[0]))
        .exclude(Exists(holding)).values_list("reviewer_id", flat=True))
    return sum(1 for reviewer_id in reviewer_ids if breaks_catch_up(reviewer_id=reviewer_id, now=now) is not None)


def _until(moment: datetime | None) -> str:
    return clock_full(moment) if moment is not None else gettext("its end")


def _exposure_constraints(
    *, shift: Shift, policy: rules.EffectivePolicy, snap: selectors.GateSnapshot, used: int, now: datetime
) -> ClaimConstraints:
    headroom = policy.cap_seconds - used
    fitting = [s for s in Severity.values if policy.reserve_for(s) <= headroom]
    if headroom <= 0 or not fitting:
        fresh = max(shift.ends_at, now + policy.rest_between_shifts)
        raise _refused("cap_reached", gettext("You have reached this shift's exposure limit, so there are no more "
                                              "items for you this shift. That is the limit doing its job. End your "
                                              "shift when you are ready; after the rest between shifts, a new one can "
                                              "start from %(fresh)s.") % {"fresh": clock_full(fresh)},
                       retry_at=fresh)
    max_severity = max(fitting)
    limits: list[ReviewError] = []
    if max_severity < Severity.SEVERE:
        limits.append(_refused("cap_near", gettext("You are close to this shift's exposure limit, so only milder "
                                                   "items are "
                               "offered now, and none of those are waiting here.")))
    if max_severity == Severity.SEVERE:
        count, oldest = snap.severe_last_hour, snap.severe_oldest
        if count >= policy.severe_per_hour and oldest is not None:
            max_severity = Severity.MEDIUM
            reopens = oldest + timedelta(hours=1)
            limits.append(_refused(
                "severe_limit", gettext("You have had %(count)s severe items in the last hour, the most allowed. "
                                        "Milder items are still offered, but none are waiting here; severe ones open "
                                        "again at %(reopens)s.") % {
                                            "count": count, "reopens": clock_full(reopens)}, retry_at=reopens))
    if max_severity == Severity.SEVERE and policy.cooldown:
        last_severe = snap.last_severe_end
        if last_severe is not None and now < last_severe + policy.cooldown:
            max_severity = Severity.MEDIUM
            resumes = last_severe + policy.cooldown
            limits.append(_refused(
                "cooldown", gettext("After a severe item there is a short pause before the next one. Milder items are "
                                    "offered meanwhile, but none are waiting here; the next severe item can come "
                                    "after %(true)s.") % {"true": clock_full(resumes, seconds=True)}, retry_at=resumes))
    excluded = snap.opted_out
    if excluded:
        limits.append(_refused("opted_out", gettext("What is waiting here is in categories you chose not to review. "
                                                    "You can "
                               "change that in My limits.")))
    return ClaimConstraints(
        shift_id=shift.pk,
        policy=policy,
        max_severity=max_severity,
        prefer_benign=policy.interleave_benign and snap.last_finished_severity == Severity.SEVERE,
        lower_severity_first=used * 100 >= policy.near_cap_percent * policy.cap_seconds,
        excluded_categories=excluded,
        limits=tuple(limits),
        team_id=snap.team_id,
        expired_leases_waiting=snap.expired_leases_in_queue,
    )


# ---- the exposure ledger ----------------------------------------------------------------------------------------


def exposure_open(*, claim: Claim, constraints: ClaimConstraints) -> ExposureEntry:
    """Record that an item was shown, reserving the most it can count for, in the claim's transaction: the next
    claim of the same reviewer waits for the shift lock and then sees this reservation. The reviewer's team view
    hears of it on commit."""
    item = claim.item
    weight = constraints.policy.weight(item.severity)
    day = timezone.localdate(claim.claimed_at)
    team_id = constraints.team_id
    if team_id is not None:
        transaction.on_commit(lambda: team_realtime.team_changed(team_id=team_id))
    return compiled.create(
        "wellbeing.exposure_entry", ExposureEntry,
        reviewer_id=claim.reviewer_id,
        shift_id=constraints.shift_id,
        claim=claim,
        item=item,
        queue_id=claim.queue_id,
        severity=item.severity,
        category=item.category,
        weight_percent=weight,
        claimed_at=claim.claimed_at,
        reserved=rules.weighted(constraints.policy.item_seconds_max, weight),
        day=day,
        week=selectors.week_start(day),
    )


SETTLED_FIELDS = ("ended_at", "screen_seconds", "reveal_count", "reveal_seconds", "counted_seconds", "exposure")


@dataclass(frozen=True)
class ClaimSettled:
    """What exposure_settle_claim found and did. `claim_ended`: the claim had ended already (someone else ended it:
    nothing was written). `reveals_open`: whether the claim had reveals still open (None when there was no entry to
    settle, so the reveals were not read). `written`: the entries it wrote, counted when the caller's together()
    block ends."""

    claim_ended: bool
    reveals_open: bool | None
    written: list[compiled.Counted]


def exposure_settle_claim(*, claim_id: int, ended_at: datetime) -> ClaimSettled:
    """Settle the exposure of a claim that ends at `ended_at`, in the transaction that ends it. Review calls this
    from its one place a lease ends, just before writing the claim's end, inside the same compiled.together() block,
    so the claim's end and its settlement go to the database as one statement. From then on the ledger holds what
    the item counted for, and the gate reads settled totals. One statement reads the claim's unsettled entry, the
    claim, its reveals and the organisation's policy that settles it; the claim counts as ended at `ended_at`. A
    reveal still open when its claim ends ends with it: it counts up to the claim's end (the caller writes that end,
    and learns from `reveals_open` whether it has to). The caller holds the item's row lock, which ending a claim
    and opening a reveal both take, so what was read still holds when the writes go."""
    claim_of = selectors.claim_model()
    reveal_of = selectors.reveal_model()
    organisation = "organisation_policy_"
    reveal = "claim__reveals__"
    paths = [*compiled.model_paths(ExposureEntry, ""), *compiled.model_paths(claim_of, "claim__"),
             *compiled.model_paths(reveal_of, reveal), *compiled.model_paths(OrganisationPolicy, organisation)]

    def build(*, claim_id: int) -> QuerySet[ExposureEntry, Any]:
        # The entries with their claim, as select_related("claim") loads them, a row for each of the claim's reveals
        # (a LEFT JOIN: one row with none), and the organisation's policy that settles them
        # (selectors.settlement_policy): compiled once, bound on each end.
        query: QuerySet[ExposureEntry, Any] = (
            ExposureEntry.objects.filter(claim_id=claim_id, exposure__isnull=True)
            .annotate(**compiled.columns_of(OrganisationPolicy, OrganisationPolicy.objects.row(), organisation))
            .values(*paths))
        return query

    entries: dict[int, ExposureEntry] = {}
    shown: dict[int, list[float]] = {}
    seen: set[int] = set()
    still_open = False
    found = compiled.rows("wellbeing.exposure_settle_claim", build, claim_id=claim_id)
    for row in found:
        entry = compiled.instance(ExposureEntry, row, "")
        if entry is None:
            continue
        if entry.pk not in entries:
            claim: Any = compiled.instance(claim_of, row, "claim__")
            if claim is not None:
                if claim.ended_at is not None:  # ended by someone else already, and settled by them
                    return ClaimSettled(claim_ended=True, reveals_open=None, written=[])
                claim.ended_at = ended_at  # as the caller is about to write it
                entry.claim = claim
            entries[entry.pk] = entry
            shown.setdefault(claim_id, [])
        revealed: Any = compiled.instance(reveal_of, row, reveal)
        if revealed is None or revealed.pk in seen:
            continue
        seen.add(revealed.pk)
        if revealed.ended_at is None:
            revealed.ended_at, still_open = ended_at, True
        shown[claim_id].append(revealed.seconds_shown)
    if not entries:
        return ClaimSettled(claim_ended=False, reveals_open=None, written=[])
    policy = selectors.settlement_policy(organisation=OrganisationPolicy.objects.or_defaults(
        compiled.instance(OrganisationPolicy, found[0], organisation)))
    written = [compiled.update_later("wellbeing.settlements_write", _settlement_write, pk=pk, changes=changes)
               for pk, changes in _settlement_changes(list(entries.values()), policy=policy, shown=shown)]
    return ClaimSettled(claim_ended=False, reveals_open=still_open, written=written)


def _settlement_changes(entries: list[ExposureEntry], *, policy: rules.EffectivePolicy,
                        shown: dict[int, list[float]] | None = None) -> list[tuple[int, dict[str, Any]]]:
    return [(pk, {name: getattr(found, name) for name in SETTLED_FIELDS})
            for pk, found in selectors.settlements(entries, policy=policy, shown=shown).items()]


def _settlement_write(*, pk: int, changes: dict[str, Any]) -> tuple[QuerySet[ExposureEntry], dict[str, Any]]:
    # An entry's settlement, written once: compiled once per process, bound for each entry.
    return ExposureEntry.objects.filter(pk=pk, exposure__isnull=True), changes


def _settlements_write(entries: list[ExposureEntry], *, policy: rules.EffectivePolicy) -> int:
    return sum(compiled.update("wellbeing.settlements_write", _settlement_write, pk=pk, changes=changes)
               for pk, changes in _settlement_changes(entries, policy=policy))


def exposure_settle(*, reviewer: User) -> int:
    """Settle whatever of the reviewer's is finished and not settled yet: entries whose item was purged before its
    claim ended (they count their reservation), and entries written before claims settled as they end. Idempotent;
    the one other way in to the same settlement as exposure_settle_claim."""
    entries = list(
        ExposureEntry.objects.filter(reviewer_id=reviewer.pk, exposure__isnull=True)
        .filter(Q(claim__ended_at__isnull=False) | Q(claim__isnull=True))
        .select_related("claim")
    )
    if not entries:
        return 0
    return _settlements_write(entries, policy=selectors.settlement_policy())


# ---- breaks -----------------------------------------------------------------------------------------------------


def break_start(*, reviewer: User, minutes: int | None = None, now: datetime | None = None,
                sent_by: User | None = None) -> Break:
    """Start a break now. When a scheduled break is due (or past its window) this is that break, and it lasts at
    least the scheduled length; otherwise it is voluntary, of the chosen length, and never counted against anyone.
    A break stops all viewing: the item in hand goes back to its queue (its exposure counts up to now, not through
    the break) and nothing is revealed until the break ends (check_viewing_allowed).

    `sent_by`: a team lead sends the reviewer on a break (oversight.team_services.lead_send_on_break). It is the
    scheduled break when one is due, else a break of the scheduled length that, like a scheduled one, ends by
    itself; claims are refused meanwhile, exactly as for any other break."""
    now = now or timezone.now()
    started_by = sent_by or reviewer
    if minutes is not None and minutes not in VOLUNTARY_BREAK_MINUTES:
        raise ReviewError("invalid_length", gettext("Choose one of the offered break lengths."), status=400)
    policy = selectors.policy_effective(reviewer=reviewer)
    length = policy.break_length if minutes is None else timedelta(minutes=minutes)
    with transaction.atomic():
        shift = _shift_locked(reviewer_id=reviewer.pk)
        if shift is not None and now >= shift.ends_at:
            shift = None
        if shift is None:
            row = (Break.objects.filter(reviewer=reviewer, shift__isnull=True, started_at__lte=now, ends_at__gt=now,
                                        ended_at__isnull=True).first()
                   or Break.objects.create(reviewer=reviewer, kind=Break.Kind.VOLUNTARY, started_at=now,
                                           ends_at=now + length, started_by=started_by))
        else:
            holding = selectors.is_holding(reviewer_id=reviewer.pk, now=now)
            situation = selectors.break_situation(shift=shift, policy=policy, now=now, holding=holding)
            state = situation.state
            if situation.active is not None:
                _give_back_held(reviewer=reviewer)
                return situation.active
            if state.phase == rules.Phase.ON_BREAK:  # the scheduled break has already begun by the schedule
                row = situation.pending or Break(reviewer=reviewer, shift=shift, kind=Break.Kind.SCHEDULED,
                                                 due_at=state.due_at)
                row.started_at, row.ends_at, row.started_automatically = (state.break_starts_at,
                                                                          state.break_ends_at, True)
                row.save()
            elif state.phase in (rules.Phase.DUE, rules.Phase.FINISH_ITEM) or situation.pending is not None:
                row = situation.pending or Break(reviewer=reviewer, shift=shift, kind=Break.Kind.SCHEDULED,
                                                 due_at=state.due_at)
                row.started_at, row.ends_at = now, now + max(length, policy.break_length)
                row.started_by = started_by
                row.save()
            elif sent_by is not None:
                row = Break.objects.create(reviewer=reviewer, shift=shift, kind=Break.Kind.LEAD, started_at=now,
                                           ends_at=now + policy.break_length, started_by=sent_by)
            else:
                row = Break.objects.create(reviewer=reviewer, shift=shift, kind=Break.Kind.VOLUNTARY,
                                           started_at=now, ends_at=now + length, started_by=started_by)
        _give_back_held(reviewer=reviewer)
        _push_later(reviewer.pk, "break.started")
    return row


def _give_back_held(*, reviewer: User) -> int:
    """A break stops all viewing: whatever the reviewer holds goes back to its queue now (review.receivers does it,
    in this transaction). Returns how many items went back."""
    return sum(int(n or 0) for _, n in viewing_stopped.send(sender=Break, reviewer=reviewer))


def check_viewing_allowed(*, reviewer_id: int, now: datetime) -> None:
    """Nothing clear is shown during a break: reveals and clear renditions are refused with 409 `on_break` until it
    ends (review.viewing.viewing_check asks here). Whatever started the break (the schedule, the reviewer, a
    lead), break_state is the one place that says whether one is running."""
    state = selectors.break_state(reviewer_id=reviewer_id, now=now)
    if state.phase == rules.Phase.ON_BREAK:
        raise ReviewError("on_break", gettext("You are on a break until %(break_ends_at)s: nothing is shown during a "
                                              "break. Rest; the queue will be here after it.") % {
                                                  "break_ends_at": _until(state.break_ends_at)}, status=409,
                          retry_at=state.break_ends_at)


def check_playback_allowed(*, reveal: RevealEvent, now: datetime) -> None:
    """The cap applies mid-video (review.viewing.playback_progress asks here while clear video plays): what
    the item in hand counts for so far (time on screen, plus every revealed second, played video included, at the
    item's severity) may not pass what one item may count, nor take the shift past its exposure cap. Raises 409
    `cap_reached`; the console then stops playback and softens."""
    claim = reveal.claim
    entry = ExposureEntry.objects.filter(claim_id=claim.pk).select_related("shift").first()
    policy = selectors.policy_effective(reviewer=reveal.reviewer_id, queue=claim.queue)
    shown = sum(r.seconds_shown if r.pk != reveal.pk else reveal.seconds_shown
                for r in claim.reveals.all())
    screen = max(0.0, (now - claim.claimed_at).total_seconds())
    # What the item counts for so far, by the rule the settlement uses (rules.counted_seconds, bounded by the most
    # one item may count).
    counted = rules.counted_seconds(screen_seconds=screen, reveal_seconds=shown, policy=policy)
    if counted >= policy.item_seconds_max:
        raise _refused("cap_reached", _("This item has counted the most exposure one item may count "
                                        "(%(minutes)s minutes of time on screen and revealed video). Playback "
                                        "stops here: decide from what you have seen, or pass it on.")
                       % {"minutes": round(policy.item_seconds_max / 60, 1)})
    if entry is None or entry.shift is None:
        return
    weight = entry.weight_percent
    used = selectors.exposure_finished(shift=entry.shift, policy=policy) + rules.weighted(counted, weight)
    if used >= policy.cap_seconds:
        raise _refused("cap_reached", _("You have reached this shift's exposure limit while the video played, so "
                                        "playback stops here. Decide from what you have seen, or pass it on."))


def break_end(*, reviewer: User, now: datetime | None = None) -> Break:
    """End a voluntary break early (recorded as cut short). Scheduled breaks end by themselves."""
    now = now or timezone.now()
    with transaction.atomic():
        _shift_locked(reviewer_id=reviewer.pk)
        active = (
            Break.objects.select_for_update()
            .filter(reviewer=reviewer, started_at__lte=now, ends_at__gt=now, ended_at__isnull=True)
            .first()
        )
        if active is None:
            raise _refused("not_on_break", gettext("You are not on a break right now."))
        if active.kind == Break.Kind.SCHEDULED:
            raise _refused("break_enforced", gettext("This break is part of your shift's schedule; it ends by itself "
                                                     "at %(now)s.") % {"now": clock(active.ends_at, now=now)})
        if active.kind != Break.Kind.VOLUNTARY:
            raise _refused("break_enforced", gettext("Your team lead started this break for you; it ends by itself at "
                                                     "%(now)s.") % {"now": clock(active.ends_at, now=now)})
        active.ended_at = now
        active.save(update_fields=["ended_at"])
        _push_later(reviewer.pk, "break.ended")
    return active


# ---- check-ins --------------------------------------------------------------------------------------------------


def checkin_record(
    *, user: User, kind: str, mood: int | None = None, who5_answers: Iterable[int] | None = None,
    now: datetime | None = None,
) -> int:
    """Store an optional check-in. Returns only its id: answers go back out only through the logged selector."""
    now = now or timezone.now()
    if kind == CheckIn.Kind.WHO5:
        answers = list(who5_answers or [])
        if len(answers) != len(WHO5_ITEMS) or any(not isinstance(a, int) or not 0 <= a <= 5 for a in answers):
            raise ReviewError("invalid_checkin",
                              gettext("Answer each of the five statements with a value from 0 to 5."),
                              status=400)
        row = CheckIn.objects.create(user=user, kind=kind, created_at=now, who5_answers=answers,
                                     who5_raw=sum(answers))
    elif kind in (CheckIn.Kind.AFTER_BREAK, CheckIn.Kind.SHIFT_END):
        if not isinstance(mood, int) or not 1 <= mood <= 5:
            raise ReviewError("invalid_checkin", gettext("Choose a number from 1 to 5."), status=400)
        row = CheckIn.objects.create(user=user, kind=kind, created_at=now, mood=mood)
    else:
        raise ReviewError("invalid_checkin", gettext("Unknown kind of check-in."), status=400)
    return row.pk


def checkins_purge_expired(*, now: datetime | None = None) -> int:
    """Delete check-ins (and the log of reads) older than VEIL_CHECKIN_RETENTION_DAYS, without loading them."""
    now = now or timezone.now()
    cutoff = now - timedelta(days=int(settings.VEIL_CHECKIN_RETENTION_DAYS))
    deleted, _ = CheckIn.objects.filter(created_at__lt=cutoff).delete()
    CheckInRead.objects.filter(at__lt=cutoff).delete()
    return deleted


# ---- policy changes, always audited ------------------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    if isinstance(value, timedelta):
        return int(value.total_seconds())
    if hasattr(value, "strftime"):
        return value.strftime("%H:%M")
    return value


def _snapshot(obj: Any, names: Iterable[str]) -> dict[str, Any]:
    return {name: _jsonable(getattr(obj, name)) for name in names} if obj is not None else {}


def _audit(*, layer: str, by: User | None, before: Mapping[str, Any], after: Mapping[str, Any], now: datetime,
           queue: Queue | None = None, subject: User | None = None, team: Any = None) -> PolicyChange | None:
    changed = [name for name in after if before.get(name) != after[name]]
    if not changed:
        return None
    return PolicyChange.objects.create(
        at=now, changed_by=by, layer=layer, queue=queue, subject=subject, team=team,
        before={name: before.get(name) for name in changed}, after={name: after[name] for name in changed},
    )


def organisation_policy_save(*, policy: OrganisationPolicy, by: User | None, now: datetime | None = None) -> None:
    """Validate and save the organisation's policy; audit what changed."""
    now = now or timezone.now()
    policy.pk = OrganisationPolicy.SINGLETON_PK
    _layer_save(policy, layer=PolicyChange.Layer.ORGANISATION, fields=rules.POLICY_FIELDS, by=by, now=now)


def _layer_save(policy: OrganisationPolicy | QueuePolicy | TeamPolicy, *, layer: str, fields: tuple[str, ...],
                by: User | None, now: datetime, **scope: Any) -> None:
    """Validate a policy layer (stricter than the organisation only, for the layers below it), save it and audit
    what changed, with the row locked so two administrators' edits are audited one after the other."""
    policy.full_clean(validate_unique=False)
    with transaction.atomic():
        previous = (type(policy).objects.select_for_update().filter(pk=policy.pk).first()
                    if policy.pk else None)
        policy.save()
        _audit(layer=layer, by=by, before=_snapshot(previous, fields), after=_snapshot(policy, fields), now=now,
               **scope)


def queue_policy_save(*, policy: QueuePolicy, by: User | None, now: datetime | None = None) -> None:
    """Validate (stricter than the organisation only) and save a queue's policy; audit what changed."""
    now = now or timezone.now()
    _layer_save(policy, layer=PolicyChange.Layer.QUEUE, fields=QUEUE_FIELDS, by=by, now=now, queue=policy.queue)


def policy_bound_problems(*, values: Mapping[str, Any]) -> dict[str, str]:
    """Per given field, why its value is outside the bounds an administrator chooses within (the organisation
    policy's own validators). Personal and team limits are checked against the same bounds."""
    problems: dict[str, str] = {}
    for name, value in values.items():
        if value is None:
            continue
        org_field = OrganisationPolicy._meta.get_field(name)
        assert isinstance(org_field, Field)
        try:
            org_field.run_validators(value)
        except ValidationError as exc:
            problems[name] = " ".join(exc.messages)
    return problems


def personal_policy_problems(*, values: Mapping[str, Any]) -> tuple[dict[str, str], dict[str, str]]:
    """Per field, why a proposed personal limit cannot be saved: outside the bounds an administrator chooses within
    (the organisation policy's own validators), or looser than the organisation's setting. The My limits page shows
    each next to its field; personal_policy_update refuses with the same sentences."""
    out_of_bounds = policy_bound_problems(values={name: values.get(name) for name in PERSONAL_FIELDS})
    proposed = PersonalPolicy(**{name: values.get(name) for name in PERSONAL_FIELDS})
    organisation = OrganisationPolicy.objects.current()
    looser = {name: sentence for name, sentence in rules.looser_than(proposed, organisation).items()
              if name not in out_of_bounds}
    return out_of_bounds, looser


def personal_policy_bounds(*, name: str) -> tuple[Any, Any]:
    """The (lowest, highest) value a personal limit may take: the organisation policy's bounds, narrowed to the
    stricter side of the organisation's setting. The page's min and max come from here, so the browser asks for
    what the server accepts."""
    org_field = OrganisationPolicy._meta.get_field(name)
    low: Any = None
    high: Any = None
    for validator in getattr(org_field, "validators", []):
        if isinstance(validator, DurationBetween):
            low, high = timedelta(seconds=validator.low), timedelta(seconds=validator.high)
        elif isinstance(validator, MinValueValidator):
            low = validator.limit_value
        elif isinstance(validator, MaxValueValidator):
            high = validator.limit_value
    current = getattr(OrganisationPolicy.objects.current(), name)
    if rules.STRICTER[name](1, 2) == 1:  # lower is stricter (a cap, a length): no higher than the organisation's
        high = current
    else:
        low = current
    return low, high


def personal_policy_update(
    *, user: User, values: Mapping[str, Any], opted_out_categories: Iterable[str], now: datetime | None = None
) -> PersonalPolicy:
    """A moderator's own limits: each empty (the organisation's) or stricter than the organisation's."""
    now = now or timezone.now()
    out_of_bounds, looser = personal_policy_problems(values=values)
    if out_of_bounds:
        raise ReviewError("invalid_limit", " ".join(out_of_bounds.values()), status=400)
    if looser:
        raise ReviewError("not_stricter", gettext("You can make your limits stricter than the organisation's, never "
                          "looser. ") + " ".join(sorted(set(looser.values()))), status=400)
    with transaction.atomic():
        personal = PersonalPolicy.objects.select_for_update().filter(user=user).first() or PersonalPolicy(user=user)
        before = _snapshot(personal, (*PERSONAL_FIELDS, "opted_out_categories")) if personal.pk else {}
        for name in PERSONAL_FIELDS:
            setattr(personal, name, values.get(name))
        choosable = set(Category.values) - {Category.UNSPECIFIED}
        personal.opted_out_categories = sorted(set(opted_out_categories) & choosable)
        personal.save()
        _audit(layer=PolicyChange.Layer.PERSONAL, by=user, before=before,
               after=_snapshot(personal, (*PERSONAL_FIELDS, "opted_out_categories")), now=now, subject=user)
        _push_later(user.pk, "break.schedule")
    return personal


def team_policy_save(*, policy: TeamPolicy, by: User | None, now: datetime | None = None) -> None:
    """Administrators (Django admin): validate (stricter than the organisation only) and save; audit changes."""
    now = now or timezone.now()
    with transaction.atomic():
        _layer_save(policy, layer=PolicyChange.Layer.TEAM, fields=TEAM_FIELDS, by=by, now=now, team=policy.team)
        _schedule_changed(policy.team)



def _schedule_changed(team: Team) -> None:
    for reviewer_id in TeamMembership.objects.filter(team=team).values_list("user_id", flat=True):
        _push_later(reviewer_id, "break.schedule")
    transaction.on_commit(lambda: team_realtime.team_changed(team_id=team.pk))


TEAM_FIELDS = ("exposure_cap_units", "break_every", "break_length", "cooldown", "severe_per_hour", "shift_length")
