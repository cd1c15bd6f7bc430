from __future__ import annotations

from typing import Any

from celery import shared_task
from django.conf import settings
from django.db import InterfaceError, OperationalError

from integrations import webhooks


# Task names are kept from before the re-cut of issue 23 (module moderation.tasks), so messages already queued
# by a running version are still understood by the next one.
@shared_task(name="moderation.tasks.deliver_webhook", bind=True, acks_late=True, reject_on_worker_lost=True,
             max_retries=None,
             autoretry_for=(OperationalError, InterfaceError), retry_backoff=2,
             retry_backoff_max=settings.VEIL_TASK_HOLD_SECONDS, retry_jitter=True)
def deliver_webhook(self: Any, delivery_id: int) -> str:
    """One attempt per run; a failure schedules the next with exponential backoff. Attempts are bounded by
    VEIL_WEBHOOK_MAX_ATTEMPTS in webhooks.webhook_deliver, so Celery's own retry limit is off. Idempotent: a
    delivered or abandoned delivery is never sent again, and the task creates no rows but attempts."""
    outcome = webhooks.webhook_deliver(delivery_id=delivery_id)
    held = outcome.retry_in is not None and outcome.retry_in <= settings.VEIL_TASK_HOLD_SECONDS
    if held and not self.request.is_eager:
        raise self.retry(countdown=outcome.retry_in)
    # A longer wait is not held in the worker: the broker would hand the held message to another worker after its
    # visibility timeout, a duplicate each time. Beat's webhooks_resend_due sends it once its backoff has passed.
    # Embedded mode (eager Celery) runs this inside the request that made the decision, and eager retries ignore
    # the countdown: one attempt only, so a receiver that is down costs a moderator at most one timeout. The
    # retries follow from `manage.py resend_webhooks --due` (cron), each once its backoff has passed.
    return outcome.status



@shared_task(name="moderation.webhooks_resend_due")
def webhooks_resend_due() -> int:
    """Retries whose backoff has passed (beat, every 30 s), and deliveries whose task was lost (idle 90 minutes)."""
    due = sorted(set(webhooks.webhooks_due()) | set(webhooks.webhooks_idle(idle_minutes=90)))
    for delivery_id in due:
        deliver_webhook.delay(delivery_id)
    return len(due)
