from django.contrib import admin

from review_queue.models import Claim, Policy, Queue


class PolicyInline(admin.TabularInline):  # type: ignore[type-arg]
    model = Policy
    extra = 1


@admin.register(Queue)
class QueueAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ["name", "slug", "requester", "is_active"]
    prepopulated_fields = {"slug": ["name"]}
    filter_horizontal = ["submitters"]
    inlines = [PolicyInline]
    fieldsets = [
        (None, {"fields": ["name", "slug", "purpose", "requester", "is_active", "submitters", "lease_seconds"]}),
        ("Integrations", {"fields": ["coop_type_id", "webhook_url", "webhook_secret"],
                          "description": "Decision webhooks and Coop submission: see the README, Integrations."}),
    ]


@admin.register(Claim)
class ClaimAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ["id", "item", "reviewer", "claimed_at", "expires_at", "ended_at", "outcome"]
    list_filter = ["outcome"]

    def has_change_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False
