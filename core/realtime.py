"""Pushes to connected consoles. State changes happen in the request path; this only announces them.

Every push is best-effort: if the channel layer (Redis) is down, the change is already committed and pages still
work; consoles notice the broken socket and say so.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import os
import threading
import time
import weakref
from collections import deque
from dataclasses import dataclass
from typing import Any

from asgiref.sync import SyncToAsync, async_to_sync
from channels.layers import InMemoryChannelLayer, get_channel_layer

log = logging.getLogger(__name__)

QUEUES_GROUP = "queues"
PUSH_TIMEOUT_SECONDS = 10.0


def user_group(user_id: int) -> str:
    return f"user.{user_id}"


def push(group: str, message: dict[str, Any], *, coalesce: bool = False) -> bool:
    """Hand one message for a group to the channel layer, and return at once.

    With Redis the message joins this process's outbox for the caller's event loop (the ASGI server's when a sync
    view runs for it, else Veil's own push loop) and is sent from there, in order: a request never waits for Redis,
    and a Redis that stalls cannot hold up the server's request thread. `coalesce` marks a nudge that carries no
    news of its own ("queue counts changed"): while one of the same type for the same group is still waiting in the
    outbox, a new one merges into it, since that one is sent after both changes were committed.

    False (and a log line) when the message could not be taken; a send that fails later is logged and counted
    (see `flush`). The in-memory layer of embedded mode is sent to directly, as before.
    """
    layer = get_channel_layer()
    if layer is None:
        return False
    if isinstance(layer, InMemoryChannelLayer):
        try:
            # Under daphne, async_to_sync hands the send to the server's own event loop, where the consumers and
            # their in-memory queues live.
            async_to_sync(layer.group_send)(group, message)
        except Exception:  # the realtime layer must never break a committed change
            log.warning("realtime push to %s failed", group, exc_info=True)
            return False
        return True
    return _outbox().put(layer, group, message, coalesce=coalesce)


def flush(timeout: float = PUSH_TIMEOUT_SECONDS + 2) -> bool:
    """Wait (from a thread that is not running one of their loops) until this process's outboxes are empty: True
    when every push since the previous flush was sent, False when one failed or the wait timed out. For tests,
    benchmarks and the end of a command; requests never wait for pushes."""
    deadline = time.monotonic() + timeout
    ok = True
    for box in _all_outboxes():
        ok = box.wait_idle(max(0.0, deadline - time.monotonic())) and ok
    return ok


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

    def loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None or self._pid != os.getpid():  # a forked child starts its own
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name="veil-push-loop", daemon=True).start()
                self._loop, self._pid = loop, os.getpid()
            return self._loop


_PUSH_LOOP = _PushLoop()


@dataclass
class _Entry:
    layer: Any
    group: str
    message: dict[str, Any]


class _Outbox:
    """The pushes of this process waiting to be sent on one event loop, in the order they were made.

    One sender task at a time drains it, so a process has at most one send in flight per loop, however many
    request threads push. A send that fails (Redis down, or silent for PUSH_TIMEOUT_SECONDS) is logged, and the
    pushes queued behind it are dropped rather than sent late: a console whose socket lost its layer notices on
    its next heartbeat and is told the state as it is then when it reconnects (review.consumers). At most
    LIMIT pushes wait: a thread that pushes into a full outbox waits for room (at most PUSH_TIMEOUT_SECONDS), then
    the oldest waiting push is dropped, with a log line.
    """

    LIMIT = 1000

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._room = threading.Condition(self._lock)
        self._entries: deque[_Entry] = deque()
        self._sending = False
        self._failed = False  # since the last wait_idle

    def put(self, layer: Any, group: str, message: dict[str, Any], *, coalesce: bool) -> bool:
        with self._lock:
            if coalesce and self._merged(layer, group, message):
                return True
            if len(self._entries) >= self.LIMIT and not self._on_own_loop():
                # A burst faster than Redis takes it: the pusher waits for room, as it used to wait for Redis.
                self._room.wait_for(lambda: len(self._entries) < self.LIMIT, timeout=PUSH_TIMEOUT_SECONDS)
            if len(self._entries) >= self.LIMIT:
                dropped = self._entries.popleft()
                self._failed = True
                log.warning("realtime outbox full: dropped a push to %s", dropped.group)
            self._entries.append(_Entry(layer, group, dict(message)))
            if self._sending:
                return True
            self._sending = True
        try:
            self._loop.call_soon_threadsafe(self._start)
        except RuntimeError:  # the loop was closed under us
            with self._lock:
                self._entries.clear()
                self._sending = False
                self._failed = True
                self._idle.notify_all()
            log.warning("realtime push to %s failed: its event loop is closed", group)
            return False
        return True

    def _merged(self, layer: Any, group: str, message: dict[str, Any]) -> bool:
        """Fold a nudge into a waiting one of the same type for the same group (the lock is held)."""
        for entry in self._entries:
            if entry.layer is layer and entry.group == group and entry.message.get("type") == message.get("type"):
                if "queues" in entry.message or "queues" in message:
                    mine, theirs = entry.message.get("queues"), message.get("queues")
                    # None means "any queue"; otherwise the union, so no listener filtering on ids misses one.
                    entry.message["queues"] = None if mine is None or theirs is None else sorted({*mine, *theirs})
                return True
        return False

    def _start(self) -> None:
        self._loop.create_task(self._drain())

    async def _drain(self) -> None:
        emptied = False
        try:
            while True:
                with self._lock:
                    if not self._entries:
                        # Under the same lock as the check: a push made after it schedules a sender of its own.
                        self._sending = False
                        self._idle.notify_all()
                        emptied = True
                        return
                    entry = self._entries.popleft()
                    if len(self._entries) == self.LIMIT - 1:
                        self._room.notify_all()
                try:
                    await asyncio.wait_for(entry.layer.group_send(entry.group, entry.message),
                                           timeout=PUSH_TIMEOUT_SECONDS)
                except Exception:  # the realtime layer must never break a committed change
                    with self._lock:
                        dropped = len(self._entries)
                        self._entries.clear()
                        self._failed = True
                        self._room.notify_all()
                    log.warning("realtime push to %s failed; %d waiting pushes dropped", entry.group, dropped,
                                exc_info=True)
        finally:
            if not emptied:  # cancelled, as when the loop shuts down: nothing would ever send what waits
                with self._lock:
                    if self._entries:
                        self._failed = True
                    self._entries.clear()
                    self._sending = False
                    self._idle.notify_all()
                    self._room.notify_all()

    def _on_own_loop(self) -> bool:
        try:
            return asyncio.get_running_loop() is self._loop
        except RuntimeError:
            return False

    def wait_idle(self, timeout: float) -> bool:
        with self._lock:
            idle = self._idle.wait_for(lambda: not self._sending, timeout=timeout)
            ok = idle and not self._failed
            self._failed = False
            return ok


_outboxes: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Outbox] = weakref.WeakKeyDictionary()
_outboxes_lock = threading.Lock()


def _outbox() -> _Outbox:
    """The outbox of the loop that sends for the caller: the ASGI server's, or this process's push loop."""
    loop = _asgi_loop()
    if loop is None or loop.is_closed():
        loop = _PUSH_LOOP.loop()
    with _outboxes_lock:
        box = _outboxes.get(loop)
        if box is None:
            box = _outboxes[loop] = _Outbox(loop)
        return box


def _forget_outboxes_in_child() -> None:
    """A forked child has none of its parent's event loop threads: it starts with no outboxes of its own."""
    global _outboxes_lock
    _outboxes.clear()
    _outboxes_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_outboxes_in_child)
# A management command or a worker that ends right after a change still announces it (a dead Redis delays the
# exit by at most this long).
atexit.register(flush, 2.0)


def _all_outboxes() -> list[_Outbox]:
    try:
        mine: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
    except RuntimeError:
        mine = None
    with _outboxes_lock:
        for loop in [loop for loop in _outboxes if loop.is_closed()]:
            del _outboxes[loop]  # nothing more will be sent from a closed loop, nor waited for
        return [box for loop, box in _outboxes.items() if loop is not mine]


def queue_counts_changed(*, queue_ids: list[int] | None = None) -> bool:
    """Say that queue counts changed. The message carries no counts: each console process reads them once for all
    its consoles (review.consumers.CountsReader), so a claim or decision does not read them in its request,
    and a burst of changes costs one read per process instead of one per change. While one such message waits in
    the process's outbox, later ones merge into it (`push`'s `coalesce`)."""
    return push(QUEUES_GROUP, {"type": "queue.changed", "queues": queue_ids}, coalesce=True)


def notify_user(*, user_id: int, event: str, **payload: Any) -> bool:
    return push(user_group(user_id), {"type": "user.event", "event": event, "payload": payload})
