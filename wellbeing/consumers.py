"""The console socket's break hook: wake at the next moment a reviewer's break state changes by the clock alone
(a break falls due, its window closes, it ends) and push it. Enforcement stays in the claim gate; this only tells.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
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


def _states_now(user_ids: list[int]) -> dict[int, tuple[rules.BreakState, dict[str, Any]]]:
    return {user_id: _state_now(user_id) for user_id in user_ids}


class BreakStateReader:
    """Reads break states for all the consoles of this process that asked since the last read, in one trip to the
    database thread.

    A team-wide break or a burst of pushed events makes every console re-read at once; one thread hop (and one
    connection check) per console made those re-reads queue behind each other on asgiref's single database thread
    while holding up the deliveries. Every caller gets a state from a read that began after it asked.
    """

    def __init__(self) -> None:
        self._asked: dict[int, list[asyncio.Future[tuple[rules.BreakState, dict[str, Any]]]]] = {}
        self._reader: asyncio.Task[None] | None = None

    async def state_of(self, user_id: int) -> tuple[rules.BreakState, dict[str, Any]]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[tuple[rules.BreakState, dict[str, Any]]] = loop.create_future()
        self._asked.setdefault(user_id, []).append(future)
        if self._reader is None or self._reader.done():
            self._reader = loop.create_task(self._read_while_asked())
        return await asyncio.shield(future)

    async def _read_while_asked(self) -> None:
        while self._asked:
            asked, self._asked = self._asked, {}
            try:
                states = await database_sync_to_async(_states_now)(list(asked))
            except Exception as exc:  # every console that asked gets the error, as with a read of its own
                for futures in asked.values():
                    for future in futures:
                        if not future.done():
                            future.set_exception(exc)
                continue
            for user_id, futures in asked.items():
                for future in futures:
                    if not future.done():
                        future.set_result(states[user_id])


# One reader per event loop: daphne has one; tests start a loop per test.
_readers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, BreakStateReader] = weakref.WeakKeyDictionary()


def break_state_reader() -> BreakStateReader:
    loop = asyncio.get_running_loop()
    reader = _readers.get(loop)
    if reader is None:
        reader = _readers[loop] = BreakStateReader()
    return reader


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
        state, payload = await break_state_reader().state_of(self.user_id)
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
