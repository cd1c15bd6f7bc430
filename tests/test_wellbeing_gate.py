"""The claim gate: exposure ledger, cap, severe limits, gentler routing, shifts. Time moves with time-machine."""

from __future__ import annotations

from datetime import time, timedelta

import pytest
import time_machine
from django.test import Client

from core.errors import ReviewError
from intake.models import ContentItem, Decision
from review.models import Claim, RevealEvent
from review.services import NothingToClaim, item_claim
from tests.helpers.factories import make_queue
from tests.helpers.wellbeing import T0, finish, ready_item, set_policy
from wellbeing import selectors, services
from wellbeing.models import ExposureEntry, PersonalPolicy, QueuePolicy, Shift

pytestmark = pytest.mark.django_db
S = timedelta(seconds=1)
MIN = timedelta(minutes=1)


def refused(reviewer, queue) -> ReviewError:
    with pytest.raises(ReviewError) as exc:
        item_claim(reviewer=reviewer, queue=queue)
    return exc.value


def test_first_claim_starts_a_shift_and_reserves_exposure(moderator):
    queue = make_queue()
    item = ready_item(queue, severity=3, category="violence")
    with time_machine.travel(T0, tick=False):
        claim = item_claim(reviewer=moderator, queue=queue)
        again = item_claim(reviewer=moderator, queue=queue)
    assert again.pk == claim.pk
    shift = Shift.objects.get(reviewer=moderator)
    assert (shift.started_at, shift.ends_at, shift.ended_at) == (T0, T0 + timedelta(hours=8), None)
    entry = ExposureEntry.objects.get()
    assert (entry.claim_id, entry.item_id, entry.shift_id) == (claim.pk, item.pk, shift.pk)
    assert (entry.severity, entry.category, entry.weight_percent) == (3, "violence", 100)
    assert entry.reserved == 300 and entry.exposure is None
    assert (str(entry.day), str(entry.week)) == ("2026-03-02", "2026-03-02")


def test_settlement_measures_claim_to_decision_and_reveals(moderator):
    queue = make_queue()
    ready_item(queue, severity=2)
    with time_machine.travel(T0, tick=False) as clock:
        claim = item_claim(reviewer=moderator, queue=queue)
        clock.shift(10 * S)
        RevealEvent.objects.create(item=claim.item, claim=claim, reviewer=moderator, started_at=T0 + 10 * S,
                                   allowed_seconds=10, ended_at=T0 + 16 * S)
        clock.shift(30 * S)
        finish(claim)
        services.exposure_settle(reviewer=moderator)
    entry = ExposureEntry.objects.get()
    assert (entry.screen_seconds, entry.reveal_count, entry.reveal_seconds) == (40, 1, 6)
    assert entry.counted_seconds == 46  # each revealed second counts twice
    assert entry.exposure == 23  # medium: 50 %
    assert entry.ended_at == T0 + 40 * S


def test_a_claim_that_ends_settles_every_reveal_once_and_ends_the_open_one(moderator):
    """Claim.end settles from the claim's reveals as read with its ledger entry (one row per reveal): each counts
    once, and the one still open ends with the claim and counts up to its end, as the general settlement would."""
    queue = make_queue()
    ready_item(queue, severity=3)
    with time_machine.travel(T0, tick=False) as clock:
        claim = item_claim(reviewer=moderator, queue=queue)
        for start, end in ((5, 9), (12, 20)):
            RevealEvent.objects.create(item=claim.item, claim=claim, reviewer=moderator, started_at=T0 + start * S,
                                       allowed_seconds=10, ended_at=T0 + end * S)
        still_open = RevealEvent.objects.create(item=claim.item, claim=claim, reviewer=moderator,
                                                started_at=T0 + 30 * S, allowed_seconds=10)
        clock.shift(33 * S)
        assert claim.end(outcome=Claim.Outcome.DECIDED, at=T0 + 33 * S)
        assert not claim.end(outcome=Claim.Outcome.DECIDED, at=T0 + 34 * S)  # once only
    still_open.refresh_from_db()
    assert still_open.ended_at == T0 + 33 * S
    entry = ExposureEntry.objects.get()
    assert (entry.screen_seconds, entry.reveal_count, entry.reveal_seconds) == (33, 3, 4 + 8 + 3)
    assert entry.counted_seconds == 33 + 15 and entry.exposure == 48 and entry.ended_at == T0 + 33 * S
    # The general settlement, from the same rows read its own way, gives the same figures.
    expected = selectors.settlements([ExposureEntry(pk=0, claim=claim, claimed_at=T0, weight_percent=100,
                                                    reserved=entry.reserved)],
                                     policy=selectors.settlement_policy())[0]
    assert (expected.reveal_count, expected.reveal_seconds, expected.exposure) == (3, 15, 48)


def test_a_claim_with_no_ledger_entry_still_ends_its_open_reveal(moderator):
    queue = make_queue()
    ready_item(queue, severity=1)
    with time_machine.travel(T0, tick=False):
        claim = item_claim(reviewer=moderator, queue=queue)
        ExposureEntry.objects.filter(claim=claim).delete()  # as before the ledger existed
        reveal = RevealEvent.objects.create(item=claim.item, claim=claim, reviewer=moderator, started_at=T0,
                                            allowed_seconds=10)
        assert claim.end(outcome=Claim.Outcome.RELEASED, at=T0 + 4 * S)
    reveal.refresh_from_db()
    assert reveal.ended_at == T0 + 4 * S


@pytest.mark.parametrize(("seconds", "counted"), [(2, 15), (900, 300)])
def test_time_on_screen_is_bounded(moderator, seconds, counted):
    queue = make_queue()
    ready_item(queue, severity=3)
    with time_machine.travel(T0, tick=False) as clock:
        claim = item_claim(reviewer=moderator, queue=queue)
        clock.shift(seconds * S)
        Claim.objects.filter(pk=claim.pk).update(ended_at=T0 + seconds * S, outcome="decided")
        services.exposure_settle(reviewer=moderator)
    assert ExposureEntry.objects.get().counted_seconds == counted


def test_near_the_cap_only_milder_items_then_the_cap_stops_claiming(moderator):
    # Each item counts exactly 240 s at its weight: severe 240, medium 120. Cap: 10 units = 600 weighted seconds.
    set_policy(exposure_cap_units=10, item_seconds_min=240, item_seconds_max=240, cooldown=timedelta(0))
    queue = make_queue()
    severe = [ready_item(queue, severity=3) for _ in range(4)]
    medium = ready_item(queue, severity=2)
    with time_machine.travel(T0, tick=False):
        for expected in severe[:2]:
            claim = item_claim(reviewer=moderator, queue=queue)
            assert claim.item_id == expected.pk
            finish(claim)
        # 480 of 600 used: a severe item (240) no longer fits, the medium one (120) does.
        claim = item_claim(reviewer=moderator, queue=queue)
        assert claim.item_id == medium.pk
        finish(claim)
        error = refused(moderator, queue)
    assert error.code == "cap_reached" and "exposure limit" in error.detail
    assert ExposureEntry.objects.filter(reviewer=moderator).count() == 3
    assert sum(e.exposure or 0 for e in ExposureEntry.objects.all()) == 600


def test_near_the_cap_with_only_severe_items_waiting_says_why(moderator):
    set_policy(exposure_cap_units=10, item_seconds_min=240, item_seconds_max=240, cooldown=timedelta(0))
    queue = make_queue()
    for _ in range(3):
        ready_item(queue, severity=3)
    with time_machine.travel(T0, tick=False):
        for _ in range(2):
            finish(item_claim(reviewer=moderator, queue=queue))
        error = refused(moderator, queue)
    assert error.code == "cap_near" and error.status == 409


def test_near_the_cap_milder_items_come_first(moderator):
    set_policy(exposure_cap_units=10, item_seconds_min=240, item_seconds_max=240, cooldown=timedelta(0),
               near_cap_percent=40)
    queue = make_queue()
    ready_item(queue, severity=3)
    medium = ready_item(queue, severity=2)
    low = ready_item(queue, severity=1)
    with time_machine.travel(T0, tick=False):
        finish(item_claim(reviewer=moderator, queue=queue))  # 240 of 600: past 40 %
        assert item_claim(reviewer=moderator, queue=queue).item_id == low.pk
    assert medium.pk < low.pk  # older, but milder goes first now


def test_severe_items_per_hour(moderator):
    set_policy(severe_per_hour=2, cooldown=timedelta(0))
    queue = make_queue()
    for _ in range(3):
        ready_item(queue, severity=3)
    with time_machine.travel(T0, tick=False) as clock:
        for _ in range(2):
            finish(item_claim(reviewer=moderator, queue=queue))
            clock.shift(MIN)
        error = refused(moderator, queue)
        assert error.code == "severe_limit" and "09:00" not in error.detail and "10:00" in error.detail
        medium = ready_item(queue, severity=2)
        claim = item_claim(reviewer=moderator, queue=queue)
        assert claim.item_id == medium.pk  # milder items still come
        finish(claim)
        clock.move_to(T0 + 61 * MIN)
        assert item_claim(reviewer=moderator, queue=queue).item.severity == 3


def test_cooldown_after_a_severe_item(moderator):
    set_policy(cooldown=timedelta(seconds=60))
    queue = make_queue()
    ready_item(queue, severity=3)
    ready_item(queue, severity=3)
    with time_machine.travel(T0, tick=False) as clock:
        claim = item_claim(reviewer=moderator, queue=queue)
        clock.shift(20 * S)
        finish(claim)
        clock.shift(30 * S)
        error = refused(moderator, queue)
        assert error.code == "cooldown" and "09:01:20" in error.detail
        clock.shift(31 * S)
        assert item_claim(reviewer=moderator, queue=queue).item.severity == 3


def test_after_a_severe_item_a_benign_one_comes_next(moderator):
    set_policy(cooldown=timedelta(0))
    queue = make_queue()
    first = ready_item(queue, severity=3)
    second_severe = ready_item(queue, severity=3)
    benign = ready_item(queue, severity=0)
    with time_machine.travel(T0, tick=False):
        claim = item_claim(reviewer=moderator, queue=queue)
        assert claim.item_id == first.pk
        finish(claim)
        claim = item_claim(reviewer=moderator, queue=queue)
        assert claim.item_id == benign.pk  # interleaved, though the severe one is older
        finish(claim)
        assert item_claim(reviewer=moderator, queue=queue).item_id == second_severe.pk


def test_opting_out_of_a_category_except_in_its_specialist_queue(moderator):
    PersonalPolicy.objects.create(user=moderator, opted_out_categories=["self_harm"])
    queue = make_queue()
    ready_item(queue, category="self_harm")
    error = refused(moderator, queue)
    assert error.code == "opted_out"
    other = ready_item(queue, category="spam")
    assert item_claim(reviewer=moderator, queue=queue).item_id == other.pk

    specialist = make_queue()
    QueuePolicy.objects.create(queue=specialist, specialist_category="self_harm")
    item = ready_item(specialist, category="self_harm")
    finish(Claim.objects.get(reviewer=moderator, ended_at__isnull=True))
    assert item_claim(reviewer=moderator, queue=specialist).item_id == item.pk


def test_an_empty_queue_is_still_just_empty(moderator):
    PersonalPolicy.objects.create(user=moderator, opted_out_categories=["self_harm"])
    with pytest.raises(NothingToClaim):
        item_claim(reviewer=moderator, queue=make_queue())


def test_a_queue_may_only_make_the_cap_stricter(moderator):
    set_policy(item_seconds_min=240, item_seconds_max=240, cooldown=timedelta(0))
    strict = make_queue()
    QueuePolicy.objects.create(queue=strict, exposure_cap_units=4)  # 240 weighted seconds: one severe item
    for _ in range(2):
        ready_item(strict, severity=3)
    with time_machine.travel(T0, tick=False):
        finish(item_claim(reviewer=moderator, queue=strict))
        assert refused(moderator, strict).code == "cap_reached"
    loose = QueuePolicy.objects.get(queue=strict)
    loose.exposure_cap_units = 1000  # looser than the organisation: ignored, and refused by validation
    loose.save()
    assert selectors.policy_effective(reviewer=moderator, queue=strict).exposure_cap_units == 240
    with pytest.raises(Exception, match="stricter"):
        loose.full_clean()


def test_shift_length_ends_claiming_and_rest_comes_before_the_next(moderator):
    queue = make_queue()
    for _ in range(3):
        ready_item(queue)
    with time_machine.travel(T0, tick=False) as clock:
        finish(item_claim(reviewer=moderator, queue=queue))
        clock.move_to(T0 + timedelta(hours=8, minutes=1))
        error = refused(moderator, queue)
        assert error.code == "shift_over" and "17:00" in error.detail
        shift = Shift.objects.get(reviewer=moderator)
        assert (shift.ended_at, shift.end_reason) == (T0 + timedelta(hours=8), Shift.EndReason.LENGTH)
        clock.move_to(T0 + timedelta(hours=12))
        error = refused(moderator, queue)
        assert error.code == "shift_over" and "04:00" in error.detail  # 11 h after 17:00
        clock.move_to(T0 + timedelta(hours=19, minutes=1))
        item_claim(reviewer=moderator, queue=queue)
    assert Shift.objects.filter(reviewer=moderator).count() == 2


def test_a_shift_ended_early_resumes_until_its_planned_end(moderator):
    queue = make_queue()
    ready_item(queue)
    ready_item(queue)
    with time_machine.travel(T0, tick=False) as clock:
        finish(item_claim(reviewer=moderator, queue=queue))
        clock.shift(timedelta(hours=2))
        services.shift_end(reviewer=moderator)
        clock.shift(timedelta(minutes=30))
        item_claim(reviewer=moderator, queue=queue)
    shift = Shift.objects.get(reviewer=moderator)
    assert shift.ended_at is None and shift.started_at == T0


def test_the_day_cutoff_is_hard(moderator):
    set_policy(day_cutoff=time(17, 30))
    queue = make_queue()
    ready_item(queue)
    ready_item(queue)
    with time_machine.travel(T0 + timedelta(hours=7), tick=False) as clock:  # 16:00
        finish(item_claim(reviewer=moderator, queue=queue))
        assert Shift.objects.get().ends_at == T0 + timedelta(hours=8, minutes=30)
        clock.move_to(T0 + timedelta(hours=8, minutes=31))
        error = refused(moderator, queue)
    assert error.code == "shift_over" and "cut-off" in error.detail
    assert Shift.objects.get().end_reason == Shift.EndReason.CUTOFF


def test_the_api_obeys_the_same_gate(moderator):
    set_policy(exposure_cap_units=10, item_seconds_min=300, item_seconds_max=300, cooldown=timedelta(0))
    queue = make_queue(slug="api-cap")
    for _ in range(3):
        ready_item(queue, severity=3)
    client = Client()
    client.force_login(moderator)
    with time_machine.travel(T0, tick=False):
        for _ in range(2):
            response = client.post("/api/v1/queues/api-cap/claim/")
            assert response.status_code == 200
            finish(Claim.objects.filter(reviewer=moderator).latest("pk"))
        response = client.post("/api/v1/queues/api-cap/claim/")
    assert response.status_code == 409
    assert response.json()["error"] == "cap_reached"


def test_the_console_page_says_why(moderator):
    set_policy(exposure_cap_units=10, item_seconds_min=300, item_seconds_max=300, cooldown=timedelta(0))
    queue = make_queue(slug="page-cap")
    for _ in range(3):
        ready_item(queue, severity=3)
    client = Client()
    client.force_login(moderator)
    with time_machine.travel(T0, tick=False):
        for _ in range(2):
            client.post("/console/queues/page-cap/next/")
            finish(Claim.objects.filter(reviewer=moderator).latest("pk"))
        response = client.post("/console/queues/page-cap/next/", follow=True)
    assert "exposure limit" in response.content.decode()


def test_items_decided_by_a_near_duplicate_add_no_exposure(moderator):
    queue = make_queue()
    original = ready_item(queue, severity=3)
    copy = ready_item(queue, severity=3)
    with time_machine.travel(T0, tick=False):
        claim = item_claim(reviewer=moderator, queue=queue)
        assert claim.item_id == original.pk
        finish(claim)
        decision = Decision.objects.get(item=original)
        # The copy is decided by carrying the decision over, as the matcher does: nobody is shown it.
        Decision.objects.create(item=copy, reviewer=None, action="approve", is_final=True, carried_over_from=decision)
        ContentItem.objects.filter(pk=copy.pk).update(status=ContentItem.Status.DECIDED)
        with pytest.raises(NothingToClaim):
            item_claim(reviewer=moderator, queue=queue)
        services.exposure_settle(reviewer=moderator)
    assert list(ExposureEntry.objects.values_list("item_id", flat=True)) == [original.pk]


def test_exposure_sums_per_day_week_and_shift(moderator, moderator2):
    set_policy(item_seconds_min=60, item_seconds_max=60, cooldown=timedelta(0))
    queue = make_queue()
    for _ in range(5):
        ready_item(queue, severity=3)
    with time_machine.travel(T0, tick=False) as clock:
        finish(item_claim(reviewer=moderator, queue=queue))
        finish(item_claim(reviewer=moderator2, queue=queue))
        clock.move_to(T0 + timedelta(days=1))
        finish(item_claim(reviewer=moderator, queue=queue))
        clock.move_to(T0 + timedelta(days=7))
        finish(item_claim(reviewer=moderator, queue=queue))
        for user in (moderator, moderator2):
            services.exposure_settle(reviewer=user)
    by_day = selectors.exposure_totals(group_by="day", reviewers=[moderator.pk])
    assert [(str(r["day"]), r["exposure_seconds"], r["items"]) for r in by_day] == [
        ("2026-03-02", 60, 1), ("2026-03-03", 60, 1), ("2026-03-09", 60, 1)]
    by_week = selectors.exposure_totals(group_by="week", reviewers=[moderator.pk])
    assert [(str(r["week"]), r["exposure_seconds"]) for r in by_week] == [("2026-03-02", 120), ("2026-03-09", 60)]
    by_shift = selectors.exposure_totals(group_by="shift")
    assert len(by_shift) == 4 and {r["exposure_seconds"] for r in by_shift} == {60}
    everyone = {r["reviewer"]: r["exposure_seconds"] for r in selectors.exposure_totals(group_by="reviewer")}
    assert everyone == {moderator.pk: 180, moderator2.pk: 60}
