from __future__ import annotations

import asyncio
import gc
import json
import logging
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from channels.layers import get_channel_layer

from core import realtime
from core.roles import Role, has_role
from review import selectors
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


_PerLoop = TypeVar("_PerLoop")


def _one_per_loop(registry: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _PerLoop],
                  make: Callable[[], _PerLoop]) -> _PerLoop:
    """The running event loop's own instance (daphne has one loop; tests start a loop per test)."""
    loop = asyncio.get_running_loop()
    found = registry.get(loop)
    if found is None:
        found = registry[loop] = make()
    return found


_readers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, CountsReader] = weakref.WeakKeyDictionary()


def counts_reader() -> CountsReader:
    return _one_per_loop(_readers, CountsReader)


class QueuesHub:
    """This process's one subscription to queue changes, fanned out to its consoles.

    A claim or a decision announces "queue counts changed" to the queues group. Were every console a member, each
    change would cross Redis once per console (a thousand messages for a thousand consoles), and each console would
    take its own message, ask for the counts and serialise its own copy of them. Here the process is the member: the
    change crosses Redis once per process, the counts are read once (CountsReader) and written out once, and the same
    frame goes to every console of the process. One hub per event loop (daphne has one; tests start one per test).

    If the channel layer fails (Redis down), the hub keeps trying to subscribe again, with backoff; consoles notice
    on their heartbeat meanwhile (ConsoleConsumer._layer_reachable) and reconnect with the counts as they are then.
    """

    # channels_redis forgets a group member after its group_expiry (a day by default): join again well before.
    REJOIN_SECONDS = 3600.0
    # Turns of the event loop given to Twisted to write the frames out before garbage collection may run again.
    FLUSH_TURNS = 2
    BACKOFF_SECONDS = (0.5, 1.0, 2.0, 5.0, 10.0)

    def __init__(self) -> None:
        self.consoles: set[ConsoleConsumer] = set()
        self._task: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()

    async def join(self, console: ConsoleConsumer) -> None:
        """Start hearing of queue changes for this console; returns once the process is subscribed (so nothing
        committed after the console's first read of the counts can be missed), or after 5 s without the layer."""
        self.consoles.add(console)
        if self._task is None or self._task.done():
            self._subscribed.clear()
            self._task = asyncio.get_running_loop().create_task(self._run())
        try:
            await asyncio.wait_for(self._subscribed.wait(), timeout=5)
        except TimeoutError:
            log.warning("queue changes: not subscribed yet; this console's counts may lag until it reconnects")

    def leave(self, console: ConsoleConsumer) -> None:
        self.consoles.discard(console)

    async def _run(self) -> None:
        layer = get_channel_layer()
        assert layer is not None  # a console exists only where a channel layer is configured
        failures = 0
        while True:
            try:
                channel = await layer.new_channel("veil-queues.")
                await layer.group_add(realtime.QUEUES_GROUP, channel)
                self._subscribed.set()
                failures = 0
                await self._receive(layer, channel)
            except asyncio.CancelledError:
                raise
            except Exception:  # Redis down or restarting: try again shortly, as the consoles' reconnects do
                delay = self.BACKOFF_SECONDS[min(failures, len(self.BACKOFF_SECONDS) - 1)]
                failures += 1
                log.warning("queue changes: channel layer failed; subscribing again in %.1f s", delay, exc_info=True)
                await asyncio.sleep(delay)

    async def _receive(self, layer: Any, channel: str) -> None:
        loop = asyncio.get_running_loop()
        rejoin_at = loop.time() + self.REJOIN_SECONDS
        while True:
            try:
                message = await asyncio.wait_for(layer.receive(channel), timeout=max(1.0, rejoin_at - loop.time()))
            except TimeoutError:
                await layer.group_add(realtime.QUEUES_GROUP, channel)
                rejoin_at = loop.time() + self.REJOIN_SECONDS
                continue
            kind = message.get("type")
            if kind == "queue.changed":
                try:
                    counts = await counts_reader().counts_after_now()
                except Exception:  # the counts stay as they were until the next change; nothing else is affected
                    log.warning("queue changes: could not read the queue counts", exc_info=True)
                    continue
            elif kind == "queue.counts":  # sent by an older Veil process during a rolling upgrade
                counts = message["counts"]
            else:
                continue
            await self.send_all(json.dumps({"type": "queue.counts", "counts": counts}))

    async def send_all(self, frame: str) -> None:
        """Write one frame to every console of this process, one after another, in this task.

        Daphne's ASGI send only hands the frame to Twisted, which buffers it and writes it out on the next turn of
        the event loop; it does not wait for the client. A task per console (asyncio.gather, as before) added a task,
        a future and a turn of the loop per console for nothing, and garbage for the collector. A console whose
        send fails (closing as we sent) is logged and skipped; its disconnect takes it off the list.

        Cyclic garbage collection is held off while the frames are handed over and until the loop has written
        them: a full collection in a process serving hundreds of sockets takes tens of milliseconds, and one that
        fell due in the middle of a broadcast held back every console after that point (docs/benchmarks.md,
        issue 20). It runs, if due, right after.
        """
        collecting = gc.isenabled()
        if collecting:
            gc.disable()
        try:
            for console in list(self.consoles):
                try:
                    await console.send(text_data=frame)
                except Exception:  # closing as we sent: its disconnect takes it off the list
                    log.info("console %s: could not send the counts", console.channel_name, exc_info=True)
            # The frames leave in the writers that Twisted registered on this loop: let the loop run them.
            for _ in range(self.FLUSH_TURNS):
                await asyncio.sleep(0)
        finally:
            if collecting:
                gc.enable()


_hubs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, QueuesHub] = weakref.WeakKeyDictionary()


def queues_hub() -> QueuesHub:
    return _one_per_loop(_hubs, QueuesHub)


class ConsoleConsumer(AsyncJsonWebsocketConsumer):
    """Keeps a reviewer's console current: queue counts and their own state. It only forwards events; nothing is
    decided here (claims, decisions and breaks go through the same services as the page and the API)."""

    groups: list[str] = []
    # Group messages this consumer only forwards (user events re-read the break state through
    # database_sync_to_async, which looks after its own connections).
    FORWARDED = {"user.event": "user_event", "console.probe": "console_probe"}

    async def connect(self) -> None:
        user = self.scope.get("user")
        allowed = await database_sync_to_async(has_role)(user, Role.MODERATOR, Role.TEAM_LEAD)
        if not allowed:
            await self.close(code=4403)
            return
        self.user_id = int(user.pk)
        self.joined = [realtime.user_group(self.user_id)]
        for group in self.joined:
            await self.channel_layer.group_add(group, self.channel_name)
        await queues_hub().join(self)  # queue changes reach this process's consoles through its hub
        await self.accept()
        counts = await database_sync_to_async(selectors.queue_counts)()
        await self.send_json({"type": "queue.counts", "counts": counts})
        # Pushes "break.due" / "break.started" / "break.ended" when the clock moves the user's break schedule.
        self.breaks = BreakWatcher(self.user_id, self.send_json)
        await self.breaks.start()

    async def disconnect(self, code: int) -> None:
        queues_hub().leave(self)
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

    async def user_event(self, event: dict[str, Any]) -> None:
        await self.send_json({"type": event["event"], **event.get("payload", {})})
        if str(event["event"]).startswith(("break.", "shift.")) and getattr(self, "breaks", None) is not None:
            # A service changed the schedule (break started or ended, shift began): wait for the new next moment.
            await self.breaks.refresh(announce=False)
