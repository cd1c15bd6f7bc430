"""Issue 22, point 6: a websocket's Origin must match scheme, host AND port (or be one of CSRF_TRUSTED_ORIGINS)."""

from __future__ import annotations

from typing import Any

import pytest
from channels.testing import WebsocketCommunicator

from config.asgi import application
from config.websocket_origin import origin_allowed
from tests.helpers.realtime import run, session_cookie

HOST = b"localhost:8000"


def scope(origin: str | None, host: str = "localhost:8000", scheme: str = "ws",
          extra: list[tuple[bytes, bytes]] | None = None) -> dict[str, Any]:
    headers = [(b"host", host.encode())] + ([(b"origin", origin.encode())] if origin is not None else [])
    return {"type": "websocket", "scheme": scheme, "headers": headers + (extra or [])}


@pytest.mark.parametrize(("origin", "allowed"), [
    ("http://localhost:8000", True),
    ("HTTP://LocalHost:8000", True),
    ("http://localhost:9999", False),  # the report's case: same host, another port
    ("http://localhost", False),
    ("https://localhost:8000", False),  # another scheme
    ("http://127.0.0.1:8000", False),  # another host, though allowed: not where the browser reached Veil
    ("https://evil.example", False),
    ("null", False),
    ("", False),
    (None, False),
])
def test_origin_must_match_scheme_host_and_port(origin: str | None, allowed: bool) -> None:
    assert origin_allowed(scope(origin)) is allowed


def test_default_ports_and_tls(settings: Any) -> None:
    assert origin_allowed(scope("https://localhost", host="localhost:443", scheme="wss"))
    assert origin_allowed(scope("https://localhost:443", host="localhost", scheme="wss"))
    assert not origin_allowed(scope("http://localhost", host="localhost", scheme="wss"))
    # A host outside ALLOWED_HOSTS is refused even when Origin and Host agree.
    assert not origin_allowed(scope("http://evil.example:8000", host="evil.example:8000"))
    # Behind a TLS-terminating proxy that says so (VEIL_BEHIND_PROXY), the browser's origin is https.
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    behind = [(b"x-forwarded-proto", b"https")]
    assert origin_allowed(scope("https://localhost", host="localhost", extra=behind))


def test_csrf_trusted_origins_are_matched_exactly(settings: Any) -> None:
    settings.CSRF_TRUSTED_ORIGINS = ["https://veil.example.org"]
    assert origin_allowed(scope("https://veil.example.org", host="internal:8000"))
    assert origin_allowed(scope("https://veil.example.org:443", host="internal:8000"))
    assert not origin_allowed(scope("https://veil.example.org:8443", host="internal:8000"))
    assert not origin_allowed(scope("http://veil.example.org", host="internal:8000"))


@pytest.mark.django_db(transaction=True)
def test_a_moderators_cookie_from_another_port_cannot_open_the_console_socket(moderator) -> None:
    cookie = session_cookie(moderator)

    async def attempt(origin: bytes) -> bool:
        comm = WebsocketCommunicator(application, "/ws/console/",
                                     headers=[(b"origin", origin), (b"host", HOST), (b"cookie", cookie)])
        connected, _ = await comm.connect()
        await comm.disconnect()
        return bool(connected)

    async def other_port() -> bool:
        return await attempt(b"http://localhost:9999")

    async def same_origin() -> bool:
        return await attempt(b"http://localhost:8000")

    assert run(other_port) is False
    assert run(same_origin) is True
