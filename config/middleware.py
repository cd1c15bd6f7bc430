from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

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
