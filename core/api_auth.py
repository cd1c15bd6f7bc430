"""What every integration endpoint shares (HMA-compatible /h/ and /m/, Coop-style /api/v1/items/async/).

Requester tokens only (machine clients: no session, so no CSRF questions), sent as `Authorization: Token <key>`
or, as ROOST Coop clients do, `X-API-KEY: <key>`; a rate limit per account with 429 + Retry-After.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import SimpleRateThrottle
from rest_framework.views import APIView

from core.roles import HasRole, Role
from core.token_auth import CompiledTokenAuthentication


class ApiKeyAuthentication(CompiledTokenAuthentication):
    """The same DRF tokens, read from the X-API-KEY header."""

    def authenticate(self, request: Request) -> tuple[Any, Any] | None:
        key = request.META.get("HTTP_X_API_KEY")
        if key is None:
            return None
        key = key.strip()
        if not key or any(ch.isspace() for ch in key):
            raise exceptions.AuthenticationFailed("Invalid X-API-KEY header.")
        return self.authenticate_credentials(key)

    def authenticate_header(self, request: Request) -> str:
        return "Token"


# Not type-checked below: drf-spectacular ships no types for this
class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):  # type: ignore[no-untyped-call]
    """How the OpenAPI schema describes ApiKeyAuthentication (a name of its own beside DRF's tokenAuth)."""

    target_class = "core.api_auth.ApiKeyAuthentication"
    name = "apiKeyAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {"type": "apiKey", "in": "header", "name": "X-API-KEY"}


class IntegrationThrottle(SimpleRateThrottle):
    """VEIL_INTEGRATION_RATE_PER_MINUTE per account, read on every request (so tests and a settings reload see a
    change). Counts live in Django's cache: per process with the default local-memory cache."""

    scope = "integrations"

    def get_rate(self) -> str:
        return f"{int(settings.VEIL_INTEGRATION_RATE_PER_MINUTE)}/min"

    def get_cache_key(self, request: Request, view: APIView) -> str | None:
        user = request.user
        if user is None or not user.is_authenticated:
            return None
        return self.cache_format % {"scope": self.scope, "ident": user.pk}


class IntegrationView(APIView):
    authentication_classes = [ApiKeyAuthentication, CompiledTokenAuthentication]
    permission_classes = [HasRole.for_roles(Role.REQUESTER)]
    throttle_classes = [IntegrationThrottle]
    # HMA's clients read errors from "message"; Veil's from "error"/"detail". HMA views carry both.
    hma_errors = False

    def handle_exception(self, exc: Exception) -> Response:
        response = super().handle_exception(exc)
        if self.hma_errors and isinstance(response.data, dict) and "detail" in response.data:
            response.data["message"] = response.data["detail"]
        return response
