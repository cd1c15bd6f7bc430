"""Admin for the exposure policy (organisation and queue layers, validated and audited) and read-only records.

Check-ins are deliberately absent: they are health data, and administrators are not occupational health. Personal
limits and category opt-outs are absent too: they belong to the moderator.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.forms import ModelForm
from django.http import HttpRequest

from wellbeing import services
from wellbeing.models import Break, ExposureEntry, OrganisationPolicy, PolicyChange, QueuePolicy, Shift


class ReadOnlyAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(OrganisationPolicy)
class OrganisationPolicyAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    fieldsets = [
        ("Shifts", {"fields": ["shift_length", "day_start", "day_cutoff", "rest_between_shifts"]}),
        ("Exposure cap", {
            "description": "1 unit = one minute with severe content on screen; milder items count a percentage of "
            "that. Default 240 units = 4 hours, the lower end of what organisations such as the IWF allow.",
            "fields": ["exposure_cap_units", "weight_none", "weight_low", "weight_medium", "near_cap_percent"],
        }),
        ("Severe items", {"fields": ["severe_per_hour", "cooldown", "interleave_benign"]}),
        ("Breaks", {"fields": ["break_every", "break_length", "break_window"]}),
        ("How time on screen is counted", {"fields": ["item_seconds_min", "item_seconds_max",
                                                      "reveal_extra_percent"]}),
    ]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return not OrganisationPolicy.objects.exists()

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: OrganisationPolicy, form: ModelForm, change: bool) -> None:  # type: ignore[type-arg]
        services.organisation_policy_save(policy=obj, by=request.user if request.user.is_authenticated else None)  # type: ignore[arg-type]


@admin.register(QueuePolicy)
class QueuePolicyAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ["queue", "specialist_category", "exposure_cap_units", "severe_per_hour", "cooldown"]

    def save_model(self, request: HttpRequest, obj: QueuePolicy, form: ModelForm, change: bool) -> None:  # type: ignore[type-arg]
        services.queue_policy_save(policy=obj, by=request.user if request.user.is_authenticated else None)  # type: ignore[arg-type]


@admin.register(PolicyChange)
class PolicyChangeAdmin(ReadOnlyAdmin):
    list_display = ["at", "layer", "queue", "subject", "changed_by", "before", "after"]
    list_filter = ["layer"]
    date_hierarchy = "at"


@admin.register(Shift)
class ShiftAdmin(ReadOnlyAdmin):
    list_display = ["reviewer", "started_at", "ends_at", "ended_at", "end_reason"]
    list_filter = ["end_reason"]


@admin.register(ExposureEntry)
class ExposureEntryAdmin(ReadOnlyAdmin):
    list_display = ["claimed_at", "reviewer", "severity", "category", "counted_seconds", "reveal_count", "exposure",
                    "reserved"]
    list_filter = ["severity"]
    date_hierarchy = "claimed_at"


@admin.register(Break)
class BreakAdmin(ReadOnlyAdmin):
    list_display = ["reviewer", "kind", "due_at", "started_at", "ends_at", "ended_at", "started_automatically"]
    list_filter = ["kind", "started_automatically"]
