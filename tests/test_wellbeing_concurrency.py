"""On PostgreSQL, with real threads: one reviewer's concurrent claims queue up behind their shift lock, so the cap
is never passed, not by a single item, and one shift is opened however many claims arrive at once."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta

import pytest
from django.db import close_old_connections, connection
from django.utils import timezone

from core.errors import ReviewError
from intake.models import ContentItem
from review.models import Claim
from review.services import item_claim
from tests.helpers.factories import make_item, make_queue, make_user
from tests.helpers.wellbeing import set_policy
from wellbeing.models import ExposureEntry, Shift

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]
THREADS = 20


def severe_items(count: int):
    queue = make_queue()
    for seed in range(count):
        make_item(queue, seed=seed, severity=3, process=False)
    ContentItem.objects.filter(queue=queue).update(status=ContentItem.Status.READY)
    return queue


def run_threads(work: Callable[[], None]) -> list[BaseException]:
    errors: list[BaseException] = []
    barrier = threading.Barrier(THREADS)

    def run() -> None:
        try:
            barrier.wait(timeout=30)
            work()
        except BaseException as exc:  # surfaced by the caller
            errors.append(exc)
        finally:
            close_old_connections()
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return errors


def test_twenty_concurrent_claims_of_severe_items_never_pass_the_cap():
    # Every severe item counts exactly one unit (60 weighted seconds); the cap is 10 units: exactly 10 items fit.
    set_policy(exposure_cap_units=10, item_seconds_min=60, item_seconds_max=60, cooldown=timedelta(0),
               severe_per_hour=1000)
    queue = severe_items(40)
    reviewer = make_user("mo", "moderator")
    claimed: list[int] = []
    refusals: list[str] = []
    lock = threading.Lock()

    def work() -> None:
        while True:
            try:
                claim = item_claim(reviewer=reviewer, queue=queue)
            except ReviewError as exc:
                with lock:
                    refusals.append(exc.code)
                return
            with lock:
                claimed.append(claim.item_id)
            # Decide it at once, so the next claim is a new item rather than the one held.
            Claim.objects.filter(pk=claim.pk, ended_at__isnull=True).update(ended_at=timezone.now(), outcome="decided")
            ContentItem.objects.filter(pk=claim.item_id).update(
                status=ContentItem.Status.DECIDED
            )

    errors = run_threads(work)
    assert not errors, errors[:3]
    assert set(refusals) == {"cap_reached"} and len(refusals) == THREADS
    assert len(set(claimed)) == 10
    entries = ExposureEntry.objects.filter(reviewer=reviewer)
    assert entries.count() == 10
    assert sum(e.exposure if e.exposure is not None else e.reserved for e in entries) == 600
    assert Shift.objects.filter(reviewer=reviewer).count() == 1


def test_twenty_first_claims_at_once_open_one_shift_and_lease_one_item():
    queue = severe_items(5)
    reviewer = make_user("mo", "moderator")
    got: list[int] = []

    def work() -> None:
        got.append(item_claim(reviewer=reviewer, queue=queue).pk)

    errors = run_threads(work)
    assert not errors, errors[:3]
    assert len(set(got)) == 1  # the holder gets the same item back
    assert Shift.objects.filter(reviewer=reviewer).count() == 1
    assert ExposureEntry.objects.filter(reviewer=reviewer).count() == 1
