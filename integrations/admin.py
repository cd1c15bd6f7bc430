"""Webhook deliveries and their attempts: evidence, read-only (core.admin.ReadOnlyAdmin)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from core.admin import ReadOnlyAdmin
from integrations.models import WebhookAttempt, WebhookDelivery


class WebhookAttemptInline(admin.TabularInline[WebhookAttempt, WebhookDelivery]):
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
