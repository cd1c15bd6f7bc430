from typing import Any

from django import forms
from django.contrib import admin

from review.models import Policy, Queue


class QueueAdminForm(forms.ModelForm[Queue]):
    """The webhook secret is write-only: never sent back to the browser; leaving the box empty keeps it."""

    webhook_secret = forms.CharField(
        required=False, max_length=128, strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="HMAC-SHA256 key of the X-Veil-Signature header; at least 16 characters. Never shown again: "
        "leave empty to keep the current one.",
    )

    class Meta:
        model = Queue
        fields = ["name", "slug", "purpose", "requester", "is_active", "submitters", "lease_seconds", "coop_type_id",
                  "webhook_url", "webhook_secret"]

    def clean_webhook_secret(self) -> str:
        entered: str = self.cleaned_data.get("webhook_secret") or ""
        if not entered and self.instance.pk is not None:
            return str(Queue.objects.filter(pk=self.instance.pk).values_list("webhook_secret", flat=True).first())
        return entered

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk is not None and self.instance.webhook_secret:
            self.fields["webhook_secret"].help_text = "A secret is set (not shown). " + str(
                self.fields["webhook_secret"].help_text)


class PolicyInline(admin.TabularInline[Policy, Queue]):
    model = Policy
    extra = 1


@admin.register(Queue)
class QueueAdmin(admin.ModelAdmin[Queue]):
    form = QueueAdminForm
    list_display = ["name", "slug", "requester", "is_active"]
    prepopulated_fields = {"slug": ["name"]}
    filter_horizontal = ["submitters"]
    inlines = [PolicyInline]
    fieldsets = [
        (None, {"fields": ["name", "slug", "purpose", "requester", "is_active", "submitters", "lease_seconds"]}),
        ("Integrations", {"fields": ["coop_type_id", "webhook_url", "webhook_secret"],
                          "description": "Decision webhooks and Coop submission: see the README, Integrations."}),
    ]


# Claims are not in the admin: who held which item from when to when is a per-person speed record (see
# intake/admin.py; `manage.py review_workload` gives operators the counts per queue and day).
