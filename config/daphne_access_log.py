"""Keep query-string values out of daphne's access log.

daphne writes every request's path and query to its access log (NCSA lines on stdout at its default verbosity).
Query strings can carry secrets Veil does not control: the `url=` of `GET /h/hash` and `/m/lookup` may be a signed
link, and a client may put a token where it should not. Veil itself puts none there (the reveal token travels in a
cookie), and this keeps the log to parameter names: `GET /h/hash?url=-`. Applied when the ASGI application is imported
by the serving process (daphne builds its access logger after importing the application); a no-op elsewhere.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl


def redacted(path: str) -> str:
    """`/h/hash?url=https://...&x=1` -> `/h/hash?url=-&x=-`: the names stay, every value goes."""
    base, sep, query = path.partition("?")
    if not sep:
        return path
    names = [name for name, _value in parse_qsl(query, keep_blank_values=True)]
    return f"{base}?{'&'.join(f'{name[:40]}=-' for name in names[:20])}" if names else f"{base}?-"


def redact_access_log_queries() -> bool:
    try:
        from daphne.access import AccessLogGenerator
    except ImportError:
        return False
    if getattr(AccessLogGenerator, "_veil_redacted", False):
        return True
    original = AccessLogGenerator.__call__

    def __call__(self: Any, protocol: Any, action: Any, details: dict[str, Any]) -> None:
        if isinstance(details.get("path"), str):
            details = {**details, "path": redacted(details["path"])}
        original(self, protocol, action, details)

    AccessLogGenerator.__call__ = __call__
    AccessLogGenerator._veil_redacted = True
    return True
