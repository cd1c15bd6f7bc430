"""Reads for content items, with the access rule for each kind of reader built in."""

from __future__ import annotations

from django.contrib.auth.models import User
from django.db.models import Q, QuerySet

from config.roles import Role, has_role
from moderation.models import ContentItem, ViewingPreference


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
    return (ContentItem.objects.select_related("queue")
            .filter(pk=item_id, claims__reviewer=user, claims__ended_at__isnull=True).first())


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


def cluster_arrivals(*, item: ContentItem) -> list[ContentItem]:
    """Every copy of this picture that arrived, oldest first, each with how it matched (`matches`)."""
    if item.cluster_id is None:
        return [item]
    return list(
        ContentItem.objects.filter(cluster_id=item.cluster_id)
        .select_related("queue", "submitted_by")
        .prefetch_related("matches")
        .order_by("created_at", "id")
    )
