from __future__ import annotations

import asyncio
import logging
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


class ConsoleConsumer(AsyncJsonWebsocketConsumer):
    """Keeps a reviewer's console current: queue counts and their own state. It only forwards events; nothing is
    decided here (claims, decisions and breaks go through the same services as the page and the API)."""

    groups: list[str] = []
    # Group messages this consumer only forwards (user events re-read the break state through
    # database_sync_to_async, which looks after its own connections).
    FORWARDED = {"queue.counts": "queue_counts", "user.event": "user_event", "console.probe": "console_probe"}

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

    async def queue_counts(self, event: dict[str, Any]) -> None:
        await self.send_json({"type": "queue.counts", "counts": event["counts"]})

    async def user_event(self, event: dict[str, Any]) -> None:
        await self.send_json({"type": event["event"], **event.get("payload", {})})
        if str(event["event"]).startswith(("break.", "shift.")) and getattr(self, "breaks", None) is not None:
            # A service changed the schedule (break started or ended, shift began): wait for the new next moment.
            await self.breaks.refresh(announce=False)
