"""Reads for review: queues and their counts, and which items a person may see, hold or reveal."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import User
from django.db.models import Count, FilteredRelation, Q, QuerySet
from django.utils import timezone

from core import compiled
from core.roles import Role, has_role
from intake.models import ContentItem
from review.models import Claim, Queue, ViewingPreference


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


def items_visible_to(*, user: User) -> QuerySet[ContentItem]:
    """Requester accounts see what they submitted; leads and admins see everything; moderators see what they hold
    or have decided. Anything else is 404, not 403, so ids cannot be probed."""
    items = ContentItem.objects.select_related("queue").prefetch_related("decisions__policy")
    if has_role(user, Role.TEAM_LEAD):
        return items
    rule = Q(submitted_by=user) if has_role(user, Role.REQUESTER) else Q(pk__in=[])
    if has_role(user, Role.MODERATOR):
        # Copies of the picture someone is reviewing are theirs to see too (blurred, reveal logged).
        rule |= (Q(claims__reviewer=user, claims__ended_at__isnull=True) | Q(decisions__reviewer=user)
                 | Q(cluster__members__claims__reviewer=user, cluster__members__claims__ended_at__isnull=True))
    return items.filter(rule).distinct()



def item_held_by(*, user: User, item_id: int) -> ContentItem | None:
    """The item, with its queue, if the user holds its lease. Read on every decision and renewal: compiled once per
    process (core.compiled), the queryset its definition."""

    def build(*, item_id: int, user_id: int) -> QuerySet[ContentItem, Any]:
        held = (ContentItem.objects.filter(pk=item_id, claims__reviewer_id=user_id, claims__ended_at__isnull=True)
                .order_by("created_at", "id"))  # first()'s order, the model's
        query: QuerySet[ContentItem, Any] = held.values(*compiled.model_paths(ContentItem, ""),
                                                       *compiled.model_paths(Queue, "queue__"))[:1]
        return query

    found = compiled.rows("review.item_held_by", build, item_id=item_id, user_id=user.pk)
    item = compiled.instance(ContentItem, found[0], "") if found else None
    queue = compiled.instance(Queue, found[0], "queue__") if found else None
    if item is not None and queue is not None:
        item.queue = queue
    return item



def item_revealable_by(*, user: User, item_id: int) -> ContentItem | None:
    """The item if the user holds its lease, or holds the lease of a copy of the same picture."""
    item = ContentItem.objects.select_related("queue").filter(pk=item_id).first()
    if item is None:
        return None
    held = ContentItem.objects.filter(claims__reviewer=user, claims__ended_at__isnull=True)
    if held.filter(pk=item.pk).exists():
        return item
    if item.cluster_id is None:
        return None
    return item if held.filter(cluster_id=item.cluster_id).exists() else None



def viewing_preference_of(*, user: User) -> ViewingPreference:
    from django.conf import settings

    found = ViewingPreference.objects.filter(user=user).first()
    return found or ViewingPreference(
        user=user, blur_level=settings.VEIL_MIN_BLUR_LEVEL, reveal_seconds=settings.VEIL_REVEAL_SECONDS
    )
