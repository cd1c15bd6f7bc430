"""The console socket's break hook: wake at the next moment a reviewer's break state changes by the clock alone
(a break falls due, its window closes, it ends) and push it. Enforcement stays in the claim gate; this only tells.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

from channels.db import database_sync_to_async
from django.utils import timezone

from wellbeing import rules, selectors

EVENTS = {
    rules.Phase.DUE: "break.due",
    rules.Phase.FINISH_ITEM: "break.due",
    rules.Phase.ON_BREAK: "break.started",
}


def _state_now(user_id: int) -> tuple[rules.BreakState, dict[str, Any]]:
    state = selectors.break_state(reviewer_id=user_id)
    return state, selectors.break_payload(state)


class BreakWatcher:
    def __init__(self, user_id: int, send: Callable[[dict[str, Any]], Awaitable[None]]) -> None:
        self.user_id = user_id
        self.send = send
        self.phase: rules.Phase | None = None
        self.timer: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """On connect: say where the break stands if it matters ("break.state": a due or running break, no
        transition), then wait for the next change."""
        state, payload = await database_sync_to_async(_state_now)(self.user_id)
        if state.phase in EVENTS:
            await self.send({"type": "break.state", **payload})
        self.phase = state.phase
        self._schedule(state)

    async def refresh(self, *, announce: bool) -> None:
        state, payload = await database_sync_to_async(_state_now)(self.user_id)
        if announce:
            await self._announce(state, payload)
        self.phase = state.phase
        self._schedule(state)

    def stop(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _schedule(self, state: rules.BreakState) -> None:
        self.stop()
        if state.next_change_at is None:
            return
        delay = max(0.0, (state.next_change_at - timezone.now()).total_seconds()) + 0.05
        self.timer = asyncio.get_running_loop().create_task(self._wake(delay))

    async def _wake(self, delay: float) -> None:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(delay)
            self.timer = None
            await self.refresh(announce=True)

    async def _announce(self, state: rules.BreakState, payload: dict[str, Any]) -> None:
        if state.phase == self.phase:
            return
        event = EVENTS.get(state.phase)
        if event is None and self.phase == rules.Phase.ON_BREAK:
            event = "break.ended"
        if event is not None:
            await self.send({"type": event, **payload})
