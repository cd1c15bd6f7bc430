from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from moderation.models import (
    AuditEvent,
    ContentItem,
    Decision,
    HashList,
    MatchEvidence,
    RevealEvent,
    SplitPair,
    ViewingPreference,
    WebhookAttempt,
    WebhookDelivery,
)


class ReadOnlyAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """Records of what happened are evidence: visible in admin, never edited there."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ["at", "action", "actor", "item", "data"]
    list_filter = ["action"]
    search_fields = ["actor__username", "item__id", "item__external_id"]
    date_hierarchy = "at"
    list_select_related = ["actor", "item"]


@admin.register(Decision)
class DecisionAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "item", "action", "policy", "reviewer", "is_final"]
    list_filter = ["action", "is_final"]


@admin.register(RevealEvent)
class RevealEventAdmin(ReadOnlyAdmin):
    list_display = ["started_at", "item", "reviewer", "allowed_seconds", "ended_at"]


@admin.register(ContentItem)
class ContentItemAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    # No image here: admin pages are not the place to look at content, the console (blurred) is.
    list_display = ["id", "queue", "status", "severity", "category", "external_id", "created_at"]
    list_filter = ["status", "severity", "category", "queue"]
    search_fields = ["external_id", "sha256"]
    readonly_fields = [f.name for f in ContentItem._meta.get_fields() if getattr(f, "concrete", False)]
    exclude = ["original", "preview", "display"]

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(ViewingPreference)
class ViewingPreferenceAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ["user", "blur_level", "reveal_seconds", "grayscale_on_reveal"]


@admin.register(HashList)
class HashListAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ["name", "label", "action", "target_queue", "severity", "entry_count"]

    @admin.display(description="entries")
    def entry_count(self, obj: HashList) -> int:
        return obj.entries.count()


@admin.register(MatchEvidence)
class MatchEvidenceAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "item", "matched_item", "method", "distance"]


@admin.register(SplitPair)
class SplitPairAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "item_low", "item_high", "split_by", "reason"]


class WebhookAttemptInline(admin.TabularInline):  # type: ignore[type-arg]
    model = WebhookAttempt
    extra = 0
    can_delete = False
    readonly_fields = ["at", "status_code", "error", "duration_ms"]

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "key", "decision", "url", "status", "attempt_count", "delivered_at"]
    list_filter = ["status"]
    search_fields = ["key", "url", "decision__item__id", "decision__item__external_id"]
    list_select_related = ["decision"]
    inlines = [WebhookAttemptInline]


@admin.register(WebhookAttempt)
class WebhookAttemptAdmin(ReadOnlyAdmin):
    list_display = ["at", "delivery", "status_code", "error", "duration_ms"]
    list_select_related = ["delivery"]
