"""Pushes to connected consoles. State changes happen in the request path; this only announces them.

Every push is best-effort: if the channel layer (Redis) is down, the change is already committed and pages still
work; consoles notice the broken socket and say so.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Coroutine
from typing import Any

from asgiref.sync import SyncToAsync, async_to_sync
from channels.layers import InMemoryChannelLayer, get_channel_layer

log = logging.getLogger(__name__)

QUEUES_GROUP = "queues"
PUSH_TIMEOUT_SECONDS = 10.0


def user_group(user_id: int) -> str:
    return f"user.{user_id}"


def push(group: str, message: dict[str, Any]) -> bool:
    """Send one message to a group; False (and a log line) when the channel layer could not take it."""
    layer = get_channel_layer()
    if layer is None:
        return False
    try:
        if isinstance(layer, InMemoryChannelLayer) or _asgi_loop() is not None:
            # Under daphne, async_to_sync hands the send to the server's own event loop, where the consumers and
            # their in-memory queues live.
            async_to_sync(layer.group_send)(group, message)
        else:
            _PUSH_LOOP.run(layer.group_send(group, message), timeout=PUSH_TIMEOUT_SECONDS)
    except Exception:  # the realtime layer must never break a committed change
        log.warning("realtime push to %s failed", group, exc_info=True)
        return False
    return True


def _asgi_loop() -> asyncio.AbstractEventLoop | None:
    """The ASGI server's event loop when this thread runs a sync view for it (asgiref keeps it in a thread-local,
    as async_to_sync itself looks it up), else None."""
    local = SyncToAsync.threadlocal
    if getattr(local, "main_event_loop_pid", None) != os.getpid():
        return None
    loop: asyncio.AbstractEventLoop | None = getattr(local, "main_event_loop", None)
    return loop


class _PushLoop:
    """One event loop per process, on a thread of its own, for pushes made where no ASGI server's loop is at hand:
    a Celery worker, a management command, a benchmark. There async_to_sync would start a thread and a new event
    loop for every push, and channels_redis, which keeps its connections per event loop, would open a new Redis
    connection for each. Here one loop and its connections serve every push of the process, in order."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pid = 0

    def _running(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None or self._pid != os.getpid():  # a forked child starts its own
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name="veil-push-loop", daemon=True).start()
                self._loop, self._pid = loop, os.getpid()
            return self._loop

    def run(self, coroutine: Coroutine[Any, Any, Any], *, timeout: float) -> Any:
        future = asyncio.run_coroutine_threadsafe(coroutine, self._running())
        try:
            return future.result(timeout=timeout)
        except TimeoutError:
            future.cancel()
            raise


_PUSH_LOOP = _PushLoop()


def queue_counts_changed(*, queue_ids: list[int] | None = None) -> bool:
    """Say that queue counts changed. The message carries no counts: each console process reads them once for all
    its consoles (review_queue.consumers.CountsReader), so a claim or decision does not read them in its request,
    and a burst of changes costs one read per process instead of one per change."""
    return push(QUEUES_GROUP, {"type": "queue.changed", "queues": queue_ids})


def notify_user(*, user_id: int, event: str, **payload: Any) -> bool:
    return push(user_group(user_id), {"type": "user.event", "event": event, "payload": payload})
