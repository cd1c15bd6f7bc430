"""A real HTTP peer on 127.0.0.1 (random port), in a thread: a webhook receiver that records what it gets and can
be told to fail, and a file server for the allow-listed fetch tests. No mock of the HTTP layer anywhere.

    from tests.helpers.httppeer import Peer  # the fixture "peer" is registered in tests/conftest.py

    def test_x(peer: Peer) -> None:
        peer.fail_first = 2             # answer 500 to the first two POSTs
        peer.files["/a.png"] = png      # GET /a.png serves it
        ... peer.url + "/hook" ...
        assert len(peer.received) == 3
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Peer:
    url: str = ""
    received: list[Received] = field(default_factory=list)
    fail_first: int = 0
    fail_status: int = 500
    delay: float = 0.0
    redirect_to: str = ""
    files: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def posts(self) -> list[Received]:
        with self.lock:
            return [r for r in self.received if r.method == "POST"]


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def _record(self) -> tuple[Peer, int]:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        peer = self.server.peer
        with peer.lock:
            peer.received.append(Received(self.command, self.path, {k.lower(): v for k, v in self.headers.items()},
                                          body))
            count = len(peer.received)
        if peer.delay:
            time.sleep(peer.delay)
        return peer, count

    def _answer(self, status: int, body: bytes = b"", content_type: str = "text/plain", **headers: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        peer, count = self._record()
        if peer.redirect_to:
            self._answer(302, Location=peer.redirect_to)
        elif count <= peer.fail_first:
            self._answer(peer.fail_status, b"not now")
        else:
            self._answer(200, b"ok")

    def do_GET(self) -> None:
        peer, _ = self._record()
        if peer.redirect_to:
            self._answer(302, Location=peer.redirect_to)
            return
        found = peer.files.get(self.path)
        if found is None:
            self._answer(404, b"no such file")
        else:
            self._answer(200, found[0], found[1])

    def log_message(self, format: str, *args: object) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    peer: Peer


@pytest.fixture(name="peer")
def peer_fixture() -> Iterator[Peer]:
    """A running peer for one test (registered for every test module through tests/conftest.py)."""
    server = _Server(("127.0.0.1", 0), _Handler)
    server.peer = Peer(url=f"http://127.0.0.1:{server.server_address[1]}")
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server.peer
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
