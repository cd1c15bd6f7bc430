from __future__ import annotations

import asyncio
import logging
import weakref
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from config.roles import Role, has_role
from review_queue import realtime, selectors
from wellbeing.consumers import BreakWatcher

log = logging.getLogger(__name__)

# Closed because the channel layer (Redis) is unreachable: the console says live updates are paused and reconnects
# with backoff; the new socket gets the counts as they are then.
CLOSE_LAYER_DOWN = 4503


class CountsReader:
    """Reads the queue counts once for all the consoles of this process that heard of the same change.

    A change is broadcast to every console. Each asks here; the first to ask starts a read and the others wait for
    it. Every caller gets counts from a read that began after it asked, so nobody is sent counts from before the
    change they heard of; asks that arrive during a read share the next one.
    """

    def __init__(self) -> None:
        self._next: asyncio.Future[dict[str, dict[str, int]]] | None = None
        self._reader: asyncio.Task[None] | None = None

    async def counts_after_now(self) -> dict[str, dict[str, int]]:
        loop = asyncio.get_running_loop()
        if self._next is None:
            self._next = loop.create_future()
        future = self._next
        if self._reader is None or self._reader.done():
            self._reader = loop.create_task(self._read_while_asked())
        return await asyncio.shield(future)

    async def _read_while_asked(self) -> None:
        while self._next is not None:
            future, self._next = self._next, None
            try:
                counts = await database_sync_to_async(selectors.queue_counts)()
            except Exception as exc:  # the consoles waiting log it and skip this update
                future.set_exception(exc)
            else:
                future.set_result(counts)


# One reader per event loop: daphne has one; tests start a loop per test.
_readers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, CountsReader] = weakref.WeakKeyDictionary()


def counts_reader() -> CountsReader:
    loop = asyncio.get_running_loop()
    reader = _readers.get(loop)
    if reader is None:
        reader = _readers[loop] = CountsReader()
    return reader


class ConsoleConsumer(AsyncJsonWebsocketConsumer):
    """Keeps a reviewer's console current: queue counts and their own state. It only forwards events; nothing is
    decided here (claims, decisions and breaks go through the same services as the page and the API)."""

    groups: list[str] = []
    # Group messages this consumer only forwards (user events re-read the break state through
    # database_sync_to_async, which looks after its own connections).
    FORWARDED = {"queue.changed": "queue_changed", "queue.counts": "queue_counts", "user.event": "user_event",
                 "console.probe": "console_probe"}

    async def connect(self) -> None:
        user = self.scope.get("user")
        allowed = await database_sync_to_async(has_role)(user, Role.MODERATOR, Role.TEAM_LEAD)
        if not allowed:
            await self.close(code=4403)
            return
        self.user_id = int(user.pk)
        self.joined = [realtime.QUEUES_GROUP, realtime.user_group(self.user_id)]
        for group in self.joined:
            await self.channel_layer.group_add(group, self.channel_name)
        await self.accept()
        counts = await database_sync_to_async(selectors.queue_counts)()
        await self.send_json({"type": "queue.counts", "counts": counts})
        # Pushes "break.due" / "break.started" / "break.ended" when the clock moves the user's break schedule.
        self.breaks = BreakWatcher(self.user_id, self.send_json)
        await self.breaks.start()

    async def disconnect(self, code: int) -> None:
        if getattr(self, "breaks", None) is not None:
            self.breaks.stop()
        try:
            for group in getattr(self, "joined", []):
                await self.channel_layer.group_discard(group, self.channel_name)
        except Exception:  # Redis is gone: there is no subscription left to end
            log.info("console %s: could not leave its groups", self.channel_name, exc_info=True)

    async def dispatch(self, message: dict[str, Any]) -> None:
        # Channels closes stale database connections (a thread round-trip) before every message. A forwarded
        # message uses no connection on the event loop, and skipping it roughly halves the CPU of a broadcast to
        # many consoles (docs/benchmarks.md, realtime).
        handler = self.FORWARDED.get(message.get("type", ""))
        if handler is not None:
            await getattr(self, handler)(message)
            return
        await super().dispatch(message)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        if isinstance(content, dict) and content.get("type") == "ping":
            # An open socket does not notice that Redis went away; pushes would silently stop. The console's
            # heartbeat is the moment to check that the layer still carries messages.
            if not await self._layer_reachable():
                await self.close(code=CLOSE_LAYER_DOWN)
                return
            await self.send_json({"type": "pong"})

    async def _layer_reachable(self) -> bool:
        try:
            probe = {"type": "console.probe"}
            await asyncio.wait_for(self.channel_layer.group_send(realtime.user_group(self.user_id), probe), timeout=5)
        except Exception:  # any failure of the layer means no pushes reach this console
            log.warning("console %s: channel layer unreachable, closing the socket", self.channel_name,
                        exc_info=True)
            return False
        return True

    async def console_probe(self, event: dict[str, Any]) -> None:
        """A heartbeat's probe of the layer (see receive_json) comes back here: nothing to do."""

    async def queue_changed(self, event: dict[str, Any]) -> None:
        try:
            counts = await counts_reader().counts_after_now()
        except Exception:  # the counts stay as they were until the next change; nothing else is affected
            log.warning("console %s: could not read the queue counts", self.channel_name, exc_info=True)
            return
        await self.send_json({"type": "queue.counts", "counts": counts})

    async def queue_counts(self, event: dict[str, Any]) -> None:
        """Counts sent by an older Veil process during a rolling upgrade."""
        await self.send_json({"type": "queue.counts", "counts": event["counts"]})

    async def user_event(self, event: dict[str, Any]) -> None:
        await self.send_json({"type": event["event"], **event.get("payload", {})})
        if str(event["event"]).startswith(("break.", "shift.")) and getattr(self, "breaks", None) is not None:
            # A service changed the schedule (break started or ended, shift began): wait for the new next moment.
            await self.breaks.refresh(announce=False)
