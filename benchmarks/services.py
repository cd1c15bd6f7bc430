"""What the service benchmarks (claim, realtime) share: reachability checks, a throwaway PostgreSQL database, the
machine description and percentiles. Nothing here touches a database or Redis that the benchmark did not name."""

from __future__ import annotations

import datetime as dt
import os
import platform
import socket
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import numpy as np

BENCH_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/veil_bench"
BENCH_REDIS_URL = "redis://127.0.0.1:6379/0"


def reachable(url: str, default_port: int) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or default_port), timeout=1):
            return True
    except OSError:
        return False


def postgres_reachable(url: str = BENCH_DATABASE_URL) -> bool:
    return reachable(url, 5432)


def redis_reachable(url: str = BENCH_REDIS_URL) -> bool:
    return reachable(url, 6379)


def fresh_database(url: str) -> None:
    """Drop and create the database the URL names, through the server's `postgres` maintenance database."""
    import psycopg

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    if not name.startswith(("veil_bench", "bench")):
        sys.exit(f"refusing to recreate {name!r}: benchmark databases are named veil_bench*")
    admin = urlunsplit(parts._replace(scheme="postgresql", path="/postgres"))
    with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def load_average() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


def python_speed_ms() -> float:
    """A pure-Python yardstick, so runs on different hosts can be compared: `sum(range(10**6))`, best of 5, in ms.
    The same "2 CPU" kind of machine has measured anywhere from about 12 to 35 ms."""
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        sum(range(10**6))
        best = min(best, time.perf_counter() - start)
    return best * 1000


def machine_line(command: str) -> str:
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (f"Machine: {os.cpu_count()} CPUs ({cpu_model()}), Python {platform.python_version()} "
            f"(yardstick `sum(range(10**6))` {python_speed_ms():.1f} ms); "
            f"load average before the run {load_average()}; date {now}; command `{command}`")


def percentile_ms(samples: Sequence[float], q: float) -> float:
    """The q-th percentile of latencies given in seconds, in milliseconds."""
    if not samples:
        return float("nan")
    return float(np.percentile(np.asarray(samples), q)) * 1000


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def machine_busy_seconds() -> float:
    """CPU time all cores spent on anything but idling (user, nice, system, irq, softirq) since boot."""
    with open("/proc/stat") as stat:
        fields = [int(x) for x in stat.readline().split()[1:8]]
    user, nice, system, _idle, _iowait, irq, softirq = fields
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")
