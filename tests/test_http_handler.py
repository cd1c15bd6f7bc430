"""config.http_handler serves HTTP as Django's own ASGI handler does, in one worker thread per request.

Each request goes through both handlers (the one config.asgi ships and django.core.asgi's) and the answers are
compared: status, headers (cookies included) and body, for a page, an API call with a token and a JSON body, a
refusal, a missing page and a streamed media file. Then what the handler is for: a request's work runs in one of a
fixed set of threads (no thread per request), and the database connection it used is given back when it ends.
"""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

import pytest
from asgiref import testing
from django.core.handlers.asgi import ASGIHandler
from django.db import connection
from rest_framework.authtoken.models import Token

from config.http_handler import OneHopASGIHandler
from tests.helpers.factories import make_queue

pytestmark = [pytest.mark.django_db(transaction=True),
              pytest.mark.filterwarnings("ignore:StreamingHttpResponse must consume synchronous iterators")]

# asgiref's test communicator has no type annotations.
Communicator: Any = testing.ApplicationCommunicator
# Headers that differ between two answers by design (a fresh token, the moment).
VARYING = {b"date", b"set-cookie", b"x-request-id"}


def _scope(method: str, path: str, headers: list[tuple[bytes, bytes]], query: bytes = b"") -> dict[str, Any]:
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
            "path": path, "raw_path": path.encode(), "query_string": query, "root_path": "",
            "headers": [(b"host", b"testserver"), *headers], "client": ("127.0.0.1", 50000),
            "server": ("testserver", 80)}


async def _ask(app: Any, scope: dict[str, Any], body: bytes = b"") -> tuple[int, dict[bytes, bytes], bytes, list[Any]]:
    communicator = Communicator(app, scope)
    await communicator.send_input({"type": "http.request", "body": body, "more_body": False})
    start = await communicator.receive_output(timeout=30)
    assert start["type"] == "http.response.start"
    content, more = b"", True
    while more:
        message = await communicator.receive_output(timeout=30)
        content += message.get("body", b"")
        more = message.get("more_body", False)
    await communicator.wait(timeout=5)
    return start["status"], dict(start["headers"]), content, start["headers"]


def _both(scope: dict[str, Any], body: bytes = b"") -> tuple[Any, Any]:
    ours = asyncio.run(_ask(OneHopASGIHandler(), scope, body))
    theirs = asyncio.run(_ask(ASGIHandler(), scope, body))
    return ours, theirs


def _alike(ours: Any, theirs: Any) -> None:
    assert ours[0] == theirs[0]
    assert {k: v for k, v in ours[1].items() if k.lower() not in VARYING} == {
        k: v for k, v in theirs[1].items() if k.lower() not in VARYING}
    assert [k for k, _ in ours[3]] == [k for k, _ in theirs[3]]  # the same headers, cookies included, in order


def test_pages_and_refusals_are_answered_as_django_answers_them(moderator):
    for method, path in (("GET", "/healthz"), ("GET", "/accounts/login/"), ("GET", "/no/such/page"),
                         ("GET", "/api/v1/queues/"), ("POST", "/api/v1/queues/")):
        ours, theirs = _both(_scope(method, path, []))
        _alike(ours, theirs)
        if path != "/accounts/login/":  # the login page carries a fresh CSRF token
            assert ours[2] == theirs[2], path


def test_an_api_call_with_a_token_and_a_json_body(moderator):
    queue = make_queue()
    token = Token.objects.create(user=moderator)
    auth = [(b"authorization", f"Token {token.key}".encode()), (b"content-type", b"application/json")]
    body = json.dumps({"action": "approve", "reason": "x"}).encode()
    ours, theirs = _both(_scope("POST", "/api/v1/items/999999/decision/", [*auth, (b"content-length",
                                                                                   str(len(body)).encode())]), body)
    _alike(ours, theirs)
    assert ours[2] == theirs[2] and ours[0] in (404, 409)
    ours, theirs = _both(_scope("GET", f"/api/v1/queues/{queue.slug}/claim/", auth))
    _alike(ours, theirs)
    assert json.loads(ours[2]) == json.loads(theirs[2])


def test_a_streamed_file_arrives_whole():
    """Static files are streamed (whitenoise's FileResponse): sent from the worker thread chunk by chunk, and the
    same bytes as Django's handler sends, the file's own."""
    from django.conf import settings

    ours, theirs = _both(_scope("GET", "/static/veil/console.js", []))
    _alike(ours, theirs)
    assert ours[0] == 200
    assert ours[2] == theirs[2] == (settings.BASE_DIR / "static" / "veil" / "console.js").read_bytes()


def test_requests_run_in_a_fixed_set_of_threads_and_give_their_connection_back(moderator):
    """Django's handler starts a thread for every request; this one reuses its pool's. The request's database
    connection is closed (given back to the pool) in the thread that used it, when the request ends."""
    handler = OneHopASGIHandler()
    seen: set[str] = set()
    still_open: list[bool] = []

    from django.core.signals import request_finished

    def finished(**kwargs: Any) -> None:
        seen.add(threading.current_thread().name)

    request_finished.connect(finished)
    try:
        async def many() -> None:
            for _ in range(40):
                status, *_ = await _ask(handler, _scope("GET", "/api/v1/queues/", []))
                assert status in (200, 401, 403)

        before = threading.active_count()
        asyncio.run(many())
        threads_after = threading.active_count()
    finally:
        request_finished.disconnect(finished)
    assert seen and all(name.startswith("veil-http") for name in seen)
    assert threads_after - before <= len(seen) <= handler._threads._max_workers

    def connection_left_open() -> None:
        still_open.append(connection.connection is not None and connection.in_atomic_block)

    handler._threads.submit(connection_left_open).result()
    assert still_open == [False]
