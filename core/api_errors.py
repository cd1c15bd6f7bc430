"""One error shape for the whole API: {"error": "<code>", "detail": "<human sentence>"}."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from django.core.exceptions import PermissionDenied
from django.db import InterfaceError, OperationalError
from django.http import Http404, HttpRequest, JsonResponse
from django.urls import Resolver404, resolve
from django.utils import timezone
from django.utils.translation import gettext, gettext_lazy
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler


class ApiError(exceptions.APIException):
    """Raise from API code with a stable machine code and a sentence a person can act on.

    `retry_at`: when trying again can work (a break's end, a cool-down's end). The answer then carries
    `Retry-After` (seconds) and `retry_at` (ISO 8601 with its offset) beside the sentence."""

    def __init__(self, code: str, detail: str, status_code: int = status.HTTP_400_BAD_REQUEST, *,
                 retry_at: datetime | None = None) -> None:
        super().__init__(detail=detail, code=code)
        self.status_code = status_code
        self.error_code = code
        self.retry_at = retry_at

    @classmethod
    def from_refusal(cls, refusal: Any) -> ApiError:
        """From a service's refusal (core.errors.ReviewError: code, detail, status, retry_at)."""
        return cls(refusal.code, refusal.detail, refusal.status, retry_at=getattr(refusal, "retry_at", None))


def retry_after_seconds(retry_at: datetime) -> str:
    """Retry-After in whole seconds from now, at least 1."""
    return str(max(1, math.ceil((retry_at - timezone.now()).total_seconds())))


_CODES = {
    exceptions.NotAuthenticated: "not_authenticated",
    exceptions.AuthenticationFailed: "authentication_failed",
    exceptions.PermissionDenied: "forbidden",
    exceptions.NotFound: "not_found",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.NotAcceptable: "not_acceptable",
    exceptions.UnsupportedMediaType: "unsupported_media_type",
    exceptions.Throttled: "rate_limited",
    exceptions.ParseError: "malformed_request",
    exceptions.ValidationError: "invalid",
}


def _sentence(detail: Any) -> str:
    if isinstance(detail, dict):
        parts = []
        for field, value in detail.items():
            text = _sentence(value)
            parts.append(text if field == "non_field_errors" else f"{field}: {text}")
        return " ".join(parts)
    if isinstance(detail, list):
        return " ".join(_sentence(v) for v in detail)
    return str(detail)


DATABASE_UNAVAILABLE = gettext_lazy("The database could not be reached, so this request did not complete. Try again "
                                    "in a moment.")


# Exceptions that mean "busy for a moment, not broken" (intake adds its picture decoder's DecodeBusy at start-up):
# answered 503 with Retry-After.
BUSY: list[type[Exception]] = []


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, tuple(BUSY)):
        return Response({"error": "busy", "detail": str(exc)}, status=status.HTTP_503_SERVICE_UNAVAILABLE,
                        headers={"Retry-After": "30"})
    if isinstance(exc, OperationalError | InterfaceError):
        # A lost or refused connection (or a deadlock, a timeout): the service's transaction was rolled back, so
        # the client may simply retry.
        return Response({"error": "database_unavailable", "detail": DATABASE_UNAVAILABLE},
                        status=status.HTTP_503_SERVICE_UNAVAILABLE, headers={"Retry-After": "5"})
    if isinstance(exc, Http404):
        exc = exceptions.NotFound(gettext("Not found."))
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied(str(exc) or None)
    response = drf_exception_handler(exc, context)
    if response is None or not isinstance(exc, exceptions.APIException):
        return response
    if isinstance(exc, ApiError):
        code = exc.error_code
    else:
        code = next((c for cls, c in _CODES.items() if isinstance(exc, cls)), "error")
    body: dict[str, Any] = {"error": code, "detail": _sentence(exc.detail)}
    if isinstance(exc, exceptions.ValidationError) and isinstance(exc.detail, dict):
        body["fields"] = exc.detail
    if isinstance(exc, ApiError) and exc.retry_at is not None:
        body["retry_at"] = exc.retry_at.isoformat()
        response["Retry-After"] = retry_after_seconds(exc.retry_at)
    response.data = body
    return response


@csrf_exempt  # it changes nothing, and a POST to a wrong path deserves the same JSON 404 as a GET
def api_not_found(request: HttpRequest, unmatched: str = "") -> JsonResponse:
    """Any /api/v1/ path no endpoint answers: the API's 404 shape instead of the HTML page, whatever the method."""
    detail = gettext("There is no API endpoint at %(path)s; the endpoints are listed at /api/schema/.") % {
        "path": request.path[:200]}
    if not request.path.endswith("/"):
        try:
            resolve(request.path + "/")
            detail = gettext("There is no API endpoint at %(path)s: did you mean %(path)s/ ?") % {
                "path": request.path[:200]}
        except Resolver404:
            pass
    return JsonResponse({"error": "not_found", "detail": detail}, status=404)
