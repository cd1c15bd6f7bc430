"""Helpers shared by the wellbeing tests (no tests in this module)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from intake.models import ContentItem
from review.decisions import do_decision
from review.models import Claim, Queue
from review.services import item_claim
from tests.helpers.factories import make_item
from wellbeing.models import OrganisationPolicy

# A Monday morning, so "today" and "this week" are easy to reason about.
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

_seed = iter(range(10_000, 1_000_000))


def set_policy(**values: Any) -> OrganisationPolicy:
    """Store the organisation's policy directly (tests may use durations shorter than the admin allows)."""
    policy, _ = OrganisationPolicy.objects.update_or_create(pk=1, defaults=values)
    return policy


def ready_item(queue: Queue, *, severity: int = 0, category: str = "unspecified") -> ContentItem:
    """An item waiting for review, without running the image pipeline (not what these tests are about)."""
    item = make_item(queue, seed=next(_seed), severity=severity, category=category, process=False)
    ContentItem.objects.filter(pk=item.pk).update(status=ContentItem.Status.READY)
    item.refresh_from_db()
    return item


def finish(claim: Claim) -> None:
    """Approve the item: the claim ends now (by the test's clock)."""
    do_decision(item=claim.item, reviewer=claim.reviewer, action="approve", policy=None, reason="")


def work_until(clock, reviewer, queue, minutes: int) -> None:
    """From T0, claim and approve an item every 5 minutes before `minutes` (never idle long enough to rest)."""
    for offset in range(0, minutes, 5):
        clock.move_to(T0 + timedelta(minutes=offset))
        finish(item_claim(reviewer=reviewer, queue=queue))
