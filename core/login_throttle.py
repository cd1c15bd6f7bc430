"""Login throttling is django-axes' (settings: the "Login throttling" block); this module holds Veil's two pieces.

- `client_address`: the address axes counts failures for. Behind a TLS-terminating proxy (VEIL_BEHIND_PROXY) every
  request comes from the proxy, and counting by that address would lock everybody out at once, so the address is the
  one the proxy appended to X-Forwarded-For (the last entry; entries before it are whatever the client sent).
- `lockout_response`: a page (429) that says what happened and for how long, in Veil's words and layout.
- `record_lockout`: every lockout goes to Veil's audit log (who, from where), beside axes' own attempt records.
"""

from __future__ import annotations

import ipaddress
import logging
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from core.audit import audit_record
from core.models import AuditEvent

log = logging.getLogger(__name__)


def _address(value: str) -> str | None:
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        return None


def client_address(request: HttpRequest) -> str | None:
    if getattr(settings, "SECURE_PROXY_SSL_HEADER", None):
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        if forwarded and (last := _address(forwarded.split(",")[-1])) is not None:
            return last
    return _address(str(request.META.get("REMOTE_ADDR") or ""))


def lockout_response(request: HttpRequest, original_response: HttpResponse | None = None,
                     credentials: dict[str, Any] | None = None) -> HttpResponse:
    minutes = max(1, int(settings.AXES_COOLOFF_TIME.total_seconds() // 60))
    context = {"failure_limit": settings.AXES_FAILURE_LIMIT, "cooloff_minutes": minutes}
    response = render(request, "registration/locked_out.html", context, status=429)
    response["Retry-After"] = str(minutes * 60)
    return response


def record_lockout(sender: Any, *, request: HttpRequest | None = None, username: str | None = None,
                   ip_address: str | None = None, **kwargs: Any) -> None:
    """axes' user_locked_out signal: an audit event naming the account tried and the address it came from."""
    from django.contrib.auth.models import User

    name = (username or "")[:150]
    account = User.objects.filter(username=name).first() if name else None
    audit_record(action=AuditEvent.Action.LOGIN_LOCKED_OUT, actor=account, username=name, address=ip_address or "",
                 path=request.path[:200] if request is not None else "",
                 cooloff_minutes=int(settings.AXES_COOLOFF_TIME.total_seconds() // 60))
    log.warning("sign-in locked out after %s failures: account %r, address %s", settings.AXES_FAILURE_LIMIT, name,
                ip_address)
