"""The audit log and a person's language and time zone: what every layer writes or reads.

Their tables were created by the app now called intake (label "moderation") and stay there: `app_label` keeps
these models in that app's migrations, so the re-cut of issue 23 moved code, not data."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy


class PersonalLocale(models.Model):
    """The language and time zone a person chose for Veil. Blank means "not chosen": the browser's language (then
    VEIL_LANGUAGE) and the organisation's time zone (VEIL_TIME_ZONE) apply."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="locale")
    language = models.CharField(max_length=8, blank=True, choices=settings.LANGUAGES)
    time_zone = models.CharField(max_length=64, blank=True)
    updated_at = models.DateTimeField(auto_now=True)


    class Meta:
        app_label = "moderation"

    def __str__(self) -> str:
        return f"language and time zone of {self.user_id}"



class AuditEvent(models.Model):
    class Action(models.TextChoices):
        INGESTED = "ingested", gettext_lazy("Item ingested")
        READY = "ready", gettext_lazy("Item ready for review")
        PROCESSING_FAILED = "processing_failed", gettext_lazy("Processing failed")
        CLAIMED = "claimed", gettext_lazy("Item claimed")
        RELEASED = "released", gettext_lazy("Item released")
        LEASE_EXPIRED = "lease_expired", gettext_lazy("Lease expired")
        REVEALED = "revealed", gettext_lazy("Clear image revealed")
        DECIDED = "decided", gettext_lazy("Decision")
        ESCALATED = "escalated", gettext_lazy("Escalated")
        SECOND_OPINION = "second_opinion", gettext_lazy("Second opinion asked")
        PREFERENCES_CHANGED = "preferences_changed", gettext_lazy("Viewing preferences changed")
        MATCHED = "matched", gettext_lazy("Matched an earlier item")
        CARRIED_OVER = "carried_over", gettext_lazy("Decision carried over")
        HASH_LIST_MATCH = "hash_list_match", gettext_lazy("Matched a hash list")
        SPLIT = "split", gettext_lazy("Split from its cluster")
        HASH_LIST_IMPORTED = "hash_list_imported", gettext_lazy("Hash list imported")
        TOKEN_CREATED = "token_created", gettext_lazy("API token created")
        SUBMISSION_REFUSED = "submission_refused", gettext_lazy("Submission refused")
        HASH_LOOKUP = "hash_lookup", gettext_lazy("Hash looked up (HMA API)")
        WEBHOOK_DELIVERED = "webhook_delivered", gettext_lazy("Decision webhook delivered")
        WEBHOOK_FAILED = "webhook_failed", gettext_lazy("Decision webhook gave up")
        LOGIN_LOCKED_OUT = "login_locked_out", gettext_lazy("Sign-in locked out (too many failures)")
        FRAME_MATCH = "frame_match", gettext_lazy("A frame matched a known picture or video")

    at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    action = models.CharField(max_length=32, choices=Action.choices, db_index=True)
    item = models.ForeignKey("moderation.ContentItem", null=True, blank=True, on_delete=models.SET_NULL,
                             related_name="audit")
    data: models.JSONField[Any, Any] = models.JSONField(default=dict, blank=True)

    class Meta:
        app_label = "moderation"
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.action} item={self.item_id} actor={self.actor_id}"
