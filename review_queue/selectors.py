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
    annotated = queues.annotate(
        waiting=Count("open_items", filter=Q(open_items__status=Status.READY)),
        escalated=Count("open_items", filter=Q(open_items__status=Status.ESCALATED)),
    ).order_by("name")
    # An item whose lease ran out is waiting again even before anyone has expired it (few: the beat sweeps them
    # every few seconds; found through the open-claim expiry index).
    lapsed: dict[tuple[int, bool], int] = {}
    lapsed_claims = Claim.objects.filter(ended_at__isnull=True, expires_at__lte=now)
    if queue_ids is not None:
        lapsed_claims = lapsed_claims.filter(queue_id__in=queue_ids)
    for row in lapsed_claims.values("queue_id", "item__escalated_at").order_by():
        key = (row["queue_id"], row["item__escalated_at"] is not None)
        lapsed[key] = lapsed.get(key, 0) + 1
    return [QueueSummary(queue=q, waiting=q.waiting + lapsed.get((q.pk, False), 0),
                         escalated=q.escalated + lapsed.get((q.pk, True), 0)) for q in annotated]


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
