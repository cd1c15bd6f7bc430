"""The claim benchmark's floor (benchmarks/claim_floor.py) does the work Veil's claim does, or its numbers mean nothing.

The floor runs Veil's claim statements in one PL/pgSQL call to measure the best a "gate inside PostgreSQL" could do
(docs/benchmarks.md, Claiming). These tests run a reviewer's routine claims through it and through `item_claim`,
on the same clock, and compare every row both write: the claims, their audit events, the exposure reservations and
the settlements of the items finished before.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from django.contrib.auth.models import User

from benchmarks import claim_floor
from config import db
from moderation.models import AuditEvent
from review_queue.models import Claim, Queue
from review_queue.services import item_claim
from tests.factories import make_queue
from tests.test_wellbeing_helpers import T0, finish, ready_item
from wellbeing.models import ExposureEntry

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]

ENTRY_FIELDS = ("severity", "category", "weight_percent", "claimed_at", "ended_at", "screen_seconds", "reveal_count",
                "reveal_seconds", "counted_seconds", "reserved", "exposure", "day", "week", "queue_id")


def _claims(reviewer: User, queue: Queue, claim_one: Callable[[], Claim]) -> None:
    """Four claims on a fixed clock, each item decided 40 s after it was claimed: the first starts the shift, the
    next three are the routine claims the floor runs itself (each settles the item finished before)."""
    with time_machine.travel(T0, tick=False) as clock:
        first = item_claim(reviewer=reviewer, queue=queue)  # starts the shift: the floor defers this to Veil's gate
        clock.shift(40)
        finish(first)
        for _ in range(3):
            clock.shift(5)
            claim = claim_one()
            clock.shift(40)
            finish(claim)


def _written(reviewer: User) -> dict[str, Any]:
    claims = list(Claim.objects.filter(reviewer=reviewer).order_by("claimed_at")
                  .values_list("claimed_at", "expires_at", "ended_at", "outcome", "queue_id"))
    entries = list(ExposureEntry.objects.filter(reviewer=reviewer).order_by("claimed_at").values_list(*ENTRY_FIELDS))
    shifts = set(ExposureEntry.objects.filter(reviewer=reviewer).values_list("shift_id", flat=True))
    audits = [sorted(data) for data in AuditEvent.objects.filter(actor=reviewer, action=AuditEvent.Action.CLAIMED)
              .order_by("at", "id").values_list("data", flat=True)]
    return {"claims": claims, "entries": entries, "shifts": len(shifts), "audits": audits}


def test_the_claim_floor_writes_the_rows_item_claim_writes(moderator, moderator2):  # type: ignore[no-untyped-def]
    claim_floor.install()
    queue = make_queue()
    for _ in range(10):  # five claims each
        ready_item(queue)
    _claims(moderator, queue, lambda: item_claim(reviewer=moderator, queue=queue))

    def through_the_floor() -> Claim:
        from django.utils import timezone

        row = db.fetchone(claim_floor.CALL, [moderator2.pk, queue.pk, timezone.now(), queue.lease_duration_seconds])
        assert row is not None and row[0] is not None, "the floor deferred a routine claim to Veil's gate"
        claim_id, _item_id = row[0]
        return Claim.objects.select_related("item", "reviewer").get(pk=claim_id)

    _claims(moderator2, queue, through_the_floor)
    with time_machine.travel(T0 + timedelta(minutes=10), tick=False):
        # One more claim each, which settles the last item decided.
        item_claim(reviewer=moderator, queue=queue)
        through_the_floor()

    veil, floor = _written(moderator), _written(moderator2)
    assert len(veil["claims"]) == 5 and len(veil["entries"]) == 5
    assert floor == veil
    settled = [entry for entry in floor["entries"] if entry[ENTRY_FIELDS.index("exposure")] is not None]
    assert len(settled) == 4  # every settlement of moderator2's items was written by the floor's own statement


def test_the_claim_floor_defers_what_it_does_not_decide_to_veils_gate(moderator):  # type: ignore[no-untyped-def]
    """No shift yet, or a lease still held: the function returns NULL and the benchmark runs `item_claim`."""
    claim_floor.install()
    queue = make_queue()
    ready_item(queue)
    ready_item(queue)
    with time_machine.travel(T0, tick=False):
        params = [moderator.pk, queue.pk, T0, queue.lease_duration_seconds]
        assert db.fetchone(claim_floor.CALL, params) == (None,)  # no shift
        held = item_claim(reviewer=moderator, queue=queue)
        assert db.fetchone(claim_floor.CALL, params) == (None,)  # a lease held
        again = claim_floor.claim(moderator.pk, queue.pk, request_loads=True)
    assert again == (held.item_id, held.pk)
    assert Claim.objects.filter(reviewer=moderator).count() == 1
