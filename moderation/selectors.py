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
        rule |= Q(lease_holder=user) | Q(decisions__reviewer=user)
    return items.filter(rule).distinct()


def item_held_by(*, user: User, item_id: int) -> ContentItem | None:
    return ContentItem.objects.select_related("queue").filter(pk=item_id, lease_holder=user).first()


def viewing_preference_of(*, user: User) -> ViewingPreference:
    from django.conf import settings

    found = ViewingPreference.objects.filter(user=user).first()
    return found or ViewingPreference(
        user=user, blur_level=settings.VEIL_MIN_BLUR_LEVEL, reveal_seconds=settings.VEIL_REVEAL_SECONDS
    )
