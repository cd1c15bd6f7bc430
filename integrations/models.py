"""Decision webhooks: one delivery per final decision, and its attempts.

Their tables were created by the app now called intake (label "moderation") and stay there: `app_label` keeps
these models in that app's migrations, so the re-cut of issue 23 moved code, not data."""

from __future__ import annotations

import uuid
from typing import Any

from django.db import models
from django.utils.translation import gettext_lazy


class WebhookDelivery(models.Model):
    """One final decision announced to its queue's callback URL: at least once, with a stable idempotency key."""

    class Status(models.TextChoices):
        PENDING = "pending", gettext_lazy("Pending")
        DELIVERED = "delivered", gettext_lazy("Delivered")
        FAILED = "failed", gettext_lazy("Gave up")

    # The Idempotency-Key header: the same on every attempt, so a receiver can drop a repeat.
    key = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    decision = models.OneToOneField("moderation.Decision", on_delete=models.CASCADE, related_name="webhook_delivery")
    # The queue the item was submitted to: its secret signs every attempt (so a rotated secret applies at once).
    queue = models.ForeignKey("review_queue.Queue", null=True, on_delete=models.SET_NULL, related_name="+")
    url = models.CharField(max_length=500)
    payload: models.JSONField[Any, Any] = models.JSONField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING, db_index=True)
    attempt_count = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        app_label = "moderation"
        ordering = ["-created_at", "-id"]
        verbose_name_plural = gettext_lazy("webhook deliveries")

    def __str__(self) -> str:
        return f"webhook {self.key} of decision #{self.decision_id} ({self.status})"



class WebhookAttempt(models.Model):
    delivery = models.ForeignKey(WebhookDelivery, on_delete=models.CASCADE, related_name="attempts")
    at = models.DateTimeField(auto_now_add=True)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.CharField(max_length=500, blank=True)
    duration_ms = models.PositiveIntegerField(default=0)

    class Meta:
        app_label = "moderation"
        ordering = ["at", "id"]

    def __str__(self) -> str:
        return f"attempt on {self.delivery_id} at {self.at:%H:%M:%S}: {self.status_code or self.error}"
