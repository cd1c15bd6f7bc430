"""Reads for the review queue."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.models import User
from django.db.models import Count, FilteredRelation, Q
from django.utils import timezone

from moderation.models import ContentItem
from review_queue.models import Claim, Queue


@dataclass(frozen=True)
class QueueSummary:
    queue: Queue
    waiting: int
    escalated: int


def queue_summaries(*, queue_ids: list[int] | None = None) -> list[QueueSummary]:
    queues = Queue.objects.filter(is_active=True)
    if queue_ids is not None:
        queues = queues.filter(pk__in=queue_ids)
    now = timezone.now()
    Status = ContentItem.Status
    # Only the items still in play are joined (the condition goes into the JOIN, so the (queue, status, …) index
    # finds them): a queue's decided history grows without end and is never counted. This runs after every claim
    # and decision, for every console.
    queues = queues.annotate(
        open_items=FilteredRelation("items", condition=Q(items__status__in=[Status.READY, Status.IN_REVIEW,
                                                                            Status.ESCALATED]))
    )
    # An item whose lease ran out is waiting again even before anyone has expired it.
    lapsed = Q(open_items__status=Status.IN_REVIEW, open_items__lease_expires_at__lte=now)
    annotated = queues.annotate(
        waiting=Count(
            "open_items",
            filter=Q(open_items__status=Status.READY) | (lapsed & Q(open_items__escalated_at__isnull=True)),
        ),
        escalated=Count(
            "open_items",
            filter=Q(open_items__status=Status.ESCALATED) | (lapsed & Q(open_items__escalated_at__isnull=False)),
        ),
    ).order_by("name")
    return [QueueSummary(queue=q, waiting=q.waiting, escalated=q.escalated) for q in annotated]


def queue_counts(*, queue_ids: list[int] | None = None) -> dict[str, dict[str, int]]:
    return {
        s.queue.slug: {"waiting": s.waiting, "escalated": s.escalated} for s in queue_summaries(queue_ids=queue_ids)
    }


def open_claim_for(*, reviewer: User) -> Claim | None:
    return (
        Claim.objects.select_related("item", "queue")
        .filter(reviewer=reviewer, ended_at__isnull=True, expires_at__gt=timezone.now())
        .first()
    )
