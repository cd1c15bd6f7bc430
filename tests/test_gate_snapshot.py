"""The claim gate's snapshot (selectors.gate_snapshot) says exactly what the per-question selectors say, and every
claim settles its exposure when it ends, whatever ends it.

The snapshot asks its questions as scalar subqueries of one statement, built from the same querysets the selectors
aggregate; each test builds a reviewer's history and compares the two. Both test passes run the same code.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Any

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext

from review.models import Claim, RevealEvent
from review.services import item_claim, item_release, leases_expire
from tests.helpers.factories import make_queue
from tests.helpers.lead import make_team
from tests.helpers.wellbeing import T0, finish, ready_item, set_policy
from wellbeing import selectors, services
from wellbeing.models import Break, ExposureEntry, PersonalPolicy, QueuePolicy, Shift, TeamPolicy
from wellbeing.selectors import GateSnapshot

pytestmark = pytest.mark.django_db
MIN = timedelta(minutes=1)
S = timedelta(seconds=1)


def _snapshot(reviewer: Any, queue: Any, now: datetime) -> GateSnapshot:
    shift = selectors.shift_open(reviewer_id=reviewer.pk)
    return selectors.gate_snapshot(reviewer=reviewer, queue=queue, shift=shift, now=now)


def _assert_matches_selectors(reviewer, queue, now) -> None:
    snap = _snapshot(reviewer, queue, now)
    shift = selectors.shift_open(reviewer_id=reviewer.pk)
    assert snap.policy == selectors.policy_effective(reviewer=reviewer, queue=queue)
    assert snap.policy.sources == selectors.policy_effective(reviewer=reviewer, queue=queue).sources
    assert snap.opted_out == selectors.categories_excluded(reviewer=reviewer, queue=queue)
    assert (snap.severe_last_hour, snap.severe_oldest) == selectors.severe_in_last_hour(reviewer=reviewer, now=now)
    assert snap.spoken_for == (selectors.exposure_spoken_for(shift=shift) if shift else 0)
    held = Claim.objects.filter(reviewer=reviewer, ended_at__isnull=True, expires_at__gt=now).first()
    assert snap.held_claim_id == (held.pk if held else None)
    assert snap.last_severe_end == selectors.last_severe_end(reviewer=reviewer)
    if shift is not None:
        last = selectors.last_finished_entry(shift=shift)
        assert snap.last_finished_severity == (last.severity if last else None)
        assert snap.last_activity == selectors.last_activity(shift=shift)
        assert snap.break_rows == Break.objects.filter(shift=shift).count()


def test_a_reviewer_with_no_history_reads_the_organisation_defaults(moderator):
    queue = make_queue()
    snap = _snapshot(moderator, queue, T0)
    assert snap.held_claim_id is None and snap.team_id is None
    assert (snap.spoken_for, snap.break_rows, snap.severe_last_hour) == (0, 0, 0)
    assert snap.last_finished is None and snap.last_severe_end is None and not snap.expired_leases_in_queue
    assert snap.policy == selectors.policy_effective(reviewer=moderator, queue=queue)


def test_every_policy_layer_and_the_opt_outs_combine_as_the_selectors_do(moderator):
    set_policy(exposure_cap_units=200, day_cutoff=time(22, 0), interleave_benign=True)
    queue = make_queue()
    QueuePolicy.objects.create(queue=queue, specialist_category="violence", severe_per_hour=6, weight_low=40)
    team = make_team("Night", department="Trust", members=[moderator])
    TeamPolicy.objects.create(team=team, shift_length=timedelta(hours=6), cooldown=timedelta(minutes=3))
    PersonalPolicy.objects.create(user=moderator, exposure_cap_units=120, break_every=timedelta(minutes=40),
                                  opted_out_categories=["violence", "sexual", "not-a-category"])
    snap = _snapshot(moderator, queue, T0)
    assert snap.team_id == team.pk
    assert snap.opted_out == {"sexual"}  # violence is this queue's specialist category
    effective = snap.policy
    assert (effective.exposure_cap_units, effective.shift_length, effective.cooldown) == (120, timedelta(hours=6),
                                                                                         timedelta(minutes=3))
    assert (effective.severe_per_hour, effective.weight_low, effective.day_cutoff) == (6, 40, time(22, 0))
    assert effective.sources["exposure_cap_units"] == "personal" and effective.sources["cooldown"] == "team"
    _assert_matches_selectors(moderator, queue, T0)

def test_a_shift_with_severe_and_revealed_items(moderator):
    set_policy(cooldown=timedelta(0), interleave_benign=False)
    queue = make_queue()
    for severity in (3, 1, 3, 2, 0, 3):
        ready_item(queue, severity=severity)
    with time_machine.travel(T0, tick=False) as clock:
        for n in range(5):
            claim = item_claim(reviewer=moderator, queue=queue)
            clock.shift(40 + 10 * n)
            if n in (1, 4):
                RevealEvent.objects.create(item=claim.item, claim=claim, reviewer=moderator,
                                           started_at=T0 + 30 * timedelta(seconds=1), allowed_seconds=10)
            finish(claim)
            clock.shift(5)
        now = T0 + 10 * MIN
        clock.move_to(now)
        snap = _snapshot(moderator, queue, now)
        # Every finished item is settled: its claim's end settled it.
        assert not ExposureEntry.objects.filter(exposure__isnull=True).exists()
        assert snap.last_finished_severity == 0 and snap.held_claim_id is None
        _assert_matches_selectors(moderator, queue, now)
        held = item_claim(reviewer=moderator, queue=queue)  # the last one stays open
        assert _snapshot(moderator, queue, now).held_claim_id == held.pk
        _assert_matches_selectors(moderator, queue, now)


def test_an_entry_whose_item_was_purged_counts_its_reservation(moderator):
    """An item deleted while it was on screen leaves its ledger entry without a claim: nothing ends the claim, so it
    counts the most it could have been (its reservation) until the reviewer's pages settle it to that same value."""
    queue = make_queue()
    ready_item(queue, severity=3)
    with time_machine.travel(T0, tick=False):
        claim = item_claim(reviewer=moderator, queue=queue)
        entry = ExposureEntry.objects.get(claim=claim)
        claim.item.delete()
        entry.refresh_from_db()
        assert entry.claim_id is None and entry.exposure is None
        shift = Shift.objects.get()
        assert selectors.exposure_spoken_for(shift=shift) == entry.reserved
        services.exposure_settle(reviewer=moderator)
        entry.refresh_from_db()
        assert entry.exposure == entry.reserved
        assert _snapshot(moderator, queue, T0).spoken_for == entry.reserved


def test_the_snapshot_sees_breaks_and_expired_leases(moderator, moderator2):
    set_policy(break_every=timedelta(minutes=50))
    queue = make_queue(lease_seconds=60)
    ready_item(queue)
    ready_item(queue)
    with time_machine.travel(T0, tick=False) as clock:
        item_claim(reviewer=moderator2, queue=queue)  # abandoned: its lease runs out
        claim = item_claim(reviewer=moderator, queue=queue)
        finish(claim)
        services.break_start(reviewer=moderator, minutes=5)
        now = T0 + 2 * MIN
        clock.move_to(now)
        snap = _snapshot(moderator, queue, now)
        assert snap.break_rows == 1 and snap.expired_leases_in_queue
        _assert_matches_selectors(moderator, queue, now)

def test_a_routine_claim_is_a_handful_of_statements(moderator):
    """The point of the snapshot: a routine claim (shift open, previous item finished) must not drift
    back to one query per question. Counted, not timed."""
    queue = make_queue()
    for _ in range(3):
        ready_item(queue, severity=1)
    with time_machine.travel(T0, tick=False) as clock:
        first = item_claim(reviewer=moderator, queue=queue)  # opens the shift
        clock.shift(30)
        finish(first)
        clock.shift(5)
        moderator.refresh_from_db()  # a request's fresh user: its roles are read once more
        with CaptureQueriesContext(connection) as queries:
            second = item_claim(reviewer=moderator, queue=queue)
    assert second.item_id != first.item_id
    statements = [q["sql"] for q in queries.captured_queries]
    # roles, shift lock, the snapshot, the policy rows (organisation, queue, team, personal), picking the item,
    # leasing it, claim, audit, exposure. (The test's own transaction turns item_claim's into a savepoint and holds
    # back the after-commit broadcast.) It was 30 before the snapshot read its figures in one statement.
    work = [s for s in statements if s not in ("BEGIN", "COMMIT") and not s.startswith(("SAVEPOINT", "RELEASE"))]
    assert len(work) <= 13, "\n".join(work)


def _settled(claim: Claim) -> ExposureEntry:
    entry = ExposureEntry.objects.get(claim=claim)
    assert entry.exposure is not None, "the claim ended but its exposure was not settled"
    return entry


@pytest.mark.parametrize("ending", ["decision", "release", "expiry", "break"])
def test_every_way_a_claim_ends_settles_its_exposure_in_that_transaction(moderator, ending):
    """Claim.end, the one implementation (review.models.Claim.end): a decision, a release, a lease running out
    and a break giving the item back all settle the item's exposure, with its reveal counted and closed."""
    set_policy(reveal_extra_percent=100)
    queue = make_queue(lease_seconds=120)
    ready_item(queue, severity=2)
    with time_machine.travel(T0, tick=False) as clock:
        claim = item_claim(reviewer=moderator, queue=queue)
        RevealEvent.objects.create(item=claim.item, claim=claim, reviewer=moderator, started_at=T0 + 10 * S,
                                   allowed_seconds=10)
        clock.shift(40)
        if ending == "decision":
            finish(claim)
        elif ending == "release":
            item_release(item=claim.item, reviewer=moderator)
        elif ending == "expiry":
            clock.shift(100)  # the lease ran out at 120 s
            assert leases_expire(queue=queue) == 1
        else:
            services.break_start(reviewer=moderator, minutes=5)
        entry = _settled(claim)
    claim.refresh_from_db()
    assert claim.ended_at is not None and entry.ended_at == claim.ended_at
    assert not RevealEvent.objects.filter(claim=claim, ended_at__isnull=True).exists()
    screen = (claim.ended_at - claim.claimed_at).total_seconds()
    assert (entry.screen_seconds, entry.reveal_count, entry.reveal_seconds) == (round(screen), 1, 10)
    policy = selectors.policy_effective(reviewer=moderator, queue=queue)
    assert entry.counted_seconds == max(policy.item_seconds_min, min(round(screen) + 10, policy.item_seconds_max))


def test_the_item_finished_before_is_settled_even_when_nothing_is_left_to_claim(moderator):
    from review.services import NothingToClaim

    queue = make_queue()
    ready_item(queue, severity=2)
    with time_machine.travel(T0, tick=False) as clock:
        first = item_claim(reviewer=moderator, queue=queue)
        clock.shift(40)
        finish(first)
        clock.shift(5)
        with pytest.raises(NothingToClaim):
            item_claim(reviewer=moderator, queue=queue)
    entry = _settled(first)
    assert entry.screen_seconds == 40 and entry.ended_at == T0 + timedelta(seconds=40)
