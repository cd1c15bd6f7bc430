"""Reads for content items, with the access rule for each kind of reader built in."""

from __future__ import annotations

from intake.models import ContentItem


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
