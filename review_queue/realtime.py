"""Pushes to connected consoles. State changes happen in the request path; this only announces them.

Every push is best-effort: if the channel layer (Redis) is down, the change is already committed and pages still
work; consoles notice the broken socket and say so.
"""

from __future__ import annotations

import logging
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

log = logging.getLogger(__name__)

QUEUES_GROUP = "queues"


def user_group(user_id: int) -> str:
    return f"user.{user_id}"


def _send(group: str, message: dict[str, Any]) -> bool:
    layer = get_channel_layer()
    if layer is None:
        return False
    try:
        async_to_sync(layer.group_send)(group, message)
    except Exception:  # the realtime layer must never break a committed change
        log.warning("realtime push to %s failed", group, exc_info=True)
        return False
    return True


def queue_counts_changed(*, queue_ids: list[int] | None = None) -> bool:
    """Say that queue counts changed. The message carries no counts: each console process reads them once for all
    its consoles (review_queue.consumers.CountsReader), so a claim or decision does not read them in its request,
    and a burst of changes costs one read per process instead of one per change."""
    return _send(QUEUES_GROUP, {"type": "queue.changed", "queues": queue_ids})


def notify_user(*, user_id: int, event: str, **payload: Any) -> bool:
    return _send(user_group(user_id), {"type": "user.event", "event": event, "payload": payload})
