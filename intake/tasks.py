from __future__ import annotations

import kombu.exceptions
from celery import shared_task
from django.conf import settings
from django.db import InterfaceError, OperationalError

from intake import services
from intake.media import DecodeBusy

# What a task may meet that says nothing about the item: the database or the broker unreachable for a while (a
# restart, a full connection pool), or the process's decode budget full. It retries with exponential backoff (2 s,
# 4 s, ... capped at 30 s, with jitter) instead of leaving the item "processing"; after the last retry the beat
# task below sends it again. The backoff stays under the broker's visibility timeout (settings: a held retry
# must not be redelivered as a duplicate while it waits).
TRANSIENT = (OperationalError, InterfaceError, OSError, DecodeBusy, kombu.exceptions.OperationalError)


# Named as before the re-cut of issue 23 (module moderation.tasks): messages already queued stay understood.
@shared_task(name="moderation.tasks.process_item", acks_late=True, reject_on_worker_lost=True,
             autoretry_for=TRANSIENT, retry_backoff=2,
             retry_backoff_max=settings.VEIL_TASK_HOLD_SECONDS, retry_jitter=True, max_retries=12)
def process_item(item_id: int) -> str:
    """Idempotent: safe to run twice for the same item (redelivery after a crashed worker)."""
    item = services.item_process(item_id=item_id)
    return item.status if item is not None else "missing"


@shared_task(name="moderation.processing_requeue_stuck")
def processing_requeue_stuck() -> int:
    """Items whose processing task never reached the broker (it was down at ingest) get it now."""
    return services.items_requeue_processing()


