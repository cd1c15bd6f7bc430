"""A real daphne process serving the test database, and Debian's Chromium driven by Playwright, for browser tests.

Usage in a test module:

    from tests.livesrv import chromium_browser, live_daphne  # noqa: F401  (live_daphne is a fixture)

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
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parent.parent
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
        query = f"?{urlencode(options)}" if options else ""
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
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    log_fd, log_name = tempfile.mkstemp(prefix="veil-daphne-", suffix=".log")
    log_path = Path(log_name)
    failed_before = request.session.testsfailed
    with os.fdopen(log_fd, "w") as log:
        process = subprocess.Popen(
            [str(DAPHNE), "-b", "127.0.0.1", "-p", str(port), "config.asgi:application"],
            cwd=ROOT,
            env=_server_env(),
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
        yield server
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
