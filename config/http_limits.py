"""Daphne's HTTP request handling, with the request body bounded while it streams in.

Daphne (Twisted) reads a whole request body before the application sees any of it, and Twisted's Request also
parses a `multipart/form-data` body into memory (at 12-15x its size) for an `args` dict that daphne never uses.
Django's upload limits therefore applied only after the damage: an anonymous 300 MiB POST to any URL took a
daphne process to 4.5 GB. Here:

- the form parsing is switched off (`_parsePOSTFormSubmission`); Django parses the body itself, from a file;
- a body whose declared Content-Length is over VEIL_MAX_REQUEST_BYTES is refused with 413 as soon as its headers
  have arrived, before one byte of it is read;
- a chunked body is counted while it arrives and the connection is cut, with the same 413, when it passes the
  limit. What has arrived by then sits in a temporary file (Twisted keeps bodies over 100 kB on disk), not in memory.

Daphne stays the one server (HTTP and websockets in one process, as before). `install()` puts this request class
into daphne; `config.asgi` calls it, so `daphne config.asgi:application` and `python -m config.server` both get
it. Kept to Twisted's public hooks (`gotLength`, `handleContentChunk`) and one attribute its Request takes from an
argument; the
test `tests/test_http_limits.py` runs a real daphne and measures its memory, so an upgrade that changes them fails
there.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from daphne import http_protocol

log = logging.getLogger("veil.http")


def max_request_bytes() -> int:
    from django.conf import settings

    return int(settings.VEIL_MAX_REQUEST_BYTES)


def _too_large_response(limit: int) -> bytes:
    body = json.dumps({
        "error": "too_large",
        "detail": f"The request body is larger than this server accepts ({limit / (1024 * 1024):.0f} MiB).",
    }).encode()
    head = (
        "HTTP/1.1 413 Request Entity Too Large\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    ).encode()
    return head + body


class LimitedWebRequest(http_protocol.WebRequest):
    """daphne's WebRequest with the body bounded; see the module docstring."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._veil_refused = False
        self._veil_received = 0
        self._veil_limit = max_request_bytes()
        super().__init__(*args, **kwargs)
        # Twisted parses urlencoded and multipart POST bodies into `args` unless this is off (its __init__ sets it
        # from an argument daphne never passes); daphne never reads args.
        self._parsePOSTFormSubmission = False

    def gotLength(self, length: int | None) -> None:
        if length is not None and length > self._veil_limit:
            self._veil_refuse(declared=length)
            return
        super().gotLength(length)

    def handleContentChunk(self, data: bytes) -> None:
        if self._veil_refused:
            return
        self._veil_received += len(data)
        if self._veil_received > self._veil_limit:
            self._veil_refuse(declared=None)
            return
        super().handleContentChunk(data)

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
        if self._veil_refused:
            return
        super().requestReceived(command, path, version)

    def _veil_refuse(self, *, declared: int | None) -> None:
        from io import BytesIO

        self._veil_refused = True
        # Twisted writes what arrives next into `content`: give it nothing that grows (it is never read).
        self.content = BytesIO()
        peer = self.channel.transport.getPeer() if self.channel and self.channel.transport else None
        log.warning("refused a request body over %d bytes (%s) from %s", self._veil_limit,
                    f"declared {declared}" if declared is not None else "chunked", getattr(peer, "host", "?"))
        transport = self.channel.transport if self.channel else None
        if transport is not None:
            transport.write(_too_large_response(self._veil_limit))
            # Stop reading at once; the response above is flushed before the socket closes.
            transport.pauseProducing()
            transport.loseConnection()


def install() -> None:
    """Make daphne's HTTP factory build LimitedWebRequest (it looks the class up in its module on every
    connection). Idempotent."""
    http_protocol.WebRequest = LimitedWebRequest
