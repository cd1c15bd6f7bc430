from collections.abc import Callable

from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.loader import render_to_string

from core.api_errors import DATABASE_UNAVAILABLE
from intake.media import DecodeBusy

# Nothing is loaded from another origin: no CDN, no third-party script can see what a moderator sees.
_POLICY = (
    "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
    "connect-src 'self' ws: wss:; frame-ancestors 'none'; base-uri 'self'; form-action 'self'; object-src 'none'"
)
# The vendored Swagger UI page boots with an inline script.
_SCHEMA_UI_POLICY = _POLICY.replace("script-src 'self'", "script-src 'self' 'unsafe-inline'").replace(
    "style-src 'self'", "style-src 'self' 'unsafe-inline'"
)


class ContentSecurityPolicyMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if "Content-Security-Policy" not in response:
            policy = _SCHEMA_UI_POLICY if request.path.startswith("/api/docs") else _POLICY
            response["Content-Security-Policy"] = policy
        return response


class DatabaseUnavailableMiddleware:
    """A lost database connection (or a full decode budget) is a 503 with a sentence, not a bare 500: the service's
    transaction was rolled back, so trying again is safe. The page template uses no database (it may be down), and
    the API gets the usual error shape (DRF views answer through core.api_errors first; this covers the rest)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if isinstance(exception, DecodeBusy):
            code, detail, retry = "busy", str(exception), "30"
        elif isinstance(exception, OperationalError | InterfaceError):
            code, detail, retry = "database_unavailable", str(DATABASE_UNAVAILABLE), "5"
        else:
            return None
        if request.path.startswith("/api/") or request.path.startswith(("/h/", "/m/")):
            response: HttpResponse = JsonResponse({"error": code, "detail": detail}, status=503)
        else:
            response = HttpResponse(render_to_string("503.html", {"detail": detail}), status=503)
        response["Retry-After"] = retry
        return response
