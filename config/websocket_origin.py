"""The websocket origin check: scheme, host and port, the rule Django's CSRF check applies to unsafe requests.

Channels' AllowedHostsOriginValidator compares only the Origin's host name with ALLOWED_HOSTS, so a page on any port
of an allowed host (http://127.0.0.1:9999) could open a console socket with a moderator's cookie. Here an Origin is
accepted when it is exactly the origin the browser reached Veil at (the socket's scheme, made http/https, and its Host
header, whose host must be in ALLOWED_HOSTS) or exactly one of CSRF_TRUSTED_ORIGINS. Everything else, a missing
Origin included, is refused before the consumer runs. Channels has no validator that compares the port, hence these
few lines.
"""

from __future__ import annotations

from typing import Any

from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.http.request import split_domain_port, validate_host

_DEFAULT_PORT = {"http": "80", "https": "443"}


def _origin(scheme: str, netloc: str) -> str | None:
    """`scheme://host[:port]` in one spelling (lower case, no default port), or None if it is not an origin."""
    scheme = scheme.lower()
    if scheme not in _DEFAULT_PORT:
        return None
    host, port = split_domain_port(netloc.lower())
    if not host:
        return None
    return f"{scheme}://{netloc.lower()}" if port and port != _DEFAULT_PORT[scheme] else f"{scheme}://{host}"


def _header(scope: dict[str, Any], name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return bytes(value).decode("latin1")
    return None


def origin_allowed(scope: dict[str, Any]) -> bool:
    origin = _header(scope, b"origin")
    if not origin or "://" not in origin:
        return False
    scheme, _, netloc = origin.partition("://")
    given = _origin(scheme, netloc)
    if given is None:
        return False
    trusted = {_origin(*o.split("://", 1)) for o in settings.CSRF_TRUSTED_ORIGINS if "://" in o}
    if given in trusted:
        return True
    host = _header(scope, b"host") or ""
    domain, _port = split_domain_port(host.lower())
    if not domain or not validate_host(domain, settings.ALLOWED_HOSTS):
        return False
    secure = scope.get("scheme") == "wss"
    proxy = getattr(settings, "SECURE_PROXY_SSL_HEADER", None)
    if proxy is not None:  # TLS ends at a trusted proxy, which says so (VEIL_BEHIND_PROXY)
        forwarded = _header(scope, proxy[0].removeprefix("HTTP_").replace("_", "-").lower().encode())
        secure = secure or (forwarded or "").split(",")[0].strip() == proxy[1]
    return given == _origin("https" if secure else "http", host)


class SameOriginValidator:
    """ASGI middleware for websockets: refuse the handshake unless origin_allowed(scope)."""

    def __init__(self, application: Any) -> None:
        self.application = application

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        if scope["type"] != "websocket":
            raise ValueError("SameOriginValidator guards websocket connections only")
        if origin_allowed(scope):
            return await self.application(scope, receive, send)
        return await WebsocketDenier()(scope, receive, send)
