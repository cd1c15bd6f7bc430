"""Admin for the exposure policy (organisation and queue layers, validated and audited) and read-only records.

Check-ins are deliberately absent: they are health data, and administrators are not occupational health. Personal
limits, category opt-outs and consent to OH follow-up are absent too: they belong to the moderator. Administrators
manage departments, teams, their members and leads, and team limits (stricter than the organisation's). OH staff
are shown, not edited: they change only through `manage.py health_access` (wellbeing/health_access.py), audited and
shown to the team's members, so that two saves here cannot make anyone (an administrator included) OH.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.contrib.auth.models import User
from django.db.models import QuerySet
from django.forms import ModelForm
from django.http import HttpRequest

from core.admin import ReadOnlyAdmin
from core.roles import Role
from wellbeing import services
from wellbeing.models import (
    DataAccess,
    Department,
    HealthAccessGrant,
    LeadAction,
    OrganisationPolicy,
    PolicyChange,
    QueuePolicy,
    Team,
    TeamMembership,
    TeamPolicy,
)


@admin.register(OrganisationPolicy)
class OrganisationPolicyAdmin(admin.ModelAdmin[OrganisationPolicy]):
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

    def save_model(self, request: HttpRequest, obj: OrganisationPolicy, form: ModelForm[OrganisationPolicy],
                   change: bool) -> None:
        services.organisation_policy_save(policy=obj, by=request.user if request.user.is_authenticated else None)


@admin.register(QueuePolicy)
class QueuePolicyAdmin(admin.ModelAdmin[QueuePolicy]):
    list_display = ["queue", "specialist_category", "exposure_cap_units", "severe_per_hour", "cooldown"]

    def save_model(self, request: HttpRequest, obj: QueuePolicy, form: ModelForm[QueuePolicy], change: bool) -> None:
        services.queue_policy_save(policy=obj, by=request.user if request.user.is_authenticated else None)


@admin.register(PolicyChange)
class PolicyChangeAdmin(ReadOnlyAdmin):
    list_display = ["at", "layer", "queue", "team", "changed_by", "before", "after"]
    list_filter = ["layer"]
    date_hierarchy = "at"
    exclude = ["subject"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[PolicyChange]:
        # Changes to someone's personal limits are theirs alone, like the limits themselves.
        return super().get_queryset(request).exclude(layer=PolicyChange.Layer.PERSONAL)


# Shifts, the exposure ledger and breaks are not in the admin: per reviewer and item, with seconds on screen and
# timestamps, they are a per-person speed record (see intake/admin.py). Each person exports their own from My
# wellbeing; occupational health sees them in aggregate.


# ---- teams ---------------------------------------------------------------------------------------------------------


def _without(users: list[User], role: Role) -> list[str]:
    """Accounts not in the role's group (a superuser's blanket roles do not make them a lead or OH staff)."""
    return [u.get_username() for u in users if not u.groups.filter(name=role.value).exists()]


class TeamForm(forms.ModelForm[Team]):
    class Meta:
        model = Team
        fields = ["name", "department", "leads"]

    def clean_leads(self) -> list[User]:
        leads = list(self.cleaned_data["leads"])
        missing = _without(leads, Role.TEAM_LEAD)
        if missing:
            raise forms.ValidationError(f"Not in the team_lead group: {', '.join(missing)}.")
        return leads


class MembershipForm(forms.ModelForm[TeamMembership]):
    class Meta:
        model = TeamMembership
        fields = ["user"]

    def clean_user(self) -> User:
        user: User = self.cleaned_data["user"]
        if not user.groups.filter(name__in=[Role.MODERATOR.value, Role.TEAM_LEAD.value]).exists():
            raise forms.ValidationError("Team members review items: give the account the moderator or team_lead role.")
        return user


class MembershipInline(admin.TabularInline[TeamMembership, Team]):
    model = TeamMembership
    form = MembershipForm
    extra = 1
    autocomplete_fields = ["user"]
    verbose_name = "member"
    verbose_name_plural = "members (a reviewer belongs to one team at most)"


@admin.register(Department)
class DepartmentAdmin(admin.ModelAdmin[Department]):
    list_display = ["name"]
    search_fields = ["name"]


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin[Team]):
    form = TeamForm
    list_display = ["name", "department"]
    list_filter = ["department"]
    search_fields = ["name"]
    filter_horizontal = ["leads"]
    readonly_fields = ["occupational_health"]
    inlines = [MembershipInline]

    @admin.display(description="Occupational health")
    def occupational_health(self, team: Team) -> str:
        names = ", ".join(sorted(u.get_username() for u in team.health_staff.all())) if team.pk else ""
        return (f"{names or 'nobody'} (changed only with `manage.py health_access`: audited, and shown to the "
                "team's members)")


@admin.register(HealthAccessGrant)
class HealthAccessGrantAdmin(ReadOnlyAdmin):
    list_display = ["team", "staff", "granted_at", "granted_by", "ended_at", "ended_by", "how"]
    list_filter = ["how"]
    date_hierarchy = "granted_at"


@admin.register(TeamPolicy)
class TeamPolicyAdmin(admin.ModelAdmin[TeamPolicy]):
    list_display = ["team", "exposure_cap_units", "break_every", "break_length", "severe_per_hour", "shift_length"]

    def save_model(self, request: HttpRequest, obj: TeamPolicy, form: ModelForm[TeamPolicy], change: bool) -> None:
        services.team_policy_save(policy=obj, by=request.user if request.user.is_authenticated else None)


@admin.register(LeadAction)
class LeadActionAdmin(ReadOnlyAdmin):
    list_display = ["at", "lead", "action", "subject", "team"]
    list_filter = ["action"]
    date_hierarchy = "at"


@admin.register(DataAccess)
class DataAccessAdmin(ReadOnlyAdmin):
    list_display = ["at", "viewer", "what", "team", "department", "period_start", "period_end", "subject"]
    list_filter = ["what"]
    date_hierarchy = "at"
