"""REST endpoints for items: ingest (requester tokens), status, reveal, decision, release."""

from __future__ import annotations

import math

from django.conf import settings
from django.shortcuts import get_object_or_404
from django.utils.translation import gettext
from django.utils.translation import gettext as _
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core import errors
from core.api_auth import IntegrationThrottle
from core.api_errors import ApiError
from core.roles import HasRole, Role, has_role, signed_in
from intake import media, services
from review import decisions, media_views, viewing
from review import selectors as review_selectors
from review.models import Policy, Queue
from review.serializers import (
    DecisionInputSerializer,
    DecisionSerializer,
    ErrorSerializer,
    ItemIngestSerializer,
    ItemSerializer,
)
from review.services import item_release

ERRORS = {code: OpenApiResponse(ErrorSerializer) for code in (400, 403, 404, 409, 413)}


def _raise(exc: errors.ReviewError) -> None:
    raise ApiError.from_refusal(exc)


class ItemCollection(APIView):
    permission_classes = [HasRole.for_roles(Role.REQUESTER)]
    # Uploads count against the same per-account budget as the integration endpoints (VEIL_INTEGRATION_RATE_PER_
    # MINUTE): one requester cannot flood the queue, the disk or the pipeline.
    throttle_classes = [IntegrationThrottle]

    @extend_schema(request=ItemIngestSerializer, responses={201: ItemSerializer, **ERRORS}, operation_id="items_create")
    def post(self, request: Request) -> Response:
        user = signed_in(request)
        serializer = ItemIngestSerializer(data=request.data)  # parsing runs the size-limited upload handler
        if getattr(request._request, "veil_oversized_upload", None):
            raise ApiError("too_large", gettext("The file is larger than the %(_mib)s MiB limit.") % {
                "_mib": _mib()}, 413)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        queue = Queue.objects.filter(slug=data["queue"], is_active=True).first()
        allowed = queue is not None and (
            user.is_superuser or queue.submitters.filter(pk=user.pk).exists()
        )
        if queue is None or not allowed:
            raise ApiError("unknown_queue", gettext("There is no open queue %(queue)s that this account may submit "
                                                    "to.") % {"queue": repr(data['queue'])}, 400)
        try:
            item = services.item_ingest(
                queue=queue,
                upload=data["file"],
                submitted_by=user,
                external_id=data["external_id"],
                category=data["category"],
                severity=int(data["severity"]),
            )
        except services.DuplicateSubmission as exc:
            # Only ever the caller's own item (ids are looked up among what this account submitted), so naming it
            # reveals nothing; another account's equal id is simply another item.
            return Response({"error": "duplicate", "detail": gettext("This account already submitted external_id "
                                                                     "%(external_id)s to this queue, as item %(pk)s; "
                                                                     "nothing new was stored.") % {
                                                                         "external_id": repr(data['external_id']),
                                                                         "pk": exc.item.pk},
                             "item": exc.item.pk}, status=status.HTTP_409_CONFLICT)
        except media.UnsafeImage as exc:
            status_code = 413 if exc.code in {"too_large"} else 400
            raise ApiError(exc.code, exc.detail, status_code) from None
        item.refresh_from_db()
        return Response(ItemSerializer(item).data, status=status.HTTP_201_CREATED)


def _mib() -> str:
    return f"{settings.VEIL_MAX_UPLOAD_BYTES / (1024 * 1024):g}"


class ItemDetail(APIView):
    @extend_schema(responses={200: ItemSerializer, **ERRORS}, operation_id="items_retrieve")
    def get(self, request: Request, item_id: int) -> Response:
        user = signed_in(request)
        item = get_object_or_404(review_selectors.items_visible_to(user=user), pk=item_id)
        return Response(ItemSerializer(item).data)


class ItemDecision(APIView):
    permission_classes = [HasRole.for_roles(Role.MODERATOR, Role.TEAM_LEAD)]

    @extend_schema(request=DecisionInputSerializer,
                   responses={201: DecisionSerializer,
                              200: OpenApiResponse(description="with ?dry_run=1: {\"valid\": true} when the decision "
                                                   "would be recorded; otherwise the refusal it would get"), **ERRORS},
                   parameters=[OpenApiParameter("dry_run", bool, description="check only, record nothing")],
                   operation_id="items_decide")
    def post(self, request: Request, item_id: int) -> Response:
        user = signed_in(request)
        item = review_selectors.item_held_by(user=user, item_id=item_id)
        if item is None:
            raise ApiError("not_lease_holder",
                           gettext("You do not hold this item. Claim the next item from its queue."), 409)
        serializer = DecisionInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        policy = None
        if data["policy"]:
            policy = Policy.objects.filter(queue_id=item.queue_id, code=data["policy"]).first()
            if policy is None:
                raise ApiError("invalid_policy", gettext("The queue has no policy %(policy)s.") % {
                    "policy": repr(data['policy'])}, 400)
        args = {"item": item, "reviewer": user, "action": data["action"], "policy": policy, "reason": data["reason"]}
        try:
            if request.query_params.get("dry_run") in {"1", "true"}:  # the same checks; nothing is recorded
                decisions.check_decision(**args)
                return Response({"valid": True}, headers={"Cache-Control": "no-store"})
            decision = decisions.do_decision(**args)
        except errors.ReviewError as exc:
            _raise(exc)
        return Response(DecisionSerializer(decision).data, status=status.HTTP_201_CREATED)


class ItemReveal(APIView):
    permission_classes = [HasRole.for_roles(Role.MODERATOR, Role.TEAM_LEAD)]

    @extend_schema(request=None, responses={201: OpenApiResponse(description="url, seconds, reveal id"), **ERRORS},
                   operation_id="items_reveal")
    def post(self, request: Request, item_id: int) -> Response:
        user = signed_in(request)
        try:
            viewing.viewing_check(reviewer=user)  # first: during a break the answer is "rest", whatever was held
        except errors.ReviewError as exc:
            _raise(exc)
        item = review_selectors.item_revealable_by(user=user, item_id=item_id)
        if item is None:
            raise ApiError("not_lease_holder", gettext("You do not hold this item."), 409)
        keyframe_raw = request.query_params.get("keyframe")
        playback = str(request.query_params.get("playback", "")) in {"1", "true"}
        if keyframe_raw is not None and not keyframe_raw.isdigit():
            raise ApiError("no_such_keyframe", _("keyframe must be the keyframe's number on the contact sheet."), 400)
        keyframe = int(keyframe_raw) if keyframe_raw is not None else None
        try:
            warned = str(request.query_params.get("warned", "")) in {"1", "true"}
            grant = viewing.reveal_start(item=item, reviewer=user, warned=warned, keyframe=keyframe,
                                          playback=playback)
        except errors.ReviewError as exc:
            _raise(exc)
        from django.urls import reverse

        # The token travels in a cookie scoped to this item's clear URL, never in a URL: URLs are written to access
        # logs (daphne's, a proxy's). `r` (the reveal's id, not a secret) only keeps each reveal's URL distinct.
        # A moving item's keyframe or stream has its own URL, and the cookie its own name and path.
        if playback:
            clear_url = reverse("media-stream", args=[item.pk])
        elif keyframe is not None:
            clear_url = reverse("media-keyframe", args=[item.pk, keyframe])
        else:
            clear_url = reverse("media-clear", args=[item.pk])
        body = {"reveal": grant.reveal.pk, "url": f"{clear_url}?r={grant.reveal.pk}", "seconds": grant.seconds}
        if playback:
            body["progress"] = reverse("api-reveal-played", args=[grant.reveal.pk])
        response = Response(body, status=201)
        response.set_cookie(media_views.REVEAL_COOKIE, grant.token, max_age=grant.seconds + 5, path=clear_url,
                            secure=bool(settings.SESSION_COOKIE_SECURE), httponly=True, samesite="Strict")
        return response


class RevealEnd(APIView):
    permission_classes = [HasRole.for_roles(Role.MODERATOR, Role.TEAM_LEAD)]

    @extend_schema(request=None, responses={204: None, **ERRORS}, operation_id="reveals_end")
    def post(self, request: Request, reveal_id: int) -> Response:
        user = signed_in(request)
        viewing.reveal_end(reveal_id=reveal_id, reviewer=user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class PlaybackProgress(APIView):
    """Seconds of clear video played in a playback reveal, reported by the console every few seconds while it
    plays (and once when it stops). 409 on_break / cap_reached / reveal_expired: stop playing now."""

    permission_classes = [HasRole.for_roles(Role.MODERATOR, Role.TEAM_LEAD)]

    @extend_schema(request=None, responses={200: OpenApiResponse(description="played seconds recorded"), **ERRORS},
                   operation_id="reveals_played")
    def post(self, request: Request, reveal_id: int) -> Response:
        user = signed_in(request)
        raw = request.data.get("seconds") if hasattr(request.data, "get") else None
        try:
            seconds = float(str(raw))
        except (TypeError, ValueError):
            raise ApiError("invalid_seconds", _("seconds must be a number of seconds played."), 400) from None
        if not math.isfinite(seconds) or seconds < 0:
            raise ApiError("invalid_seconds", _("seconds must be a number of seconds played."), 400)
        try:
            reveal = viewing.playback_progress(reveal_id=reveal_id, reviewer=user, played_seconds=seconds)
        except errors.ReviewError as exc:
            _raise(exc)
        return Response({"played_seconds": round(reveal.played_seconds, 1)})


class ItemRelease(APIView):
    permission_classes = [HasRole.for_roles(Role.MODERATOR, Role.TEAM_LEAD)]

    @extend_schema(request=None, responses={204: None, **ERRORS}, operation_id="items_release")
    def post(self, request: Request, item_id: int) -> Response:
        user = signed_in(request)
        item = review_selectors.item_held_by(user=user, item_id=item_id)
        if item is None or not has_role(user, Role.MODERATOR, Role.TEAM_LEAD):
            raise ApiError("not_lease_holder", gettext("You do not hold this item."), 409)
        try:
            item_release(item=item, reviewer=user)
        except errors.ReviewError as exc:
            _raise(exc)
        return Response(status=status.HTTP_204_NO_CONTENT)
