from __future__ import annotations

from celery import shared_task

from moderation import services


@shared_task(acks_late=True, reject_on_worker_lost=True, max_retries=3, default_retry_delay=5)
def process_item(item_id: int) -> str:
    """Idempotent: safe to run twice for the same item (redelivery after a crashed worker)."""
    item = services.item_process(item_id=item_id)
    return item.status if item is not None else "missing"
