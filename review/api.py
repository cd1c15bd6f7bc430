from __future__ import annotations

from django.utils.translation import gettext
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core import compiled
from core.api_errors import ApiError
from core.errors import ReviewError
from core.roles import HasRole, Role, signed_in
from review import selectors, services
from review.models import Queue
from review.selectors import item_held_by
from review.serializers import ClaimedItemSerializer, ErrorSerializer, QueueSerializer

ERRORS = {code: OpenApiResponse(ErrorSerializer) for code in (403, 404, 409)}


class QueueList(APIView):
    permission_classes = [HasRole.for_roles(Role.MODERATOR, Role.TEAM_LEAD)]

    @extend_schema(responses={200: QueueSerializer(many=True)}, operation_id="queues_list")
    def get(self, request: Request) -> Response:
        summaries = selectors.queue_summaries()
        return Response([
            {**QueueSerializer(s.queue).data, "waiting": s.waiting, "escalated": s.escalated} for s in summaries
        ])


class QueueClaim(APIView):
    """POST claims the next item. GET is its dry run: whether a claim would succeed now and, when not, why and until
    when (the same checks, nothing leased or recorded)."""

    permission_classes = [HasRole.for_roles(Role.MODERATOR, Role.TEAM_LEAD)]

    @staticmethod
    def _queue(slug: str) -> Queue:
        queue = compiled.first("review.queue_by_slug", Queue, lambda *, slug: Queue.objects.filter(slug=slug),
                               slug=slug)
        if queue is None:
            raise ApiError("unknown_queue", gettext("There is no queue %(slug)s.") % {"slug": repr(slug)}, 404)
        return queue

    @extend_schema(
        responses={200: OpenApiResponse(description="claimable (bool); when false: error, detail and retry_at "
                                        "(ISO time or null), as a refused claim would say; holding_item when the "
                                        "reviewer holds an item already (a claim gives that one back)"),
                   403: OpenApiResponse(ErrorSerializer), 404: OpenApiResponse(ErrorSerializer)},
        operation_id="queues_claim_preview",
    )
    def get(self, request: Request, slug: str) -> Response:
        user = signed_in(request)
        queue = self._queue(slug)
        escalated = request.query_params.get("escalated") in {"1", "true"}
        preview = services.item_claim_preview(reviewer=user, queue=queue, escalated=escalated)
        refusal = preview.refusal
        if refusal is not None and refusal.status == 403:
            raise ApiError.from_refusal(refusal)
        body: dict[str, object] = {"claimable": refusal is None}
        if refusal is not None:
            body |= {"error": refusal.code, "detail": refusal.detail,
                     "retry_at": refusal.retry_at.isoformat() if refusal.retry_at else None}
        if preview.holding_item_id is not None:
            body["holding_item"] = preview.holding_item_id
        return Response(body, headers={"Cache-Control": "no-store"})

    @extend_schema(request=None, responses={200: ClaimedItemSerializer, **ERRORS}, operation_id="queues_claim")
    def post(self, request: Request, slug: str) -> Response:
        user = signed_in(request)
        queue = self._queue(slug)
        escalated = request.query_params.get("escalated") in {"1", "true"}
        try:
            claim = services.item_claim(reviewer=user, queue=queue, escalated=escalated)
        except ReviewError as exc:
            raise ApiError.from_refusal(exc) from None
        return Response(ClaimedItemSerializer(claim.item, context={"claim": claim}).data)


class ItemLease(APIView):
    """POST: the console renews the lease on the item in hand while its reviewer is active."""

    permission_classes = [HasRole.for_roles(Role.MODERATOR, Role.TEAM_LEAD)]

    @extend_schema(request=None, responses={200: OpenApiResponse(description="expires_at, seconds"), **ERRORS},
                   operation_id="items_lease_renew")
    def post(self, request: Request, item_id: int) -> Response:
        user = signed_in(request)
        item = item_held_by(user=user, item_id=item_id)
        if item is None:
            raise ApiError("not_lease_holder", gettext("This item is no longer yours: it went back to the queue."), 409)
        try:
            expires = services.lease_renew(item=item, reviewer=user)
        except ReviewError as exc:
            raise ApiError.from_refusal(exc) from None
        return Response({"expires_at": expires.isoformat(), "seconds": item.queue.lease_duration_seconds},
                        headers={"Cache-Control": "no-store"})
