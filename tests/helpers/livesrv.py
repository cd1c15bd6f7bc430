"""A real daphne process serving the test database, and Debian's Chromium driven by Playwright, for browser tests.

Usage in a test module (the fixtures live_daphne and live_daphne_process are registered in tests/conftest.py):

    from tests.helpers.livesrv import chromium_browser

    def test_something(live_daphne: str) -> None:
        ...  # create data with the ORM
        with chromium_browser() as browser:
            page = browser.new_page()
            page.goto(live_daphne + "/login/")
        ...  # check the database

`live_daphne` needs a transactional test (`@pytest.mark.django_db(transaction=True)`): whatever the test writes is
committed, so the daphne subprocess sees it through its own connection to the same test database.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]  # the repository: tests/helpers/livesrv.py
DAPHNE = ROOT / ".venv" / "bin" / "daphne"
CHROMIUM = os.environ.get("VEIL_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
START_TIMEOUT = 20.0


REDIS_SERVER = "/usr/bin/redis-server"


def wait_for(predicate: Callable[[], bool], timeout: float, step: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return False


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def shared_database_url() -> str:
    """A DATABASE_URL (as config.env.database_from_url reads it) for the database this test process is using."""
    conf = connection.settings_dict
    if connection.vendor == "sqlite":
        name = str(conf["NAME"])
        if name == ":memory:" or name.startswith("file:") or "mode=memory" in name:
            pytest.fail("browser tests need a file-backed SQLite test database, not an in-memory one", pytrace=False)
        return "sqlite:///" + quote(str(Path(name).resolve()))  # absolute path: sqlite:////tmp/x.sqlite3
    if connection.vendor == "postgresql":
        auth = quote(str(conf.get("USER") or ""), safe="")
        if conf.get("PASSWORD"):
            auth += ":" + quote(str(conf["PASSWORD"]), safe="")
        host = str(conf.get("HOST") or "")
        port = f":{conf['PORT']}" if conf.get("PORT") else ""
        options = {key: str(value) for key, value in (conf.get("OPTIONS") or {}).items() if isinstance(value, str)}
        # Spaces as %20, not "+": libpq reads the URL too (the stack's database check), and decodes only %XX.
        query = f"?{urlencode(options, quote_via=quote)}" if options else ""
        return f"postgres://{auth}@{host}{port}/{quote(str(conf['NAME']), safe='')}{query}"
    pytest.fail(f"browser tests do not know how to share a {connection.vendor} test database", pytrace=False)


def _server_env() -> dict[str, str]:
    env = dict(os.environ)  # keeps REDIS_URL (or its absence) exactly as the test process has it
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DATABASE_URL": shared_database_url(),
            "VEIL_MEDIA_ROOT": str(Path(settings.MEDIA_ROOT).resolve()),
            "VEIL_ALLOWED_HOSTS": "127.0.0.1,localhost",
            "VEIL_SECRET_KEY": str(settings.SECRET_KEY),
            "VEIL_DATA_DIR": str(settings.DATA_DIR),
            "PYTHONUNBUFFERED": "1",
        }
    )
    # The server is a separate process, so it never reaches the test database's "TEST" name: DATABASE_URL above
    # already names the test database itself.
    env.pop("VEIL_TEST_SQLITE", None)
    return env


def stop_process(process: subprocess.Popen[Any], *, grace: float) -> None:
    """SIGTERM, then SIGKILL if it has not exited after `grace` seconds (servers and workers the tests start)."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


def _answering(base_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{base_url}/healthz", timeout=1) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


class LiveServer(str):
    """The base URL of a live daphne (a plain str to most tests), with the path of what it printed: its access log
    (daphne's NCSA lines at its default verbosity) and errors."""

    log_path: Path


@pytest.fixture
def live_daphne(transactional_db: None, request: pytest.FixtureRequest) -> Iterator[str]:
    """Start daphne on a free port against this test's database and media folder; yield its base URL (a LiveServer,
    whose log_path is daphne's output)."""
    with daphne_process(request) as (base_url, _process):
        yield base_url


@pytest.fixture
def live_daphne_process(transactional_db: None,
                        request: pytest.FixtureRequest) -> Iterator[tuple[str, subprocess.Popen[Any]]]:
    """Like live_daphne, also yielding the process (to read its memory from /proc)."""
    with daphne_process(request) as started:
        yield started


@contextmanager
def daphne_process(request: pytest.FixtureRequest,
                   extra_env: dict[str, str] | None = None) -> Iterator[tuple[str, subprocess.Popen[Any]]]:
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    log_fd, log_name = tempfile.mkstemp(prefix="veil-daphne-", suffix=".log")
    log_path = Path(log_name)
    failed_before = request.session.testsfailed
    with os.fdopen(log_fd, "w") as log:
        process = subprocess.Popen(
            [str(DAPHNE), "-b", "127.0.0.1", "-p", str(port), "config.asgi:application"],
            cwd=ROOT,
            env={**_server_env(), **(extra_env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not _answering(base_url):
            if process.poll() is not None:
                pytest.fail(f"daphne exited with {process.returncode} before answering:\n{_read(log_path)}",
                            pytrace=False)
            if time.monotonic() > deadline:
                pytest.fail(f"daphne did not answer on {base_url} within {START_TIMEOUT:.0f} s:\n{_read(log_path)}",
                            pytrace=False)
            time.sleep(0.1)
        server = LiveServer(base_url)
        server.log_path = log_path
        yield server, process
    finally:
        stop_process(process, grace=5)
        if request.session.testsfailed > failed_before:
            # Past pytest's capture on purpose: the call report is already written, and this is what explains it.
            stream = sys.__stderr__ or sys.stderr
            stream.write(f"\n----- daphne output for {request.node.nodeid} -----\n{_read(log_path)}\n")
        log_path.unlink(missing_ok=True)


@contextmanager
def chromium_browser() -> Iterator[Any]:
    """Debian's Chromium through Playwright's sync API (never `playwright install`).

    A context manager rather than a fixture on purpose: Playwright's sync API runs its driver on an asyncio loop in
    this thread, and while that loop runs Django refuses ORM calls ("cannot call this from an async context") and
    realtime pushes fail. So a test writes its data first, drives the browser inside the `with`, and checks the
    database after it.
    """
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


class OwnRedis:
    """A redis-server of this test's own on a free loopback port, which it can stop and start again."""

    def __init__(self) -> None:
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def start(self) -> None:
        self.process = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        assert wait_for(self._answers, timeout=10), "redis-server did not start"

    def pause(self, ms: int) -> None:
        """Take connections but answer nothing for `ms` milliseconds (CLIENT PAUSE ALL), as a stalled Redis does."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=2) as sock:
            sock.sendall(f"CLIENT PAUSE {ms} ALL\r\n".encode())
            assert sock.recv(16).startswith(b"+OK")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
            self.process = None
        assert wait_for(lambda: not self._answers(), timeout=5)


class StackRun:
    """A running `python -m config.stack` (see real_stack)."""

    def __init__(self, process: subprocess.Popen[Any], log_path: Path, base_url: str) -> None:
        self.process = process
        self.log_path = log_path
        self.base_url = base_url

    def log(self) -> str:
        return _read(self.log_path)


@contextmanager
def real_stack(*, port: int, web: int = 2, role: str | None = None, pool: int = 4,
               extra_env: dict[str, str] | None = None) -> Iterator[StackRun]:
    """The deployed stack against this test's PostgreSQL database, as `make stack` starts it: `web` daphne processes
    on one socket, a Celery worker and beat, on a redis-server of its own (so no other Veil's worker takes its
    tasks). `role` connects as another PostgreSQL role (e.g. one with a connection limit)."""
    database_url = shared_database_url()
    if role:
        database_url = "postgres://" + role + "@" + database_url.split("@", 1)[1]
    redis = OwnRedis()
    redis.start()
    log_fd, log_name = tempfile.mkstemp(prefix="veil-stack-", suffix=".log")
    log_path = Path(log_name)
    env = {**_server_env(), "DATABASE_URL": database_url, "REDIS_URL": redis.url, "VEIL_DB_POOL_SIZE": str(pool),
           "VEIL_CHANNEL_PREFIX": f"veil-stack-{port}", **(extra_env or {})}
    with os.fdopen(log_fd, "w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "config.stack", "--web", str(web), "--port", str(port), "--no-migrate"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{port}"
    try:
        if not wait_for(lambda: _answering(base_url) or process.poll() is not None, timeout=START_TIMEOUT * 2):
            pytest.fail(f"the stack did not answer on {base_url}:\n{_read(log_path)}", pytrace=False)
        if process.poll() is not None:
            pytest.fail(f"the stack exited with {process.returncode}:\n{_read(log_path)}", pytrace=False)
        yield StackRun(process, log_path, base_url)
    finally:
        stop_process(process, grace=20)
        redis.stop()
        log_path.unlink(missing_ok=True)
