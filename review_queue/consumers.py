from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from config.roles import Role, has_role
from review_queue import realtime, selectors
from wellbeing.consumers import BreakWatcher


class ConsoleConsumer(AsyncJsonWebsocketConsumer):
    """Keeps a reviewer's console current: queue counts and their own state. It only forwards events; nothing is
    decided here (claims, decisions and breaks go through the same services as the page and the API)."""

    groups: list[str] = []

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
        for group in getattr(self, "joined", []):
            await self.channel_layer.group_discard(group, self.channel_name)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        if isinstance(content, dict) and content.get("type") == "ping":
            await self.send_json({"type": "pong"})

    async def queue_counts(self, event: dict[str, Any]) -> None:
        await self.send_json({"type": "queue.counts", "counts": event["counts"]})

    async def user_event(self, event: dict[str, Any]) -> None:
        await self.send_json({"type": event["event"], **event.get("payload", {})})
        if str(event["event"]).startswith(("break.", "shift.")) and getattr(self, "breaks", None) is not None:
            # A service changed the schedule (break started or ended, shift began): wait for the new next moment.
            await self.breaks.refresh(announce=False)
