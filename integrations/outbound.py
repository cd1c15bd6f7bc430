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
from urllib.parse import quote, unquote, urlsplit

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


# IPv6 ranges that carry an IPv4 address inside (RFC 6052 NAT64, RFC 3056 6to4, RFC 4291 mapped and the deprecated
# "compatible" form): a connection there reaches that IPv4 address, so it is judged by it.
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")


def embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for, if any (mapped, compatible, NAT64, 6to4, Teredo client)."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if any(ip in network for network in _NAT64) or (ip in _IPV4_COMPATIBLE and int(ip) > 1):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def _public(address: str) -> bool:
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and (inner := embedded_ipv4(ip)) is not None:
        if ip.teredo is not None:
            return False  # a tunnel through whichever relay answers: never a webhook's or an image host's address
        ip = inner
    return ip.is_global and not ip.is_multicast


# RFC 3986: what may stand unescaped in a path segment and in a query.
_PCHAR_SAFE = "!$&'()*+,;=:@-._~"
_QUERY_SAFE = _PCHAR_SAFE + "/?%"


def canonical_url(url: str) -> str:
    """The URL as it will be sent, in one spelling: scheme and host lower-case (an international host name in its
    ASCII "xn--" form), no default port, each path segment percent-decoded, dot segments resolved and the segment
    re-encoded, the query percent-encoded, no fragment. Prefix checks compare this form, and it is what is fetched,
    so `%2e%2e` cannot climb out of an allowed prefix and a non-ASCII URL cannot fail deep inside http.client.
    Raises OutboundRefused("bad_url") for what has no one meaning (an encoded "/" or "\\" inside a segment, bytes
    that are not UTF-8, ".." above the root)."""
    if any(ch.isspace() or ord(ch) < 32 or ch == "\\" for ch in url):
        raise OutboundRefused("bad_url", "The URL contains spaces, control characters or backslashes.")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise OutboundRefused("bad_url", "Only http and https URLs are allowed.")
    if not parts.hostname or parts.username is not None or parts.password is not None:
        raise OutboundRefused("bad_url", "The URL needs a host name and may not carry a user name or password.")
    try:
        port = parts.port
        host = parts.hostname if ":" in parts.hostname else parts.hostname.encode("idna").decode("ascii")
    except (ValueError, UnicodeError):
        raise OutboundRefused("bad_url", "The URL has an invalid host name or port.") from None
    netloc = f"[{host}]" if ":" in host else host
    if port is not None and port != (443 if scheme == "https" else 80):
        netloc += f":{port}"
    segments: list[str] = []
    raw_segments = parts.path.split("/")[1:] if parts.path else [""]
    for index, raw in enumerate(raw_segments):
        last = index == len(raw_segments) - 1
        try:
            segment = unquote(raw, errors="strict")
        except UnicodeDecodeError:
            raise OutboundRefused("bad_url", "The URL's path has percent-escapes that are not UTF-8.") from None
        if "/" in segment or "\\" in segment:
            raise OutboundRefused("bad_url", "The URL's path has an encoded slash or backslash.")
        if segment == "..":
            if not segments:
                raise OutboundRefused("bad_url", "The URL's path climbs above its root.")
            segments.pop()
            if last:
                segments.append("")
        elif segment == ".":
            if last:
                segments.append("")
        else:
            segments.append(quote(segment, safe=_PCHAR_SAFE))
    path = "/" + "/".join(segments)
    query = f"?{quote(parts.query, safe=_QUERY_SAFE)}" if parts.query else ""
    return f"{scheme}://{netloc}{path}{query}"


def destination_check(url: str) -> Target:
    """Parse and resolve a URL; raise OutboundRefused for anything Veil must not connect to."""
    parts = urlsplit(canonical_url(url))
    assert parts.hostname is not None  # canonical_url insists on one
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
        # Not type-checked below: http.client.HTTPSConnection's _context is private, not in typeshed
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
    # Both sides in one spelling (canonical_url), so no escape, dot segment or case can step outside a prefix. The
    # prefixes end in "/", so a match ends on a segment boundary.
    try:
        url = canonical_url(url)
    except OutboundRefused:
        raise OutboundRefused("url_not_allowed", "That URL is not under a prefix this server may fetch from.") from None
    if not any(url.startswith(canonical_url(prefix)) for prefix in prefixes):
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
