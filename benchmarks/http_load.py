"""End-to-end claim benchmark: moderators claiming and deciding through HTTP, on the real stack as shipped.

What runs is `python -m config.stack` (what `make stack` starts): N daphne processes on one socket with Veil's
request limits, each with its PostgreSQL pool (settings as shipped: VEIL_DB_POOL_SIZE 8), a Celery worker and
beat, channels_redis, on this machine's PostgreSQL and Redis. Nothing is called in-process: the load generator
(this process, asyncio + aiohttp, one keep-alive connection per moderator as a browser would have) talks to it
only through the API with each moderator's token.

Each moderator, open loop: claims at a scheduled moment, looks at the item for 50-90 % of the period, decides
(approve), and claims again one period (+-10 %) after the previous claim. Moderators start spread evenly over the
first period, so the rate is moderators / period claims per second, and as many decisions. Latency is measured
from the scheduled moment, so a slow answer that delays the next request is counted, not hidden. Each moderator's
first claim (it opens their shift) is reported on a row of its own as well as in the whole.

Reported per phase: claims and decisions, p50/p99/max latency, answers by status, the peak number of PostgreSQL
connections the stack held (pg_stat_activity, every 0.25 s), and CPU per claim (one claim + one decision) for
the whole machine (web, worker, PostgreSQL, Redis and the load generator together) beside the CPU of a raw
`SKIP LOCKED` claim + finish measured in the same run on the same database. With --rates, a sweep reports the
highest rate at which claim p99 stays under 100 ms.

Run: python -m benchmarks.http_load [--moderators 1000] [--period 20] [--seconds 60] [--web N] [--rates 50,75,100]
Needs PostgreSQL and Redis; recreates the database veil_bench_http.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.claim import RAW_CLAIM
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

ROOT = Path(__file__).resolve().parent.parent
RAW_FINISH = "UPDATE moderation_contentitem SET status = 'decided' WHERE id = %s"


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) a process has used, 0 when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def process_tree(pid: int) -> list[int]:
    found = [pid]
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children = (task / "children").read_text().split()
        except OSError:
            continue
        for child in children:
            found.extend(process_tree(int(child)))
    return found


class TreeCpu:
    """CPU of a process tree over a window, counting processes that exit in it up to their last sample."""

    def __init__(self, root: int) -> None:
        self.root = root
        self.first: dict[int, float] = {}
        self.last: dict[int, float] = {}

    def sample(self) -> None:
        for pid in process_tree(self.root):
            used = process_cpu(pid)
            self.first.setdefault(pid, used)
            self.last[pid] = used

    def reset(self) -> None:
        self.first, self.last = {}, {}
        self.sample()

    def seconds(self) -> float:
        return sum(self.last[p] - self.first[p] for p in self.last)


# ---- setup ------------------------------------------------------------------------------------------------------


def configure(database_url: str, redis_url: str, data_dir: str) -> dict[str, str]:
    env = {
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "VEIL_CHANNEL_PREFIX": f"veil-bench-http-{secrets.token_hex(3)}",
        "VEIL_DATA_DIR": data_dir,
        "VEIL_SECRET_KEY": secrets.token_urlsafe(50),
        "VEIL_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "VEIL_LOG_LEVEL": "WARNING",
        "DJANGO_SETTINGS_MODULE": "config.settings",
    }
    os.environ.update(env)
    return env


def seed(moderators: int, items: int, raw_items: int) -> tuple[str, int, list[str]]:
    from django.contrib.auth.models import Group, User
    from rest_framework.authtoken.models import Token

    from intake.models import ContentItem, Severity
    from review.models import Queue

    queue = Queue.objects.create(slug="bench-http", name="Bench", purpose="End-to-end benchmark of claiming.",
                                 requester="Veil benchmarks")
    raw = Queue.objects.create(slug="bench-raw", name="Raw", purpose="The raw SKIP LOCKED baseline.",
                               requester="Veil benchmarks")
    group = Group.objects.get_or_create(name="moderator")[0]
    users = User.objects.bulk_create([User(username=f"http-{n}") for n in range(moderators)], batch_size=2000)
    group.user_set.add(*users)
    tokens = Token.objects.bulk_create([Token(user=u, key=secrets.token_hex(20)) for u in users], batch_size=2000)
    for q, count in ((queue, items), (raw, raw_items)):
        ContentItem.objects.bulk_create(
            [ContentItem(queue=q, status=ContentItem.Status.READY, severity=Severity.NONE,
                         sha256=f"{q.pk:08x}{n:056x}", byte_size=1, mime="image/png", original=f"bench/{n}.png",
                         source_width=1, source_height=1, submitted_to=q) for n in range(count)],
            batch_size=2000)
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    return queue.slug, raw.pk, [t.key for t in tokens]


def raw_cpu_per_claim(database_url: str, queue_id: int, user_id: int, claims: int, threads: int = 4) -> float:
    """Machine CPU seconds per raw SKIP LOCKED claim + finish, `threads` autocommit connections in a loop."""
    import psycopg

    url = database_url.replace("postgres://", "postgresql://", 1)
    per_thread = claims // threads
    done = [0] * threads

    def loop(k: int) -> None:
        with psycopg.connect(url, autocommit=True) as conn:
            for _ in range(per_thread):
                row = conn.execute(RAW_CLAIM, [queue_id], prepare=True).fetchone()
                if row is None:
                    return
                conn.execute(RAW_FINISH, [row[0]], prepare=True)
                done[k] += 1

    import psycopg as pg

    backends: dict[int, float] = {}
    stop, started = threading.Event(), threading.Event()

    def watch() -> None:  # the raw loop's PostgreSQL backends, as for Veil's
        with pg.connect(url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
            mine = conn.info.backend_pid
            query = "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> %s"
            name = url.rsplit("/", 1)[1]
            before = {pid: process_cpu(pid) for (pid,) in conn.execute(query, [name, mine]).fetchall()}
            started.set()
            while not stop.is_set():
                for (pid,) in conn.execute(query, [name, mine]).fetchall():
                    backends[pid] = process_cpu(pid) - before.get(pid, 0.0)
                stop.wait(0.1)

    watcher = threading.Thread(target=watch)
    watcher.start()
    started.wait(10)
    client = time.process_time()
    workers = [threading.Thread(target=loop, args=(k,)) for k in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    client = time.process_time() - client
    stop.set()
    watcher.join()
    return (client + sum(backends.values())) / max(1, sum(done))


class Stack:
    def __init__(self, env: dict[str, str], web: int, port: int, log: Path) -> None:
        self.port = port
        self.log = log
        with log.open("w") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "config.stack", "--web", str(web), "--port", str(port), "--no-migrate"],
                cwd=ROOT, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT)
        import urllib.request

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                sys.exit(f"the stack exited:\n{log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                    return
            except OSError:
                time.sleep(0.3)
        sys.exit(f"the stack did not answer:\n{log.read_text()[-3000:]}")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()


class ConnectionSampler(threading.Thread):
    """Peak PostgreSQL connections to the benchmark database, not counting its own."""

    def __init__(self, database_url: str, name: str) -> None:
        super().__init__(daemon=True)
        self.url = database_url.replace("postgres://", "postgresql://", 1).rsplit("/", 1)[0] + "/postgres"
        self.name_ = name
        self.peak = 0
        self.stop_event = threading.Event()
        self.trees: list[TreeCpu] = []  # the stack's processes, sampled with the backends
        self.first: dict[int, float] = {}  # PostgreSQL backends of the database: CPU when first seen in the window
        self.last: dict[int, float] = {}
        self.lock = threading.Lock()

    def run(self) -> None:
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            while not self.stop_event.is_set():
                pids = [r[0] for r in conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s",
                                                    [self.name_]).fetchall()]
                with self.lock:
                    self.peak = max(self.peak, len(pids))
                    for pid in pids:
                        used = process_cpu(pid)
                        self.first.setdefault(pid, used)
                        self.last[pid] = used
                    for tree in self.trees:
                        tree.sample()
                self.stop_event.wait(0.25)

    def reset(self) -> None:
        with self.lock:
            self.peak = 0
            self.first = {pid: process_cpu(pid) for pid in self.last}
            self.last = dict(self.first)
            for tree in self.trees:
                tree.reset()

    def postgres_seconds(self) -> float:
        with self.lock:
            return sum(self.last[p] - self.first[p] for p in self.last)


# ---- the load -----------------------------------------------------------------------------------------------------


@dataclass
class Phase:
    rate: float
    claims: list[float] = field(default_factory=list)
    first_claims: list[float] = field(default_factory=list)
    decisions: list[float] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    cpu_seconds: float = 0.0  # the whole machine
    cpu_veil: float = 0.0  # the stack's processes (web, worker, beat)
    cpu_postgres: float = 0.0  # the database's backends
    cpu_client: float = 0.0  # this load generator
    steady_claims: int = 0
    steady_decisions: int = 0
    peak_connections: int = 0
    late_starts: int = 0


async def _moderator(session: Any, base: str, slug: str, token: str, start: float, period: float, end: float,
                     phase: Phase, rng: random.Random, window: tuple[float, float]) -> None:
    headers = {"Authorization": f"Token {token}"}
    scheduled = start
    first = True
    loop = asyncio.get_running_loop()
    while scheduled < end:
        delay = scheduled - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        try:
            async with session.post(f"{base}/api/v1/queues/{slug}/claim/", headers=headers) as answer:
                body = await answer.json(content_type=None)
                status = answer.status
        except Exception as exc:
            status, body = 0, {"error": type(exc).__name__}
        took = loop.time() - scheduled
        phase.statuses[f"claim {status}"] += 1
        (phase.first_claims if first else phase.claims).append(took)
        if window[0] <= scheduled < window[1]:
            phase.steady_claims += 1
        first = False
        if status != 200:
            if len(phase.errors) < 20:
                phase.errors.append(f"claim {status}: {str(body)[:200]}")
        else:
            decide_at = scheduled + period * rng.uniform(0.5, 0.9)
            delay = decide_at - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            try:
                async with session.post(f"{base}/api/v1/items/{body['id']}/decision/", headers=headers,
                                        json={"action": "approve", "reason": "benchmark"}) as answer:
                    await answer.read()
                    dstatus = answer.status
            except Exception as exc:
                dstatus = 0
                phase.errors.append(f"decision: {type(exc).__name__}")
            phase.decisions.append(loop.time() - decide_at)
            phase.statuses[f"decision {dstatus}"] += 1
            if window[0] <= decide_at < window[1]:
                phase.steady_decisions += 1
            if dstatus != 201 and len(phase.errors) < 20:
                phase.errors.append(f"decision {dstatus}")
        scheduled += period * rng.uniform(0.9, 1.1)


async def run_phase(port: int, slug: str, tokens: list[str], rate: float, seconds: float,
                    sampler: ConnectionSampler) -> Phase:
    import aiohttp

    period = len(tokens) / rate
    phase = Phase(rate=rate)
    loop = asyncio.get_running_loop()
    start = loop.time() + 1.0
    # Steady window: after every moderator's first claim (one period), until the end.
    end = start + period + seconds
    window = (start + period, end)
    rng = random.Random(7)
    connector = aiohttp.TCPConnector(limit=0, limit_per_host=0)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        base = f"http://127.0.0.1:{port}"
        tasks = [
            asyncio.create_task(_moderator(session, base, slug, token, start + period * n / len(tokens), period, end,
                                           phase, random.Random(rng.random()), window))
            for n, token in enumerate(tokens)
        ]
        await asyncio.sleep(max(0.0, window[0] - loop.time()))
        sampler.reset()
        busy = machine_busy_seconds()
        client = time.process_time()
        await asyncio.sleep(max(0.0, window[1] - loop.time()))
        phase.cpu_seconds = machine_busy_seconds() - busy
        phase.cpu_client = time.process_time() - client
        phase.peak_connections = sampler.peak
        phase.cpu_veil = sum(tree.seconds() for tree in sampler.trees)
        phase.cpu_postgres = sampler.postgres_seconds()
        await asyncio.gather(*tasks)
    return phase


def warm_up(port: int, slug: str, tokens: list[str], rate: float, seconds: float, sampler: ConnectionSampler,
            database_url: str) -> None:
    """A deployment that has been running: a phase of claiming that is not reported, with an ANALYZE in the middle.

    Why: the database starts empty and analysed as empty (seed's VACUUM ANALYZE), and PostgreSQL plans for the
    statistics it has, so in the first minute of a new database the ledger's reads are planned for empty tables
    while thousands of rows arrive. On a running deployment autovacuum's ANALYZE keeps those statistics within
    about 10 % of the table, taken while people work (leases open); the benchmark measures that state. The ANALYZE
    runs once every moderator has claimed (one period in), as autovacuum would find the tables."""
    import psycopg

    def analyze() -> None:
        with psycopg.connect(database_url.replace("postgres://", "postgresql://", 1), autocommit=True) as conn:
            conn.execute("ANALYZE")

    timer = threading.Timer(1.0 + len(tokens) / rate + seconds / 2, analyze)
    timer.start()
    try:
        asyncio.run(run_phase(port, slug, tokens, rate, seconds, sampler))
    finally:
        timer.join()
    time.sleep(2)


def double_assignments(slug: str) -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("""
            SELECT count(*) FROM review_queue_claim a JOIN review_queue_claim b
              ON a.item_id = b.item_id AND a.id < b.id
             AND a.claimed_at < coalesce(b.ended_at, now()) AND b.claimed_at < coalesce(a.ended_at, now())
             JOIN review_queue_queue q ON q.id = a.queue_id WHERE q.slug = %s""", [slug])
        row = cursor.fetchone()
    return int(row[0]) if row else -1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--moderators", type=int, default=1000)
    parser.add_argument("--period", type=float, default=20.0, help="seconds between a moderator's claims")
    parser.add_argument("--seconds", type=float, default=60.0, help="steady part of each phase")
    parser.add_argument("--rates", default="", help="claims/s of further phases (a sweep), e.g. 75,100")
    parser.add_argument("--web", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--raw-claims", type=int, default=4000)
    parser.add_argument("--warmup", type=float, default=30.0,
                        help="seconds of claiming at the first rate before the measured phases (not reported), "
                             "followed by the statistics autovacuum would have gathered by then; 0: none")
    parser.add_argument("--database-url", default=os.environ.get("VEIL_BENCH_DATABASE_URL", BENCH_DATABASE_URL))
    parser.add_argument("--redis-url", default=os.environ.get("VEIL_BENCH_REDIS_URL", BENCH_REDIS_URL))
    args = parser.parse_args()
    try:
        import aiohttp  # noqa: F401
    except ImportError:
        sys.exit("benchmarks.http_load needs aiohttp (pip install -e '.[dev]')")
    if not postgres_reachable(args.database_url) or not redis_reachable(args.redis_url):
        sys.exit(f"benchmarks.http_load needs PostgreSQL at {args.database_url} and Redis at {args.redis_url}")
    header = machine_line(("python -m benchmarks.http_load " + " ".join(sys.argv[1:])).strip())
    base_rate = args.moderators / args.period
    rates = [base_rate, *[float(r) for r in args.rates.split(",") if r]]
    database_url = args.database_url.rsplit("/", 1)[0] + "/veil_bench_http"
    fresh_database(database_url)
    needed = int(sum(r * (args.seconds + 2 * args.moderators / r) for r in rates) * 1.2) + args.moderators
    if args.warmup:
        needed += int(rates[0] * (args.warmup + 2 * args.period) * 1.2)
    with tempfile.TemporaryDirectory(prefix="veil-bench-http-") as data_dir:
        env = configure(database_url, args.redis_url, data_dir)
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        slug, raw_queue, tokens = seed(args.moderators, needed, args.raw_claims)
        from django.contrib.auth.models import User
        from django.db import connections

        raw_user = User.objects.order_by("pk").values_list("pk", flat=True).first() or 0
        connections.close_all()
        # Not type-checked below: the PostgreSQL wrapper's pool method, not in django-stubs
        connections["default"].close_pool()  # type: ignore[attr-defined]  # the seeding connection: not the raw run's
        raw_cpu = raw_cpu_per_claim(database_url, raw_queue, raw_user, args.raw_claims)
        sampler = ConnectionSampler(database_url, "veil_bench_http")
        sampler.start()
        port = free_port()
        stack = Stack(env, args.web, port, Path(data_dir) / "stack.log")
        sampler.trees.append(TreeCpu(stack.process.pid))
        phases: list[Phase] = []
        try:
            if args.warmup:
                warm_up(port, slug, tokens, rates[0], args.warmup, sampler, database_url)
            for rate in rates:
                phases.append(asyncio.run(run_phase(port, slug, tokens, rate, args.seconds, sampler)))
                time.sleep(2)
        finally:
            sampler.stop_event.set()
            stack.stop()
        doubles = double_assignments(slug)
        log_text = (Path(data_dir) / "stack.log").read_text(errors="replace")
        problems = [line for line in log_text.splitlines()
                    if " ERROR " in line or " WARNING " in line or "Error" in line or "error" in line]
        log_tail = "\n".join(problems[-40:])
        if os.environ.get("VEIL_BENCH_KEEP_LOG"):
            Path(os.environ["VEIL_BENCH_KEEP_LOG"]).write_text(log_text)
    _report(header, args, phases, raw_cpu, doubles)
    if any(p.errors for p in phases[:1]) or doubles:
        print(f"\nstack log (errors and warnings, last 40):\n{log_tail}")
        sys.exit("errors or double assignments at the target rate")


def _report(header: str, args: argparse.Namespace, phases: list[Phase], raw_cpu: float, doubles: int) -> None:
    print(header)
    print()
    pool = os.environ.get("VEIL_DB_POOL_SIZE") or "8 (shipped)"
    print(f"Through HTTP on `python -m config.stack --web {args.web}` (worker and beat running, pool {pool} per "
          f"process); {args.moderators} moderators, open loop, each claiming every ~{args.period:g} s at the first "
          f"rate and deciding 50-90 % of the way to the next claim; steady part {args.seconds:g} s per phase, after "
          f"{f'{args.warmup:g} s of warm-up and ANALYZE' if args.warmup else 'no warm-up (a new database)'}")
    print()
    print("| claims/s (target) | claims | claim p50 ms | claim p99 ms | claim max ms | first claims p99 ms | "
          "decision p50 ms | decision p99 ms | errors | PG connections (peak) | CPU ms per claim+decision: Veil + "
          "PostgreSQL (+ load generator) | raw claim CPU ms | ratio | machine CPU ms |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---|---:|---:|---:|")
    best = None
    for p in phases:
        steady = max(1, p.steady_claims)
        cpu_ms = (p.cpu_veil + p.cpu_postgres) / steady * 1000
        machine_ms = p.cpu_seconds / steady * 1000
        errors = {k: v for k, v in p.statuses.items() if not k.endswith((" 200", " 201"))}
        p99 = percentile_ms(p.claims, 99)
        if p99 < 100 and not errors:
            best = p.rate if best is None else max(best, p.rate)
        print(f"| {p.rate:.0f} | {len(p.claims) + len(p.first_claims)} | {percentile_ms(p.claims, 50):.1f} | "
              f"{p99:.1f} | {percentile_ms(p.claims, 100):.1f} | {percentile_ms(p.first_claims, 99):.1f} | "
              f"{percentile_ms(p.decisions, 50):.1f} | {percentile_ms(p.decisions, 99):.1f} | "
              f"{', '.join(f'{k}: {v}' for k, v in sorted(errors.items())) or '0'} | {p.peak_connections} | "
              f"{p.cpu_veil / steady * 1000:.1f} + {p.cpu_postgres / steady * 1000:.1f} = {cpu_ms:.1f} "
              f"(+ {p.cpu_client / steady * 1000:.1f}) | {raw_cpu * 1000:.2f} | {cpu_ms / (raw_cpu * 1000):.1f}x | "
              f"{machine_ms:.1f} |")
    print()
    print(f"- Double assignments: {doubles}. Highest rate with claim p99 < 100 ms and no error: "
          f"{f'{best:.0f} claims/s' if best is not None else 'none of those run'}.")
    print("- Claim percentiles exclude each moderator's first claim of a phase (it opens a shift), shown apart.")
    print("- CPU over the steady part, divided by the claims scheduled in it: Veil's processes (web, worker, beat) "
          "and the database's PostgreSQL backends, read from /proc (so other work on the machine does not count); "
          "the load generator apart; the whole machine last (everything, Redis and other work included). The raw "
          "claim: a prepared SKIP LOCKED claim + finish from 4 connections on the same database before the stack "
          "started, client and backends; the ratio is Veil's claim + decision over that.")
    for p in phases:
        if p.errors:
            print(f"- Errors at {p.rate:.0f}/s (first few): {p.errors[:3]}")


if __name__ == "__main__":
    main()
