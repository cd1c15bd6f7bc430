"""Shared by the websocket tests: a session cookie, the console and lead sockets, and running an async scenario."""

from __future__ import annotations

from typing import Any

from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django.test import Client

from config.asgi import application


def session_cookie(user) -> bytes:
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}".encode()


def communicator(cookie: bytes | None = None, origin: bytes = b"http://localhost:8000") -> WebsocketCommunicator:
    """Build inside the async scenario; make the cookie before it (logging in touches the database)."""
    headers = [(b"origin", origin), (b"host", b"localhost:8000")]
    if cookie is not None:
        headers.append((b"cookie", cookie))
    return WebsocketCommunicator(application, "/ws/console/", headers=headers)


def run(coro_fn: Any) -> Any:
    return async_to_sync(coro_fn)()


def lead_socket(cookie: bytes, team_id: int) -> WebsocketCommunicator:
    return WebsocketCommunicator(application, f"/ws/lead/{team_id}/",
                                 headers=[(b"origin", b"http://localhost:8000"), (b"host", b"localhost:8000"),
                                          (b"cookie", cookie)])
