"""`make stack`: the real stack on this machine, without docker, as a deployment runs it.

    python -m config.stack [--web N] [--host 127.0.0.1] [--port 8000] [--no-worker] [--no-beat]

- PostgreSQL at DATABASE_URL (default postgres://postgres@127.0.0.1:5432/veil) and Redis at REDIS_URL (default
  redis://127.0.0.1:6379/0): used if they answer; otherwise started where this machine can start them (Debian's
  `pg_ctlcluster`, `redis-server`), or a sentence says what to do. A missing database is created.
- Migrations, then N web processes (default: one per core). Each is daphne with Veil's request limits
  (config/http_limits.py) on one listening socket that this launcher opens and hands to all of them, so the
  kernel spreads connections over the processes with no proxy in between. Websockets and HTTP share it.
- One Celery worker (2 processes) and Celery beat (leases, stuck items, webhook retries, check-in retention).
- A process that dies is started again (after 1 s, doubling up to 30 s while it keeps dying). Ctrl-C or SIGTERM
  stops them all.

Database connections: every process has its own pool (VEIL_DB_POOL_SIZE, default 8), so the stack holds at most
(web processes + worker processes + 1) x the size; the launcher prints that figure and refuses to start when it
is over what PostgreSQL allows.
Compose (compose/docker-compose.yml) runs the same processes behind nginx.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/veil"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
WORKER_PROCESSES = 2


def _say(message: str) -> None:
    print(f"veil stack: {message}", flush=True)


def _fail(message: str) -> NoReturn:
    print(f"veil stack: {message}", file=sys.stderr, flush=True)
    raise SystemExit(1)


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def _wait_for(host: str, port: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if _answers(host, port):
            return True
        time.sleep(0.5)
    return False


def ensure_postgres(database_url: str) -> None:
    parts = urlsplit(database_url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 5432
    if not _answers(host, port):
        clusters = sorted(Path("/etc/postgresql").glob("*/main")) if host in {"127.0.0.1", "localhost"} else []
        pg_ctlcluster = shutil.which("pg_ctlcluster")
        if not clusters or not pg_ctlcluster:
            _fail(f"PostgreSQL does not answer at {host}:{port}. Start it, or set DATABASE_URL to one that runs.")
        version = clusters[-1].parent.name
        _say(f"starting PostgreSQL {version} (pg_ctlcluster)")
        subprocess.run([pg_ctlcluster, "--skip-systemctl-redirect", version, "main", "start"],  # noqa: S603
                       check=False)
        if not _wait_for(host, port, 30):
            _fail(f"PostgreSQL {version} did not start; see /var/log/postgresql/.")
    import psycopg
    from psycopg import sql

    name = parts.path.lstrip("/")
    admin = parts._replace(path="/postgres").geturl().replace("postgres://", "postgresql://", 1)
    try:
        with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
            if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone() is None:
                _say(f"creating database {name}")
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    except psycopg.Error as exc:
        _fail(f"cannot prepare database {name!r} at {host}:{port}: {exc}".strip())


def postgres_max_connections(database_url: str) -> int:
    import psycopg

    url = database_url.replace("postgres://", "postgresql://", 1)
    with psycopg.connect(url, connect_timeout=5) as conn:
        row = conn.execute("SHOW max_connections").fetchone()
        reserved = conn.execute("SHOW superuser_reserved_connections").fetchone()
    return int(row[0] if row else 100) - int(reserved[0] if reserved else 3)


def ensure_redis(redis_url: str) -> None:
    parts = urlsplit(redis_url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 6379
    if _answers(host, port):
        return
    redis_server = shutil.which("redis-server")
    if host not in {"127.0.0.1", "localhost"} or not redis_server:
        _fail(f"Redis does not answer at {host}:{port}. Start it, or set REDIS_URL to one that runs.")
    _say("starting Redis (redis-server, nothing kept on disk)")
    data = ROOT / "var" / "redis"
    data.mkdir(parents=True, exist_ok=True)
    subprocess.run([redis_server, "--daemonize",  # noqa: S603 "yes", "--bind", "127.0.0.1", "--port", str(port), "--save", "",
                    "--appendonly", "no", "--dir", str(data), "--logfile", str(data / "redis.log")], check=False)
    if not _wait_for(host, port, 15):
        _fail(f"Redis did not start; see {data / 'redis.log'}.")


def listening_socket(host: str, port: int) -> socket.socket:
    if ":" in host:  # daphne's --fd adopts IPv4 sockets only
        _fail("--host must be an IPv4 address or name (put a proxy in front for IPv6)")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        _fail(f"cannot listen on {host}:{port}: {exc.strerror}. Is another server there? Choose one with PORT=.")
    sock.listen(1024)
    sock.set_inheritable(True)
    return sock


@dataclass
class Child:
    name: str
    argv: list[str]
    env: dict[str, str]
    pass_fds: tuple[int, ...] = ()
    process: subprocess.Popen[bytes] | None = None
    backoff: float = 1.0
    restart_at: float = 0.0
    started_at: float = field(default=0.0)

    def start(self) -> None:
        # The argv is this module's own (sys.executable -m daphne/celery), never input.
        self.process = subprocess.Popen(self.argv, cwd=ROOT, env=self.env, pass_fds=self.pass_fds)  # noqa: S603
        self.started_at = time.monotonic()
        _say(f"{self.name} started (pid {self.process.pid})")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()


def web_argv(fd: int, *, behind_proxy: bool) -> list[str]:
    # Client addresses from X-Forwarded-For only behind a proxy that sets it (compose's nginx); otherwise anyone
    # could claim any address (and dodge per-address limits).
    proxy = ["--proxy-headers"] if behind_proxy else []
    return [sys.executable, "-m", "daphne", "--fd", str(fd), *proxy, "config.asgi:application"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m config.stack", description=__doc__.split("\n\n")[0])
    parser.add_argument("--web", type=int, default=int(os.environ.get("VEIL_WEB_PROCESSES") or os.cpu_count() or 2),
                        help="web (daphne) processes; default VEIL_WEB_PROCESSES or one per core")
    parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    parser.add_argument("--no-worker", action="store_true", help="start no Celery worker")
    parser.add_argument("--no-beat", action="store_true", help="start no Celery beat")
    parser.add_argument("--no-migrate", action="store_true", help="do not apply migrations first")
    args = parser.parse_args(argv)
    if args.web < 1:
        _fail("--web must be at least 1")

    env = dict(os.environ)
    env.setdefault("DATABASE_URL", DEFAULT_DATABASE_URL)
    env.setdefault("REDIS_URL", DEFAULT_REDIS_URL)
    env.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    env["PYTHONUNBUFFERED"] = "1"
    ensure_postgres(env["DATABASE_URL"])
    ensure_redis(env["REDIS_URL"])

    pool = int(env.get("VEIL_DB_POOL_SIZE") or 8)
    worker_pool = min(pool, 2)  # a worker process runs one task at a time
    processes = args.web * pool + (0 if args.no_worker else WORKER_PROCESSES * worker_pool) + (
        0 if args.no_beat else 1)
    allowed = postgres_max_connections(env["DATABASE_URL"])
    if processes > allowed:
        _fail(f"the stack could open {processes} PostgreSQL connections (pool of {pool} x {args.web} web processes, "
              f"and the worker's), but PostgreSQL allows {allowed}. Lower VEIL_DB_POOL_SIZE or --web.")
    _say(f"at most {processes} PostgreSQL connections ({args.web} web x {pool}, worker {WORKER_PROCESSES} x "
         f"{worker_pool}, beat 1; PostgreSQL allows {allowed})")

    if not args.no_migrate:
        subprocess.run([sys.executable, "manage.py", "migrate", "--noinput"], cwd=ROOT, env=env, check=True)

    sock = listening_socket(args.host, args.port)
    behind_proxy = env.get("VEIL_BEHIND_PROXY", "").strip().lower() in {"1", "true", "yes", "on"}
    children = [Child(f"web {n + 1}", web_argv(sock.fileno(), behind_proxy=behind_proxy), env,
                      pass_fds=(sock.fileno(),))
                for n in range(args.web)]
    if not args.no_worker:
        children.append(Child("worker", [sys.executable, "-m", "celery", "-A", "config", "worker", "-l", "info",
                                         "--concurrency", str(WORKER_PROCESSES)],
                              {**env, "VEIL_DB_POOL_SIZE": str(worker_pool)}))
    if not args.no_beat:
        schedule = ROOT / "var" / "celerybeat-schedule"
        schedule.parent.mkdir(parents=True, exist_ok=True)
        children.append(Child("beat", [sys.executable, "-m", "celery", "-A", "config", "beat", "-l", "info",
                                       "--schedule", str(schedule)], {**env, "VEIL_DB_POOL_SIZE": "1"}))

    stopping = False

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    for child in children:
        child.start()
    _say(f"serving on http://{args.host}:{args.port}/ with {args.web} web process(es); Ctrl-C stops")
    try:
        while not stopping:
            now = time.monotonic()
            for child in children:
                if child.process is None:
                    if now >= child.restart_at:
                        child.start()
                    continue
                code = child.process.poll()
                if code is None:
                    if now - child.started_at > 60:
                        child.backoff = 1.0  # it has been up a while: a later death restarts quickly again
                    continue
                _say(f"{child.name} exited with {code}; starting it again in {child.backoff:.0f} s")
                child.process = None
                child.restart_at = now + child.backoff
                child.backoff = min(child.backoff * 2, 30.0)
            time.sleep(0.5)
    finally:
        _say("stopping")
        for child in children:
            child.stop()
        deadline = time.monotonic() + 15
        for child in children:
            if child.process is None:
                continue
            try:
                child.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.process.kill()
        sock.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
