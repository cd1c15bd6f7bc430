"""The OpenAPI schema's error responses, added in one place (a drf-spectacular postprocessing hook) rather than on
every view: 401 on every operation (all need a token or a session), 429 with Retry-After on the rate-limited ones,
503 when the database is unreachable, and the refusals of the HMA-compatible /h/ and /m/ endpoints. Each is the
API's error shape, {"error", "detail"}."""

from __future__ import annotations

from typing import Any

ERROR = {
    "type": "object",
    "properties": {
        "error": {"type": "string", "description": "a stable machine code, e.g. rate_limited"},
        "detail": {"type": "string", "description": "a sentence a person can act on"},
        "message": {"type": "string", "description": "/h/ and /m/ only: the same sentence, where HMA clients read it"},
    },
    "required": ["error", "detail"],
}
_REF = {"$ref": "#/components/schemas/ApiError"}
_RETRY_AFTER = {"Retry-After": {"schema": {"type": "integer"}, "description": "seconds to wait before trying again"}}
_HMA = {
    "400": "The file, signal or parameter was refused (a code per reason, e.g. corrupt, svg_refused, bad_url).",
    "403": "Fetching by URL is off, or the URL is outside the allowed prefixes or resolves to a private address.",
    "413": "The file is larger than the upload limit.",
    "502": "The URL could not be fetched (network error or a non-200 answer; redirects are not followed).",
}


def _rate_limited(path: str, method: str, operation_id: str) -> bool:
    return path.startswith(("/h/", "/m/")) or (method == "post" and path in ("/api/v1/items/", "/api/v1/items/async/"))


def error_responses(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    result.setdefault("components", {}).setdefault("schemas", {})["ApiError"] = ERROR
    for path, operations in result.get("paths", {}).items():
        for method, operation in operations.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            responses: dict[str, Any] = operation["responses"]

            def add(code: str, description: str, headers: dict[str, Any] | None = None,
                    responses: dict[str, Any] = responses) -> None:
                entry: dict[str, Any] = {"description": description, "content": {"application/json": {"schema": _REF}}}
                if headers:
                    entry["headers"] = headers
                responses.setdefault(code, entry)

            add("401", "No credentials, or an unknown or invalid token (error: not_authenticated or "
                "authentication_failed).")
            if _rate_limited(path, method, str(operation.get("operationId", ""))):
                add("429", "Over VEIL_INTEGRATION_RATE_PER_MINUTE requests this minute for this account "
                    "(error: rate_limited).", _RETRY_AFTER)
            if path.startswith(("/h/", "/m/")):
                for code, description in _HMA.items():
                    if code == "400" or path != "/m/raw_lookup":  # raw_lookup takes a hash, never a file or URL
                        add(code, description)
            add("503", "The database could not be reached; nothing was done, so trying again is safe "
                "(error: database_unavailable).", {"Retry-After": _RETRY_AFTER["Retry-After"]})
    return result
