"""Veil's only outbound HTTP: decision webhooks and, when allow-listed, image fetches.

Rules, the same for both: http/https only; the host is resolved once and the connection goes to exactly the address
that was checked (no second lookup an attacker's DNS could answer differently); loopback, private, link-local,
shared, reserved and multicast addresses are refused unless VEIL_OUTBOUND_ALLOW_PRIVATE is on; redirects are never
followed (http.client does not follow them); short timeouts; responses are read only up to a limit.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings


class OutboundRefused(Exception):
    """A request Veil will not make, or whose answer it will not use. `permanent`: retrying cannot help."""

    def __init__(self, code: str, detail: str, *, permanent: bool = True) -> None:
        super().__init__(code, detail)
        self.code = code
        self.detail = detail
        self.permanent = permanent

    def __str__(self) -> str:
        return f"{self.code}: {self.detail}"


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int
    address: str
    path: str  # path and query, as sent


@dataclass(frozen=True)
class Answer:
    status: int
    headers: Mapping[str, str]
    body: bytes
    truncated: bool


def _public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def destination_check(url: str) -> Target:
    """Parse and resolve a URL; raise OutboundRefused for anything Veil must not connect to."""
    if any(ch.isspace() or ord(ch) < 32 for ch in url):
        raise OutboundRefused("bad_url", "The URL contains spaces or control characters.")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise OutboundRefused("bad_url", "Only http and https URLs are allowed.")
    if not parts.hostname or parts.username is not None or parts.password is not None:
        raise OutboundRefused("bad_url", "The URL needs a host name and may not carry a user name or password.")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise OutboundRefused("bad_url", "The URL has an invalid port.") from None
    try:
        infos = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise OutboundRefused("unresolvable", f"The host {parts.hostname!r} could not be resolved ({exc}).",
                              permanent=False) from None
    addresses = [str(info[4][0]) for info in infos]
    if not addresses:
        raise OutboundRefused("unresolvable", f"The host {parts.hostname!r} has no address.", permanent=False)
    if not settings.VEIL_OUTBOUND_ALLOW_PRIVATE and not all(_public(a) for a in addresses):
        raise OutboundRefused(
            "private_address",
            f"{parts.hostname} resolves to a loopback, private or otherwise non-public address; Veil does not "
            "connect there unless VEIL_OUTBOUND_ALLOW_PRIVATE is on.",
        )
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Target(parts.scheme, parts.hostname, port, addresses[0], path)


class _PinnedHTTP(http.client.HTTPConnection):
    def __init__(self, target: Target, timeout: float) -> None:
        super().__init__(target.host, target.port, timeout=timeout)
        self._address = target.address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPS(http.client.HTTPSConnection):
    def __init__(self, target: Target, timeout: float) -> None:
        super().__init__(target.host, target.port, timeout=timeout, context=ssl.create_default_context())
        self._address = target.address

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        # The certificate is checked against the host name, while the socket goes to the checked address.
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)  # type: ignore[attr-defined]


def request(method: str, url: str, *, headers: Mapping[str, str], body: bytes | None = None,
            max_bytes: int = 64 * 1024) -> Answer:
    """One HTTP exchange. Raises OutboundRefused (refused destination) or OSError/HTTPException (network)."""
    target = destination_check(url)
    timeout = float(settings.VEIL_OUTBOUND_TIMEOUT_SECONDS)
    connection: http.client.HTTPConnection = (
        _PinnedHTTPS(target, timeout) if target.scheme == "https" else _PinnedHTTP(target, timeout)
    )
    try:
        connection.request(method, target.path, body=body, headers=dict(headers))
        response = connection.getresponse()
        data = response.read(max_bytes + 1)
        return Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, data[:max_bytes],
                      len(data) > max_bytes)
    finally:
        connection.close()


def fetch_image(url: str) -> bytes:
    """Download an image from an allow-listed prefix (VEIL_FETCH_URL_PREFIXES), at most VEIL_MAX_UPLOAD_BYTES.

    The bytes still go through the upload checks of the caller; nothing here decides they are an image.
    """
    prefixes: list[str] = list(settings.VEIL_FETCH_URL_PREFIXES)
    if not prefixes:
        raise OutboundRefused("url_fetch_disabled", "Fetching images by URL is off on this server "
                              "(VEIL_FETCH_URL_PREFIXES is empty): send the file itself.")
    parts = urlsplit(url)
    if not any(url.startswith(prefix) for prefix in prefixes) or "\\" in url or any(
        segment in ("..", ".") for segment in parts.path.split("/")
    ):
        raise OutboundRefused("url_not_allowed", "That URL is not under a prefix this server may fetch from.")
    limit = int(settings.VEIL_MAX_UPLOAD_BYTES)
    try:
        answer = request("GET", url, headers={"User-Agent": "Veil/1", "Accept": "image/*"}, max_bytes=limit)
    except (OSError, http.client.HTTPException) as exc:
        raise OutboundRefused("fetch_failed", f"The image could not be fetched ({exc}).", permanent=False) from None
    if answer.status != 200:
        raise OutboundRefused("fetch_failed", f"Fetching the image answered HTTP {answer.status} (redirects are "
                              "not followed).")
    if answer.truncated:
        raise OutboundRefused("too_large", f"The fetched file is larger than the {limit:,}-byte limit.")
    return answer.body
