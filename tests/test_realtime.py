"""The console websocket: who may connect, and that state changes reach connected consoles."""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import Iterator
from typing import Any

import pytest
from channels.layers import channel_layers

from core import realtime
from review.services import item_claim
from tests.helpers.factories import make_item, make_queue
from tests.helpers.realtime import communicator, run, session_cookie
from tests.helpers.services import TEST_REDIS_URL

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def redis_pubsub_layer(settings: Any) -> Iterator[None]:
    """The real stack's channel layer (channels_redis pub/sub on the test Redis), under a key prefix of this test's
    own, built anew for the test and forgotten after it."""
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [TEST_REDIS_URL], "prefix": f"veil-test-{secrets.token_hex(3)}"},
        }
    }
    channel_layers.backends.clear()
    yield
    channel_layers.backends.clear()


def test_anonymous_and_non_reviewers_are_refused(health, requester, stranger):
    for user in (None, health, requester, stranger):
        cookie = session_cookie(user) if user else None

        async def attempt(cookie: bytes | None = cookie) -> tuple[bool, Any]:
            comm = communicator(cookie)
            connected, code = await comm.connect()
            await comm.disconnect()
            return connected, code

        connected, _ = run(attempt)
        assert not connected, user


def test_foreign_origin_is_refused(moderator):
    cookie = session_cookie(moderator)

    async def attempt() -> bool:
        comm = communicator(cookie, origin=b"https://evil.example")
        connected, _ = await comm.connect()
        await comm.disconnect()
        return bool(connected)

    assert run(attempt) is False


def test_moderator_gets_counts_and_live_changes(moderator, moderator2):
    queue = make_queue(slug="live")
    make_item(queue, seed=1)
    make_item(queue, seed=2)

    cookie = session_cookie(moderator)

    async def scenario() -> list[dict[str, Any]]:
        comm = communicator(cookie)
        connected, _ = await comm.connect()
        assert connected
        first = await comm.receive_json_from(timeout=5)
        from channels.db import database_sync_to_async

        await database_sync_to_async(item_claim)(reviewer=moderator2, queue=queue)
        second = await comm.receive_json_from(timeout=5)
        await comm.send_json_to({"type": "ping"})
        pong = await comm.receive_json_from(timeout=5)
        await comm.disconnect()
        return [first, second, pong]

    first, second, pong = run(scenario)
    assert first == {"type": "queue.counts", "counts": {"live": {"waiting": 2, "escalated": 0}}}
    assert second == {"type": "queue.counts", "counts": {"live": {"waiting": 1, "escalated": 0}}}
    assert pong == {"type": "pong"}


def test_user_events_reach_only_that_user(moderator, moderator2):
    cookies = session_cookie(moderator), session_cookie(moderator2)

    async def scenario() -> tuple[dict[str, Any], bool]:
        mine, other = communicator(cookies[0]), communicator(cookies[1])
        assert (await mine.connect())[0] and (await other.connect())[0]
        await mine.receive_json_from(timeout=5)
        await other.receive_json_from(timeout=5)
        from channels.db import database_sync_to_async

        await database_sync_to_async(realtime.notify_user)(user_id=moderator.pk, event="break.due", minutes=10)
        got = await mine.receive_json_from(timeout=5)
        other_quiet = await other.receive_nothing(timeout=0.3)
        await mine.disconnect()
        await other.disconnect()
        return got, other_quiet

    got, other_quiet = run(scenario)
    assert got == {"type": "break.due", "minutes": 10}
    assert other_quiet


@pytest.mark.redis
def test_broadcast_through_channels_redis(moderator, redis_pubsub_layer):
    queue = make_queue(slug="redis-live")
    make_item(queue, seed=1)
    cookie = session_cookie(moderator)

    async def scenario() -> dict[str, Any]:
        comm = communicator(cookie)
        assert (await comm.connect())[0]
        await comm.receive_json_from(timeout=5)
        from channels.db import database_sync_to_async

        await database_sync_to_async(realtime.queue_counts_changed)()
        got: dict[str, Any] = await comm.receive_json_from(timeout=5)
        await comm.disconnect()
        return got

    got = run(scenario)
    assert got["type"] == "queue.counts" and got["counts"]["redis-live"]["waiting"] == 1
    from channels.layers import get_channel_layer

    assert type(get_channel_layer()).__module__.startswith("channels_redis")


@pytest.mark.redis
def test_pushes_made_outside_the_server_share_one_event_loop_and_keep_their_order(redis_pubsub_layer):
    """A Celery worker, a management command or a benchmark has no ASGI server loop. There asgiref would start a
    thread and an event loop for every push, and channels_redis a Redis connection for each loop; Veil's pushes go
    through one loop of the process instead, and arrive in the order they were made."""
    import asyncio
    import threading

    from channels.layers import get_channel_layer

    def pushes() -> tuple[list[bool], set[int]]:  # a plain thread: no server loop at hand
        sent, loops = [], set()
        for n in range(30):
            sent.append(realtime.push("order", {"type": "n", "n": n}))
            loops.add(id(realtime._PUSH_LOOP._loop))
        return sent, loops

    async def scenario() -> tuple[list[bool], set[int], list[int]]:
        layer = get_channel_layer()
        channel = await layer.new_channel()
        await layer.group_add("order", channel)
        sent, loops = await asyncio.get_running_loop().run_in_executor(None, pushes)
        got = [(await asyncio.wait_for(layer.receive(channel), timeout=5))["n"] for _ in range(30)]
        await layer.group_discard("order", channel)
        return sent, loops, got

    threads_before = threading.active_count()
    sent, loops, got = run(scenario)
    assert all(sent) and got == list(range(30))
    assert len(loops) == 1 and id(None) not in loops  # one loop of Veil's for all 30
    assert realtime._PUSH_LOOP._loop is not None and realtime._PUSH_LOOP._loop.is_running()
    assert threading.active_count() <= threads_before + 2  # that loop's thread (and the executor's), not 30


@pytest.mark.redis
def test_pushes_from_many_threads_at_once_all_arrive_each_thread_in_its_order(redis_pubsub_layer):
    """Request threads push while the outbox's sender drains it: none is lost between a sender finding the outbox
    empty and a push arriving, and each thread's pushes arrive in the order it made them."""
    import asyncio
    import threading

    from channels.layers import get_channel_layer

    threads, each = 8, 150

    def pusher(t: int, start: threading.Barrier) -> None:
        start.wait(5)
        for n in range(each):
            realtime.push("many", {"type": "n", "t": t, "n": n})
            if n % 10 == 0:
                time.sleep(0.001)  # let the sender catch up and find the outbox empty now and then

    def pushes() -> bool:
        start = threading.Barrier(threads)
        workers = [threading.Thread(target=pusher, args=(t, start)) for t in range(threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join(30)
        return realtime.flush(timeout=20)

    async def scenario() -> tuple[bool, list[dict[str, Any]]]:
        layer = get_channel_layer()
        channel = await layer.new_channel()
        await layer.group_add("many", channel)
        ok = await asyncio.get_running_loop().run_in_executor(None, pushes)
        got: list[dict[str, Any]] = []
        with contextlib.suppress(TimeoutError):
            while len(got) < threads * each:
                got.append(await asyncio.wait_for(layer.receive(channel), timeout=3))
        await layer.group_discard("many", channel)
        return ok, got

    ok, got = run(scenario)
    assert ok is True
    assert len(got) == threads * each
    for t in range(threads):
        assert [m["n"] for m in got if m["t"] == t] == list(range(each))


def test_push_failure_never_breaks_the_caller(moderator, settings):
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": ["redis://127.0.0.1:1/0"]},  # nothing listens on port 1
        }
    }
    channel_layers.backends.clear()
    try:
        assert realtime.notify_user(user_id=moderator.pk, event="x") is True  # queued, and the caller goes on
        assert realtime.flush(timeout=12) is False  # the send failed in the background, logged
    finally:
        channel_layers.backends.clear()


def test_one_counts_read_serves_every_console_that_heard_of_a_change(monkeypatch):
    """A change reaches every console of a process; they share one read of the counts, and none gets counts read
    before it asked (so never counts from before the change it heard of)."""
    import asyncio
    import threading

    from review import consumers

    reads: list[int] = []
    started = threading.Event()
    release = threading.Event()

    def slow_counts(*, queue_ids: list[int] | None = None) -> dict[str, dict[str, int]]:
        reads.append(len(reads) + 1)
        started.set()
        release.wait(5)
        return {"q": {"waiting": len(reads), "escalated": 0}}

    from review import selectors

    monkeypatch.setattr(selectors, "queue_counts", slow_counts)

    async def scenario() -> tuple[list[Any], list[Any]]:
        reader = consumers.counts_reader()
        first_wave = [asyncio.ensure_future(reader.counts_after_now()) for _ in range(50)]
        await asyncio.get_running_loop().run_in_executor(None, started.wait, 5)
        # A change heard while the first read is running: these must wait for a read that starts after them.
        second_wave = [asyncio.ensure_future(reader.counts_after_now()) for _ in range(50)]
        release.set()
        return list(await asyncio.gather(*first_wave)), list(await asyncio.gather(*second_wave))

    first, second = asyncio.run(scenario())
    assert reads == [1, 2]  # 100 consoles, two reads
    assert all(c == {"q": {"waiting": 1, "escalated": 0}} for c in first)
    assert all(c == {"q": {"waiting": 2, "escalated": 0}} for c in second)


def test_a_process_hears_of_queue_changes_once_and_sends_every_console_the_same_frame(moderator, moderator2,
                                                                                       monkeypatch):
    """Issue 20, live updates: the queues group has one member per process (its hub), not one per console; a change
    is read and serialised once and the same frame goes to every console, a console that left gets nothing, and
    one that is closing does not stop the others."""
    import json as json_module

    from channels.db import database_sync_to_async
    from channels.layers import InMemoryChannelLayer, get_channel_layer


    queue = make_queue(slug="live")
    for seed in range(3):
        make_item(queue, seed=seed)
    cookie = session_cookie(moderator)
    dumps: list[int] = []
    real_dumps = json_module.dumps

    def counting_dumps(obj: Any, *args: Any, **kwargs: Any) -> str:
        if isinstance(obj, dict) and obj.get("type") == "queue.counts":
            dumps.append(1)
        return real_dumps(obj, *args, **kwargs)

    monkeypatch.setattr(json_module, "dumps", counting_dumps)  # the consumers module looks it up at each call

    async def scenario() -> tuple[list[dict[str, Any]], int | None, bool]:
        comms = [communicator(cookie) for _ in range(6)]
        for comm in comms:
            connected, _ = await comm.connect()
            assert connected
            await comm.receive_json_from(timeout=5)  # the counts as they were on connecting
        layer = get_channel_layer()
        members = (len(layer.groups.get(realtime.QUEUES_GROUP, {}))
                   if isinstance(layer, InMemoryChannelLayer) else None)
        await comms[-1].disconnect()  # one console leaves before the change
        dumps.clear()
        await database_sync_to_async(item_claim)(reviewer=moderator2, queue=queue)
        got = [await comm.receive_json_from(timeout=5) for comm in comms[:-1]]
        left_alone = await comms[-1].receive_nothing(timeout=0.2)
        for comm in comms[:-1]:
            await comm.disconnect()
        return got, members, left_alone

    got, members, left_alone = run(scenario)
    assert got == [{"type": "queue.counts", "counts": {"live": {"waiting": 2, "escalated": 0}}}] * 5
    assert dumps == [1]  # serialised once for five consoles
    assert left_alone
    if members is not None:  # the in-memory layer shows its groups; on Redis the same code runs
        assert members == 1


def test_the_hub_subscribes_again_after_the_layer_fails(moderator, monkeypatch):
    """Redis restarting under a running server: the hub's receive fails, it waits a moment and subscribes again,
    and the next change reaches a console connected after that."""
    from channels.db import database_sync_to_async
    from channels.layers import get_channel_layer

    from review import consumers

    queue = make_queue(slug="live")
    for seed in range(2):
        make_item(queue, seed=seed)
    cookie = session_cookie(moderator)
    monkeypatch.setattr(consumers.QueuesHub, "BACKOFF_SECONDS", (0.05,))

    async def scenario() -> Any:
        layer = get_channel_layer()
        real_receive = layer.receive
        failed: list[bool] = []

        async def failing_once(channel: str) -> Any:
            if "veil-queues" in channel and not failed:  # the hub's subscription, not a console's own channel
                failed.append(True)
                raise ConnectionError("Redis went away")
            return await real_receive(channel)

        monkeypatch.setattr(layer, "receive", failing_once)
        comm = communicator(cookie)
        connected, _ = await comm.connect()
        assert connected
        await comm.receive_json_from(timeout=5)
        hub = consumers.queues_hub()
        for _ in range(100):  # the failed receive, the back-off, the second subscription
            if failed and hub._subscribed.is_set():
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)
        await database_sync_to_async(item_claim)(reviewer=moderator, queue=queue)
        got = await comm.receive_json_from(timeout=5)
        await comm.disconnect()
        return got

    import asyncio

    got = run(scenario)
    assert got == {"type": "queue.counts", "counts": {"live": {"waiting": 1, "escalated": 0}}}


def test_a_console_whose_send_fails_does_not_stop_the_broadcast_to_the_others():
    """The hub hands the frame to each console of the process in turn: one whose socket fails as it is written to
    is logged and skipped, and every other console still gets the frame. Garbage collection is held off while the
    frames go out and is on again afterwards (and stays off if something else had turned it off)."""
    import asyncio
    import gc

    from review import consumers

    class FakeConsole:
        def __init__(self, name: str, *, fails: bool = False) -> None:
            self.channel_name = name
            self.fails = fails
            self.got: list[tuple[str, bool]] = []

        async def send(self, text_data: str) -> None:
            if self.fails:
                raise ConnectionError("the socket closed as we wrote")
            self.got.append((text_data, gc.isenabled()))

    async def scenario() -> list[FakeConsole]:
        hub = consumers.QueuesHub()
        consoles = [FakeConsole(f"c{n}", fails=n in {0, 3}) for n in range(6)]
        # Not type-checked below: stand-ins with the one method the hub calls, in place of its consumers
        hub.consoles.update(consoles)  # type: ignore[arg-type]
        await hub.send_all('{"type": "queue.counts", "counts": {}}')
        return consoles

    assert gc.isenabled()
    consoles = asyncio.run(scenario())
    assert gc.isenabled()
    for console in consoles:
        expected = [] if console.fails else [('{"type": "queue.counts", "counts": {}}', False)]
        assert console.got == expected, console.channel_name

    gc.disable()
    try:
        asyncio.run(scenario())
        assert not gc.isenabled()  # not the hub's to turn on
    finally:
        gc.enable()


def test_a_console_whose_socket_fails_does_not_stop_the_counts_reaching_the_others(moderator, moderator2,
                                                                                   monkeypatch):
    """Three real consoles on one process; writing to one of them fails. The other two still hear the change."""

    from channels.db import database_sync_to_async

    from review import consumers

    queue = make_queue(slug="live")
    for seed in range(3):
        make_item(queue, seed=seed)
    cookie = session_cookie(moderator)

    async def scenario() -> tuple[list[Any], bool]:
        comms = [communicator(cookie) for _ in range(3)]
        for comm in comms:
            connected, _ = await comm.connect()
            assert connected
            await comm.receive_json_from(timeout=5)
        hub = consumers.queues_hub()
        victim = next(iter(hub.consoles))
        real_send = victim.send

        async def failing_send(text_data: Any = None, bytes_data: Any = None, close: bool = False) -> None:
            if text_data and '"queue.counts"' in text_data:
                raise ConnectionError("the socket closed as we wrote")
            await real_send(text_data=text_data, bytes_data=bytes_data, close=close)

        monkeypatch.setattr(victim, "send", failing_send)
        await database_sync_to_async(item_claim)(reviewer=moderator2, queue=queue)
        heard: list[Any] = []
        silent = 0
        for comm in comms:
            if await comm.receive_nothing(timeout=1):
                silent += 1
            else:
                heard.append(await comm.receive_json_from(timeout=2))
        for comm in comms:
            await comm.disconnect()
        return heard, silent == 1

    heard, one_silent = run(scenario)
    assert heard == [{"type": "queue.counts", "counts": {"live": {"waiting": 2, "escalated": 0}}}] * 2
    assert one_silent
