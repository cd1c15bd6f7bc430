"""Realtime benchmark: state changes to N authenticated console websockets served by a real daphne process.

A fresh PostgreSQL database (veil_bench_rt), Redis (channels_redis pub/sub, a key prefix of this run's own), one
daphne process on a free loopback port, and N moderators each signed in (a session in the database) with one
console socket (`websockets` client). The sockets are spread over --client-processes load-generator processes
(default 2) on this machine: a browser runs on its own machine, but these share the server's cores, so their CPU
is part of what is measured, and the run reports it (client CPU per message received, server CPU per broadcast).
Before the first change, the run waits until the web processes are idle (each console's start-up reads are done).
Another process, the trigger, makes the changes the way a request does, on one event loop with the layer's
connection kept (as daphne's request threads do):

- queue counts: an item is decided (one committed UPDATE), then `core.realtime.queue_counts_changed()`
  broadcasts the new counts to every console; latency = arrival at a console - the moment after the commit.
- break.due: for each moderator, the break state is read and `realtime.notify_user(event="break.due")` pushes it
  to that moderator's consoles (what wellbeing.services does after a break falls due); latency per console from
  its own send.

The same run measures N = the baseline size (default 50) and N (default 200); the ratio is p99(N) / p99(baseline).
Everything is bounded: counted rounds, timeouts on every wait, daphne stopped at the end, loopback only.

Run: python -m benchmarks.realtime [--consoles 200] [--baseline-consoles 50] [--rounds 20] [--web N] [--at-once]
                                   [--client-processes 2]
  --web N serves the consoles from N daphne processes on one socket (`python -m config.stack`, as deployed)
  instead of one; --at-once opens every console's websocket at the same moment (in every client process) and
  counts failed handshakes; --client-processes 1 runs every console in one process, as this benchmark did before
  2026-12-07.
Needs PostgreSQL and Redis (VEIL_BENCH_DATABASE_URL, VEIL_BENCH_REDIS_URL; defaults on 127.0.0.1).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from benchmarks.services import (
    BENCH_DATABASE_URL,
    BENCH_REDIS_URL,
    free_port,
    fresh_database,
    machine_busy_seconds,
    machine_line,
    percentile_ms,
    postgres_reachable,
    redis_reachable,
)
from tests.helpers.livesrv import stop_process

ROOT = Path(__file__).resolve().parent.parent
QUEUE_SLUG = "bench-live"
COUNTS_INTERVAL = 0.5  # seconds between queue-count broadcasts
BREAK_INTERVAL = 1.0  # seconds between rounds of break.due pushes (one per moderator)
CONNECT_BATCH = 20  # sockets opened at once


def _database_url(base: str) -> str:
    return base.rsplit("/", 1)[0] + "/veil_bench_rt"


def _configure(database_url: str, redis_url: str, prefix: str, data_dir: str, secret: str) -> dict[str, str]:
    env = {
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "VEIL_CHANNEL_PREFIX": prefix,
        "VEIL_DATA_DIR": data_dir,
        "VEIL_SECRET_KEY": secret,
        "VEIL_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "VEIL_LOG_LEVEL": "WARNING",
        "DJANGO_SETTINGS_MODULE": "config.settings",
    }
    os.environ.update(env)
    return env


# ---- the trigger process ----------------------------------------------------------------------------------------


async def _trigger(rounds: int, user_ids: list[int]) -> list[dict[str, Any]]:
    from asgiref.sync import sync_to_async

    from core import realtime
    from intake.models import ContentItem
    from review.models import Queue
    from wellbeing import selectors

    def decide_one() -> None:
        queue = Queue.objects.get(slug=QUEUE_SLUG)
        item = ContentItem.objects.filter(queue=queue, status=ContentItem.Status.READY).order_by("id").first()
        assert item is not None, "the benchmark queue ran dry"
        ContentItem.objects.filter(pk=item.pk).update(status=ContentItem.Status.DECIDED)

    def push_counts() -> bool:
        return realtime.queue_counts_changed()

    def push_break(user_id: int, round_no: int) -> bool:
        payload = selectors.break_payload(selectors.break_state(reviewer_id=user_id))
        return realtime.notify_user(user_id=user_id, event="break.due", bench_round=round_no, **payload)

    sent: list[dict[str, Any]] = []
    await sync_to_async(push_counts)()  # warm the layer's connection
    for round_no in range(rounds):
        await sync_to_async(decide_one)()
        at = time.time()
        ok = await sync_to_async(push_counts)()
        sent.append({"kind": "counts", "round": round_no, "at": at, "ok": ok})
        await asyncio.sleep(COUNTS_INTERVAL)
    for round_no in range(rounds):
        for user_id in user_ids:
            at = time.time()
            ok = await sync_to_async(push_break)(user_id, round_no)
            sent.append({"kind": "break", "round": round_no, "user": user_id, "at": at, "ok": ok})
        await asyncio.sleep(BREAK_INTERVAL)
    # Pushes are sent from this loop's outbox, after the call returns: wait until every one has gone out.
    if not await asyncio.get_running_loop().run_in_executor(None, realtime.flush):
        sent.append({"kind": "flush", "round": -1, "at": time.time(), "ok": False})
    return sent


def trigger_main(rounds: int, user_ids: list[int]) -> None:
    import django

    django.setup()
    print(json.dumps(asyncio.run(_trigger(rounds, user_ids))))


# ---- setup ------------------------------------------------------------------------------------------------------


def _seed(consoles: int, waiting: int) -> list[tuple[int, str]]:
    """N moderators with a signed-in session each, and a queue with `waiting` ready items."""
    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.auth.models import Group, User
    from django.contrib.sessions.backends.db import SessionStore

    from intake.models import ContentItem
    from review.models import Queue

    queue = Queue.objects.create(slug=QUEUE_SLUG, name="Bench live", purpose="Benchmark of live updates.",
                                 requester="Veil benchmarks")
    ContentItem.objects.bulk_create(
        [ContentItem(queue=queue, status=ContentItem.Status.READY, sha256=f"{n:064x}", byte_size=1,
                     mime="image/png", original=f"bench/{n}.png", source_width=1, source_height=1)
         for n in range(waiting)]
    )
    group = Group.objects.get_or_create(name="moderator")[0]
    users: list[tuple[int, str]] = []
    for n in range(consoles):
        user = User.objects.create_user(username=f"live-{n}", password=None)
        user.groups.add(group)
        session = SessionStore()
        session[SESSION_KEY] = str(user.pk)
        # The backend that loads users (AUTHENTICATION_BACKENDS[0] is axes, which only counts failures).
        session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
        session[HASH_SESSION_KEY] = user.get_session_auth_hash()
        session.create()
        users.append((user.pk, f"{settings.SESSION_COOKIE_NAME}={session.session_key}"))
    return users


def _start_daphne(env: dict[str, str], log: Path, web: int = 1) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    if web > 1:
        command = [sys.executable, "-m", "config.stack", "--web", str(web), "--port", str(port), "--no-worker",
                   "--no-beat", "--no-migrate"]
    else:
        command = [str(ROOT / ".venv" / "bin" / "daphne"), "-b", "127.0.0.1", "-p", str(port),
                   "config.asgi:application"]
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=ROOT, env={**os.environ, **env}, stdout=out,
                                   stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"daphne exited with {process.returncode}:\n{log.read_text(errors='replace')[-2000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as response:
                if response.status == 200:
                    return process, port
        except (urllib.error.URLError, OSError):
            time.sleep(0.2)
    process.kill()
    sys.exit("daphne did not answer within 30 s")


# ---- the consoles -----------------------------------------------------------------------------------------------


class Console:
    def __init__(self, user_id: int, cookie: str) -> None:
        self.user_id = user_id
        self.cookie = cookie
        self.counts: dict[int, float] = {}  # waiting count -> arrival
        self.breaks: dict[int, float] = {}  # round -> arrival
        self.ws: Any = None

    async def open(self, port: int) -> None:
        from websockets.asyncio.client import connect

        self.ws = await connect(f"ws://127.0.0.1:{port}/ws/console/", open_timeout=30,
                                additional_headers={"Cookie": self.cookie, "Origin": f"http://127.0.0.1:{port}"})
        first = json.loads(await asyncio.wait_for(self.ws.recv(), timeout=30))
        assert first["type"] == "queue.counts", first

    async def listen(self) -> int:
        """Note each message's arrival until cancelled (no timer per message: the load generator's own CPU per
        message is part of what a run measures). Returns how many messages arrived."""
        received = 0
        try:
            async for raw in self.ws:
                arrived = time.time()
                received += 1
                message = json.loads(raw)
                if message.get("type") == "queue.counts":
                    waiting = message["counts"].get(QUEUE_SLUG, {}).get("waiting")
                    if waiting is not None:
                        self.counts.setdefault(int(waiting), arrived)
                elif message.get("type") == "break.due" and "bench_round" in message:
                    self.breaks.setdefault(int(message["bench_round"]), arrived)
        except asyncio.CancelledError:
            pass
        return received


# ---- a client process: its share of the consoles ----------------------------------------------------------------


async def _client(port: int, at_once: bool) -> None:
    """Reads its consoles ([[user id, cookie], ...]) from stdin, opens them, says so on stdout, listens until
    stdin says "stop", then prints every arrival (JSON lines, the parent reads them)."""
    loop = asyncio.get_running_loop()
    users = json.loads(await loop.run_in_executor(None, sys.stdin.readline))
    consoles = [Console(uid, cookie) for uid, cookie in users]
    opened = time.monotonic()
    batch = len(consoles) if at_once else CONNECT_BATCH
    failed_handshakes = 0
    first_failure = ""
    for start in range(0, len(consoles), batch):
        outcomes = await asyncio.gather(*(c.open(port) for c in consoles[start:start + batch]),
                                        return_exceptions=True)
        failures = [o for o in outcomes if isinstance(o, BaseException)]
        failed_handshakes += len(failures)
        if failures and not first_failure:
            first_failure = f"{type(failures[0]).__name__}: {failures[0]}"
    connect_seconds = time.monotonic() - opened
    # Counted and reported; the consoles that did open are still measured (a lost console is one that opened).
    consoles = [c for c in consoles if c.ws is not None]
    listeners = [asyncio.create_task(c.listen()) for c in consoles]
    print(json.dumps({"connect_seconds": connect_seconds, "failed_handshakes": failed_handshakes,
                      "first_failure": first_failure}), flush=True)
    await loop.run_in_executor(None, sys.stdin.readline)  # "stop"
    for task in listeners:
        task.cancel()
    received = sum(await asyncio.gather(*listeners))
    await asyncio.gather(*(c.ws.close() for c in consoles), return_exceptions=True)
    print(json.dumps({"received": received,
                      "consoles": [[c.user_id, c.counts, c.breaks] for c in consoles]}), flush=True)


def client_main(port: int, at_once: bool) -> None:
    asyncio.run(_client(port, at_once))


# ---- the web processes' CPU -------------------------------------------------------------------------------------


def _process_tree(pid: int) -> list[int]:
    """pid and its descendants (config.stack's web processes are its children)."""
    found = [pid]
    for known in found:
        try:
            children = Path(f"/proc/{known}/task/{known}/children").read_text().split()
        except OSError:
            continue
        found.extend(int(child) for child in children)
    return found


def _cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / os.sysconf("SC_CLK_TCK")


async def _settle(pids: list[int], limit: float = 60.0) -> float:
    """Wait until the web processes are idle (under 5 % of a core for 1 s): every console's start-up reads (its
    role, its counts, its break state) are done, so the broadcasts are measured on their own."""
    began = time.monotonic()
    previous = _cpu_seconds(pids)
    quiet = 0
    while time.monotonic() - began < limit and quiet < 4:
        await asyncio.sleep(0.25)
        now = _cpu_seconds(pids)
        quiet = quiet + 1 if now - previous < 0.05 * 0.25 else 0
        previous = now
    return time.monotonic() - began


async def _measure(port: int, users: list[tuple[int, str]], rounds: int, waiting: int,
                   env: dict[str, str], at_once: bool = False, client_processes: int = 2,
                   server_pids: list[int] | None = None) -> dict[str, Any]:
    shares = [users[n::client_processes] for n in range(client_processes)]
    clients = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-m", "benchmarks.realtime", "--client", "--port", str(port),
            *(["--at-once"] if at_once else []),
            cwd=str(ROOT), env={**os.environ, **env}, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            limit=2**26,
        )
        for share in shares if share
    ]

    async def said(client: Any, timeout: float) -> dict[str, Any]:
        line = await asyncio.wait_for(client.stdout.readline(), timeout=timeout)
        if not line:
            sys.exit(f"a client process exited ({await client.wait()})")
        result: dict[str, Any] = json.loads(line)
        return result

    async def tell(client: Any, line: bytes) -> None:
        assert client.stdin is not None
        client.stdin.write(line + b"\n")
        await client.stdin.drain()

    for client, share in zip(clients, [s for s in shares if s], strict=True):
        await tell(client, json.dumps(share).encode())
    opened = await asyncio.gather(*(said(client, 300) for client in clients))
    pids = server_pids or []
    settle_seconds = await _settle(pids)
    budget = rounds * (COUNTS_INTERVAL + BREAK_INTERVAL) + 120
    # (wall clock, web processes' CPU, the machine's busy CPU, client processes' CPU)
    samples: list[tuple[float, float, float, float]] = []
    client_pids = [client.pid for client in clients]

    async def sample() -> None:
        while True:
            samples.append((time.time(), _cpu_seconds(pids), machine_busy_seconds(), _cpu_seconds(client_pids)))
            await asyncio.sleep(0.1)

    sampler = asyncio.create_task(sample())
    trigger = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "benchmarks.realtime", "--trigger", "--rounds", str(rounds),
        "--users", ",".join(str(uid) for uid, _ in users),
        cwd=str(ROOT), env={**os.environ, **env}, stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await asyncio.wait_for(trigger.communicate(), timeout=budget)
    if trigger.returncode != 0:
        sys.exit(f"the trigger process failed ({trigger.returncode})")
    await asyncio.sleep(2.0)  # the last pushes arrive
    sampler.cancel()
    for client in clients:
        await tell(client, b"stop")
    heard = await asyncio.gather(*(said(client, 120) for client in clients))
    for client in clients:
        await asyncio.wait_for(client.wait(), timeout=60)
    consoles: dict[int, tuple[dict[int, float], dict[int, float]]] = {}
    for part in heard:
        for user_id, counts, breaks in part["consoles"]:
            consoles[int(user_id)] = ({int(k): v for k, v in counts.items()}, {int(k): v for k, v in breaks.items()})
    sent = json.loads(out.decode().strip().splitlines()[-1])
    counts_lat: list[float] = []
    break_lat: list[float] = []
    missing = {"counts": 0, "break": 0}
    for event in sent:
        if event["kind"] == "counts":
            expected_waiting = waiting - event["round"] - 1
            for counts, _breaks in consoles.values():
                arrived = counts.get(expected_waiting)
                if arrived is None:
                    missing["counts"] += 1
                else:
                    counts_lat.append(arrived - event["at"])
        elif event["kind"] == "break":
            target = consoles.get(event["user"])
            if target is None:  # its websocket never opened: counted in failed_handshakes
                continue
            arrived = target[1].get(event["round"])
            if arrived is None:
                missing["break"] += 1
            else:
                break_lat.append(arrived - event["at"])
    # CPU over the queue-count phase (web processes, client processes, the whole machine): from its first
    # broadcast to the first break push (or the end).
    counts_at = [e["at"] for e in sent if e["kind"] == "counts"]
    after = [e["at"] for e in sent if e["kind"] != "counts"] or [samples[-1][0]]
    phase = [sample for sample in samples if counts_at[0] - 0.05 <= sample[0] <= min(after)] if counts_at else []
    server_cpu = phase[-1][1] - phase[0][1] if len(phase) > 1 else float("nan")
    machine_cpu = phase[-1][2] - phase[0][2] if len(phase) > 1 else float("nan")
    client_cpu = phase[-1][3] - phase[0][3] if len(phase) > 1 else float("nan")
    phase_seconds = phase[-1][0] - phase[0][0] if len(phase) > 1 else float("nan")
    first_failure = next((o["first_failure"] for o in opened if o["first_failure"]), "")
    return {"counts": counts_lat, "break": break_lat, "missing": missing,
            "connect_seconds": max(o["connect_seconds"] for o in opened),
            "failed_sends": sum(1 for e in sent if not e["ok"]),
            "failed_handshakes": sum(o["failed_handshakes"] for o in opened), "first_failure": first_failure,
            "settle_seconds": settle_seconds, "client_processes": len(clients),
            "client_cpu_per_message_us": 1e6 * client_cpu / max(1, len(counts_at) * len(consoles)),
            "server_cpu_per_broadcast_ms": 1000 * server_cpu / max(1, len(counts_at)),
            "machine_busy_cores": machine_cpu / phase_seconds if phase_seconds else float("nan")}


def _waiting_now() -> int:
    from django.db import connections

    from intake.models import ContentItem

    waiting = ContentItem.objects.filter(queue__slug=QUEUE_SLUG, status=ContentItem.Status.READY).count()
    connections.close_all()
    return waiting


def run_size(users: list[tuple[int, str]], rounds: int, env: dict[str, str], data_dir: str, web: int = 1,
             at_once: bool = False, client_processes: int = 2) -> dict[str, Any]:
    """One server of its own (one daphne process, or `web` of them) for this many consoles."""
    log = Path(data_dir) / f"daphne-{len(users)}.log"
    waiting = _waiting_now()
    daphne, port = _start_daphne(env, log, web)
    try:
        result = asyncio.run(_measure(port, users, rounds, waiting, env, at_once, client_processes,
                                      _process_tree(daphne.pid)))
    finally:
        stop_process(daphne, grace=10)
    result["consoles"] = len(users)
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--consoles", type=int, default=200)
    parser.add_argument("--baseline-consoles", type=int, default=50)
    parser.add_argument("--web", type=int, default=1, help="daphne processes serving the consoles")
    parser.add_argument("--at-once", action="store_true", help="open all websockets at the same moment")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--client-processes", type=int, default=2,
                        help="load-generator processes the consoles are spread over (on this machine)")
    parser.add_argument("--database-url", default=os.environ.get("VEIL_BENCH_DATABASE_URL", BENCH_DATABASE_URL))
    parser.add_argument("--redis-url", default=os.environ.get("VEIL_BENCH_REDIS_URL", BENCH_REDIS_URL))
    parser.add_argument("--trigger", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--users", default="", help=argparse.SUPPRESS)
    parser.add_argument("--client", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        client_main(args.port, args.at_once)
        return
    if args.client_processes < 1:
        sys.exit("--client-processes must be at least 1")
    if args.trigger:
        trigger_main(args.rounds, [int(u) for u in args.users.split(",") if u])
        return
    try:
        import websockets  # noqa: F401
    except ImportError:
        sys.exit("benchmarks.realtime needs the websockets package (pip install -e '.[dev]')")
    if not postgres_reachable(args.database_url) or not redis_reachable(args.redis_url):
        sys.exit(f"benchmarks.realtime needs PostgreSQL at {args.database_url} and Redis at {args.redis_url}")
    header = machine_line(("python -m benchmarks.realtime " + " ".join(sys.argv[1:])).strip())
    sizes = (args.baseline_consoles, args.consoles)
    with tempfile.TemporaryDirectory(prefix="veil-bench-rt-") as data_dir:
        database_url = _database_url(args.database_url)
        fresh_database(database_url)
        env = _configure(database_url, args.redis_url, f"veil-bench-{secrets.token_hex(4)}", data_dir,
                         secrets.token_urlsafe(50))
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        users = _seed(max(sizes), waiting=args.rounds * len(sizes) + 10)
        results = [run_size(users[:n], args.rounds, env, data_dir, args.web, args.at_once, args.client_processes)
                   for n in sizes]
    print(header)
    print()
    served = "one daphne process" if args.web <= 1 else f"{args.web} daphne processes on one socket (config.stack)"
    print(f"Console websockets on {served} (channels_redis pub/sub), the consoles spread over "
          f"{args.client_processes} client process(es) on this machine; {args.rounds} queue-count broadcasts "
          f"{COUNTS_INTERVAL:g} s apart, then {args.rounds} rounds of one break.due push per moderator; latency "
          "from the committed change to arrival at each console")
    print()
    print("| consoles | event | deliveries | p50 ms | p99 ms | max ms | lost | p99 vs baseline |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|")
    base = results[0]
    for result in results:
        for kind, label in (("counts", "queue counts (broadcast)"), ("break", "break.due (per user)")):
            latencies = result[kind]
            ratio = percentile_ms(latencies, 99) / percentile_ms(base[kind], 99)
            print(f"| {result['consoles']} | {label} | {len(latencies)} | {percentile_ms(latencies, 50):.1f} | "
                  f"{percentile_ms(latencies, 99):.1f} | {percentile_ms(latencies, 100):.1f} | "
                  f"{result['missing'][kind]} | {ratio:.1f}x |")
    print()
    for result in results:
        print(f"- {result['consoles']} consoles: opened in {result['connect_seconds']:.1f} s"
              f"{' all at once' if args.at_once else ''}, {result['failed_handshakes']} failed handshakes"
              f"{' (' + result['first_failure'] + ')' if result['first_failure'] else ''}; "
              f"{sum(result['missing'].values())} deliveries missing; {result['failed_sends']} sends refused by the "
              f"layer; web processes idle {result['settle_seconds']:.1f} s after the last console opened; CPU per "
              f"queue-count broadcast, all web processes: {result['server_cpu_per_broadcast_ms']:.1f} ms; client CPU "
              f"per queue-count message received: {result['client_cpu_per_message_us']:.0f} us; machine busy during "
              f"the broadcasts: {result['machine_busy_cores']:.2f} of {os.cpu_count()} cores")
    if any(sum(r["missing"].values()) or r["failed_sends"] or r["failed_handshakes"] for r in results):
        sys.exit("some pushes were lost or some consoles could not connect")


if __name__ == "__main__":
    main()
