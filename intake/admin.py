"""Admin for items (read-only, no images, no reviewer), hash lists and the operational audit trail (webhooks:
integrations/admin.py).

Admin is not a back door to the throughput ranking the lead view refuses to show: nothing here lists who did what to
which item when. Decisions, reveals and claims are not in the admin at all, and the audit trail shown here leaves out
the reviewers' own actions (claims, reveals, decisions...). Operators get `manage.py item_history` (one item's
story, without naming reviewers) and `manage.py review_workload` (per queue and day, never per person) instead.
tests/test_admin_no_speed.py fails if a per-reviewer timing list comes back.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from core.admin import ReadOnlyAdmin
from core.models import AuditEvent
from intake.models import ContentItem, HashList, MatchEvidence, SplitPair

# What reviewers do to items: with the actor and the time, a list of these is a per-person speed record.
REVIEW_ACTIONS = (
    AuditEvent.Action.CLAIMED, AuditEvent.Action.RELEASED, AuditEvent.Action.LEASE_EXPIRED,
    AuditEvent.Action.REVEALED, AuditEvent.Action.DECIDED, AuditEvent.Action.ESCALATED,
    AuditEvent.Action.SECOND_OPINION, AuditEvent.Action.PREFERENCES_CHANGED, AuditEvent.Action.SPLIT,
)


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    """Ingest, processing, matching, hash lists, tokens, webhooks: what operators look into. Reviewers' own actions
    are left out (the queryset, so no filter, search or URL brings them back)."""

    list_display = ["at", "action", "actor", "item", "data"]
    list_filter = ["action"]
    search_fields = ["item__id", "item__external_id"]
    date_hierarchy = "at"
    list_select_related = ["actor", "item"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[AuditEvent]:
        return super().get_queryset(request).exclude(action__in=REVIEW_ACTIONS)


ITEM_HIDDEN = ["original", "preview", "display", "second_opinion_excluded"]


@admin.register(ContentItem)
class ContentItemAdmin(admin.ModelAdmin[ContentItem]):
    # No image here: admin pages are not the place to look at content, the console (blurred) is.
    list_display = ["id", "queue", "status", "severity", "category", "external_id", "created_at"]
    list_filter = ["status", "severity", "category", "queue"]
    search_fields = ["external_id", "sha256"]
    # Nor who holds or held it: one item's lease holder and expiry, item after item, is a speed record too.
    exclude = ITEM_HIDDEN
    readonly_fields = [f.name for f in ContentItem._meta.get_fields()
                       if getattr(f, "concrete", False) and f.name not in ITEM_HIDDEN]

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


# Viewing preferences are not in the admin either: they are each moderator's own, and only ever stricter than the
# organisation's (VEIL_MIN_BLUR_LEVEL, VEIL_REVEAL_SECONDS), like their personal limits.


@admin.register(HashList)
class HashListAdmin(admin.ModelAdmin[HashList]):
    list_display = ["name", "label", "action", "target_queue", "severity", "entry_count"]

    @admin.display(description="entries")
    def entry_count(self, obj: HashList) -> int:
        return obj.entries.count()


@admin.register(MatchEvidence)
class MatchEvidenceAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "item", "matched_item", "method", "distance"]


@admin.register(SplitPair)
class SplitPairAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "item_low", "item_high", "reason"]
    exclude = ["split_by"]


