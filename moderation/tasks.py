from __future__ import annotations

from typing import Any

from celery import shared_task

from moderation import services, webhooks


@shared_task(acks_late=True, reject_on_worker_lost=True, max_retries=3, default_retry_delay=5)
def process_item(item_id: int) -> str:
    """Idempotent: safe to run twice for the same item (redelivery after a crashed worker)."""
    item = services.item_process(item_id=item_id)
    return item.status if item is not None else "missing"


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=None)
def deliver_webhook(self: Any, delivery_id: int) -> str:
    """One attempt per run; a failure schedules the next with exponential backoff. Attempts are bounded by
    VEIL_WEBHOOK_MAX_ATTEMPTS in webhooks.webhook_deliver, so Celery's own retry limit is off. Idempotent: a
    delivered or abandoned delivery is never sent again, and the task creates no rows but attempts."""
    outcome = webhooks.webhook_deliver(delivery_id=delivery_id)
    if outcome.retry_in is not None and not self.request.is_eager:
        raise self.retry(countdown=outcome.retry_in)
    # Embedded mode (eager Celery) runs this inside the request that made the decision, and eager retries ignore
    # the countdown: one attempt only, so a receiver that is down costs a moderator at most one timeout. The
    # retries follow from `manage.py resend_webhooks --due` (cron), each once its backoff has passed.
    return outcome.status


@shared_task(name="moderation.processing_requeue_stuck")
def processing_requeue_stuck() -> int:
    """Items whose processing task never reached the broker (it was down at ingest) get it now."""
    return services.items_requeue_processing()
