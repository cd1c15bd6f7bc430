"""The console socket tells a reviewer about their breaks: when one falls due, begins and ends by the clock, and
when the claim gate finds one due. Real (short) durations: the consumer's timer runs on the event loop's clock."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import time_machine
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from django.utils import timezone

from review.services import item_claim
from tests.helpers.factories import make_queue
from tests.helpers.realtime import communicator, session_cookie
from tests.helpers.wellbeing import finish, ready_item, set_policy
from wellbeing import services

pytestmark = pytest.mark.django_db(transaction=True)
S = timedelta(seconds=1)


def test_break_due_started_and_ended_are_pushed_as_the_clock_moves(moderator):
    # Longer than the work before it, or the idle time (nobody holds an item here) would already count as rest.
    set_policy(break_every=1 * S, break_window=1 * S, break_length=3 * S)
    cookie = session_cookie(moderator)
    services.shift_start(reviewer=moderator)

    async def scenario() -> list[dict[str, Any]]:
        comm = communicator(cookie)
        assert (await comm.connect())[0]
        got = [await comm.receive_json_from(timeout=5) for _ in range(4)]
        await comm.disconnect()
        return got

    counts, due, started, ended = async_to_sync(scenario)()
    assert counts["type"] == "queue.counts"
    assert (due["type"], due["phase"]) == ("break.due", "due")
    assert "A break is due" in due["message"] and due["window_ends_at"]
    assert (started["type"], started["phase"]) == ("break.started", "on_break")
    assert started["ends_at_text"] and "on a break until" in started["message"]
    assert ended["type"] == "break.ended" and ended["phase"] != "on_break"


def test_the_gate_pushes_a_break_it_finds_due(moderator):
    queue = make_queue(lease_seconds=3600)
    ready_item(queue)
    ready_item(queue)
    now = timezone.now()
    with time_machine.travel(now - timedelta(minutes=51), tick=False) as clock:
        claim = item_claim(reviewer=moderator, queue=queue)
        clock.move_to(now - timedelta(minutes=1))
        finish(claim)
    cookie = session_cookie(moderator)

    async def scenario() -> tuple[dict[str, Any], dict[str, Any]]:
        comm = communicator(cookie)
        assert (await comm.connect())[0]
        await comm.receive_json_from(timeout=5)  # queue counts
        on_connect = await comm.receive_json_from(timeout=5)
        await database_sync_to_async(item_claim)(reviewer=moderator, queue=queue)
        pushed = await comm.receive_json_from(timeout=5)
        while pushed["type"] == "queue.counts":
            pushed = await comm.receive_json_from(timeout=5)
        await comm.disconnect()
        return on_connect, pushed

    on_connect, pushed = async_to_sync(scenario)()
    assert (on_connect["type"], on_connect["phase"]) == ("break.state", "due")
    assert (pushed["type"], pushed["phase"]) == ("break.due", "due")


def test_a_voluntary_break_reaches_every_open_console(moderator):
    cookie = session_cookie(moderator)

    async def scenario() -> tuple[dict[str, Any], dict[str, Any]]:
        comm = communicator(cookie)
        assert (await comm.connect())[0]
        await comm.receive_json_from(timeout=5)
        await database_sync_to_async(services.break_start)(reviewer=moderator, minutes=5)
        started = await comm.receive_json_from(timeout=5)
        await database_sync_to_async(services.break_end)(reviewer=moderator)
        ended = await comm.receive_json_from(timeout=5)
        await comm.disconnect()
        return started, ended

    started, ended = async_to_sync(scenario)()
    assert (started["type"], started["phase"], started["voluntary"]) == ("break.started", "on_break", True)
    assert (ended["type"], ended["phase"]) == ("break.ended", "off_shift")


def test_nothing_can_be_claimed_over_the_socket(moderator):
    queue = make_queue()
    ready_item(queue)
    cookie = session_cookie(moderator)

    async def scenario() -> bool:
        comm = communicator(cookie)
        assert (await comm.connect())[0]
        await comm.receive_json_from(timeout=5)
        await comm.send_json_to({"type": "claim", "queue": queue.slug})
        quiet = await comm.receive_nothing(timeout=0.3)
        await comm.disconnect()
        return bool(quiet)

    assert async_to_sync(scenario)()
    from review.models import Claim

    assert not Claim.objects.exists()  # the socket only tells; claims go through the gated service


def test_break_states_of_many_consoles_are_read_together_and_never_stale(monkeypatch):
    """A burst of break events makes every console of a process re-read its break state: they share one trip to the
    database thread per wave, each console gets its own user's state, and none gets a state read before it asked."""
    import asyncio
    import threading

    from wellbeing import consumers, rules

    batches: list[list[int]] = []
    started = threading.Event()
    release = threading.Event()

    def slow_states(user_ids: list[int]) -> dict[int, tuple[rules.BreakState, dict[str, Any]]]:
        batches.append(sorted(user_ids))
        wave = len(batches)
        started.set()
        release.wait(5)
        return {u: (rules.BreakState(rules.Phase.WORKING), {"user": u, "wave": wave}) for u in user_ids}

    monkeypatch.setattr(consumers, "_states_now", slow_states)

    async def scenario() -> tuple[list[Any], list[Any]]:
        reader = consumers.break_state_reader()
        first_wave = [asyncio.ensure_future(reader.state_of(u)) for u in range(40)]
        await asyncio.get_running_loop().run_in_executor(None, started.wait, 5)
        # Asked while the first read runs: these wait for a read that starts after them.
        second_wave = [asyncio.ensure_future(reader.state_of(u)) for u in (3, 3, 7)]
        release.set()
        return list(await asyncio.gather(*first_wave)), list(await asyncio.gather(*second_wave))

    first, second = asyncio.run(scenario())
    assert batches == [list(range(40)), [3, 7]]  # 43 asks, two trips, a user asked twice is read once
    assert [payload for _, payload in first] == [{"user": u, "wave": 1} for u in range(40)]
    assert [payload for _, payload in second] == [{"user": 3, "wave": 2}, {"user": 3, "wave": 2},
                                                  {"user": 7, "wave": 2}]
