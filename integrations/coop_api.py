"""POST /api/v1/items/async/: ROOST Coop's item submission, answered 202 with a result per item."""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.utils.translation import gettext
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from core.api_auth import IntegrationView
from core.api_errors import ApiError
from core.roles import signed_in
from integrations import coop


def _json_body(request: Request) -> Any:
    """Read at most VEIL_COOP_MAX_BODY_BYTES (+1, to tell), never more, then parse."""
    limit = int(settings.VEIL_COOP_MAX_BODY_BYTES)
    too_large = ApiError("too_large", gettext("The request body is larger than the %(limit)s-byte limit; send fewer "
                                              "or smaller items per batch.") % {"limit": format(limit, ",")}, 413)
    content_type = request.META.get("CONTENT_TYPE", "").split(";")[0].strip().lower()
    if content_type != "application/json":
        raise ApiError("unsupported_media_type", gettext("Send the batch as application/json."), 415)
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > limit:
        raise too_large
    raw = request._request.read(limit + 1)
    if len(raw) > limit:
        raise too_large
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):  # RecursionError: nesting deeper than the parser's stack
        raise ApiError("malformed_request", gettext("The body is not valid JSON."), 400) from None


class CoopItemsAsync(IntegrationView):
    parser_classes: list[Any] = []  # the body is read by _json_body, bounded, and never by a parser

    @extend_schema(
        request={"application/json": {"type": "object", "properties": {"items": {"type": "array"}}}},
        responses={202: OpenApiResponse(description="accepted/duplicate/refused per item"),
                   400: OpenApiResponse(description="nothing accepted"), 413: OpenApiResponse(description="too big")},
        operation_id="items_submit_async",
    )
    def post(self, request: Request) -> Response:
        user = signed_in(request)
        body = _json_body(request)
        items = body.get("items") if isinstance(body, dict) else None
        if not isinstance(items, list) or not items:
            raise ApiError("invalid", gettext('The body must be {"items": [{"id", "typeId", "data"}, ...]} with at '
                                              "least one item."), 400)
        if len(items) > settings.VEIL_COOP_MAX_ITEMS:
            raise ApiError("too_many_items", gettext("At most %(veil_coop_max_items)s items per batch.") % {
                "veil_coop_max_items": settings.VEIL_COOP_MAX_ITEMS}, 413)
        batch = coop.coop_items_submit(user=user, items=items)
        results = [r.as_json() for r in batch.results]
        summary = {"accepted": batch.accepted, "refused": len(results) - batch.accepted, "items": results}
        if not batch.accepted:
            return Response({"error": "nothing_accepted", "detail": gettext("No item of the batch was accepted; each "
                             "item says why."), **summary}, status=400)
        return Response(summary, status=202)
