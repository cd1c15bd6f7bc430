"""The live team view's socket (/ws/lead/<team_id>/): sends the team's load on connect, whenever a service says
something changed for the team (wellbeing.realtime), and every LEAD_REFRESH_SECONDS so clock-driven changes (a
break falling due, ending) show without anybody acting. It only tells: every action goes through the page or API.

Closes with 4403 for anyone who is not a team lead, 4404 for a team the lead does not lead.
"""

from __future__ import annotations

import asyncio
import contextlib
import zoneinfo
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.contrib.auth.models import User
from django.http import Http404
from django.utils import timezone, translation

from core.i18n import locale_for_scope
from core.roles import Role, has_role
from oversight import team_selectors, team_services
from wellbeing import realtime
from wellbeing.models import DataAccess, Team

LEAD_REFRESH_SECONDS = 20.0
DEBOUNCE_SECONDS = 0.15


def _open(user: Any, team_id: int) -> tuple[int, int | None]:
    """(close code or 0, team id). The access is audited like a page view."""
    if not isinstance(user, User) or not has_role(user, Role.TEAM_LEAD):
        return 4403, None
    try:
        team = team_selectors.team_for_lead(user=user, team_id=team_id)
    except Http404:
        return 4404, None
    load = team_services.team_load_now(team=team)
    team_services.access_record(viewer=user, what=DataAccess.What.LEAD_SOCKET, team=team,
                                subjects=[row.reviewer_id for row in load.rows])
    return 0, team.pk


def _snapshot(team_id: int, locale: tuple[str, str]) -> dict[str, Any]:
    team = Team.objects.get(pk=team_id)
    language, zone = locale
    # In the lead's own language and time zone, as their page is (a socket has no middleware to choose them).
    with translation.override(language), timezone.override(zoneinfo.ZoneInfo(zone)):
        return {"type": "team.state", **team_selectors.load_payload(team_services.team_load_now(team=team))}


class LeadConsumer(AsyncJsonWebsocketConsumer):
    refresh_seconds = LEAD_REFRESH_SECONDS

    async def connect(self) -> None:
        team_id = int(self.scope["url_route"]["kwargs"]["team_id"])
        code, found = await database_sync_to_async(_open)(self.scope.get("user"), team_id)
        if found is None:
            await self.close(code=code)
            return
        self.team_id = found
        self.locale = await database_sync_to_async(locale_for_scope)(self.scope)
        self.pending: asyncio.Task[None] | None = None
        self.group = realtime.team_group(found)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        await self._send_state()
        self.ticker = asyncio.get_running_loop().create_task(self._tick())

    async def disconnect(self, code: int) -> None:
        for task in (getattr(self, "ticker", None), getattr(self, "pending", None)):
            if task is not None:
                task.cancel()
        if getattr(self, "group", None):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        if isinstance(content, dict) and content.get("type") == "ping":
            await self.send_json({"type": "pong"})

    async def team_changed(self, event: dict[str, Any]) -> None:
        # Several changes in a burst (a claim, then its break) become one read.
        if self.pending is None or self.pending.done():
            self.pending = asyncio.get_running_loop().create_task(self._send_soon())

    async def _send_soon(self) -> None:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(DEBOUNCE_SECONDS)
            await self._send_state()

    async def _tick(self) -> None:
        with contextlib.suppress(asyncio.CancelledError):
            while True:
                await asyncio.sleep(self.refresh_seconds)
                await self._send_state()

    async def _send_state(self) -> None:
        await self.send_json(await database_sync_to_async(_snapshot)(self.team_id, self.locale))
