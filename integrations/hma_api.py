"""HMA-compatible endpoints, so tools written for Meta's Hasher-Matcher-Actioner work against Veil's hash lists.

Mounted at the root like HMA's blueprints: POST/GET /h/hash, GET/POST /m/lookup, GET /m/raw_lookup. The README's
"Integrations" section lists exactly what differs from HMA.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from typing import Any, NoReturn

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.utils.translation import gettext
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from core.api_auth import IntegrationView
from core.api_errors import ApiError
from core.audit import audit_record
from core.errors import ReviewError
from core.models import AuditEvent
from core.roles import signed_in
from intake import media
from integrations import hma, outbound

_FETCH_STATUS = {"url_fetch_disabled": 403, "url_not_allowed": 403, "private_address": 403, "too_large": 413,
                 "bad_url": 400}
_JSON = OpenApiResponse(description=("JSON, in HMA's shape"))
_SIGNAL_PARAMS = [
    OpenApiParameter("signal_type", str, description="pdq, video_md5, vpdq (or Veil's phash)"),
    OpenApiParameter("signal", str, description="the hash, lowercase or uppercase hex"),
    OpenApiParameter("banks", str, description="comma-separated list names to restrict the search to"),
]


def _refuse(exc: ReviewError | media.UnsafeImage | outbound.OutboundRefused) -> NoReturn:
    if isinstance(exc, ReviewError):
        raise ApiError(exc.code, exc.detail, exc.status)
    if isinstance(exc, media.UnsafeImage):
        raise ApiError(exc.code, exc.detail, 413 if exc.code == "too_large" else 400)
    raise ApiError(exc.code, exc.detail, _FETCH_STATUS.get(exc.code, 502))


def _signals_of_upload(request: Request) -> dict[str, str]:
    """HMA's hashing: a photo gives {"pdq": ...}, a video {"video_md5": ..., "vpdq": ...}."""
    files = request.FILES
    name = next(iter(files.keys()), "")
    if name == "video" and len(files) == 1 and len(files.getlist(name)) == 1:
        upload = _upload(files[name])
        try:
            return hma.video_signals(upload, size=int(upload.size or 0))
        except media.UnsafeImage as exc:
            _refuse(exc)
    return {"pdq": _pdq_of_upload(request)}


def _upload(found: object) -> UploadedFile[Any]:
    """The one file of a field that holds one: a request's FILES hold uploaded files (djangorestframework-stubs
    3.18.2 types an item of it as a file or a list, so this says which)."""
    if not isinstance(found, UploadedFile):
        raise ApiError("one_file_only", gettext("Only one file allowed per request."), 400)
    return found


def _pdq_of_upload(request: Request) -> str:
    files = request.FILES  # parsing runs the size-limited upload handler
    if getattr(request._request, "veil_oversized_upload", None):
        limit = settings.VEIL_MAX_UPLOAD_BYTES / (1024 * 1024)
        raise ApiError("too_large", gettext("The file is larger than the %(g)s MiB limit.") % {
            "g": format(limit, "g")}, 413)
    names = list(files.keys())
    if not names:
        raise ApiError("file_required", gettext("Missing multipart/form-data file upload (field name: photo)."), 400)
    if len(names) > 1 or len(files.getlist(names[0])) > 1:
        raise ApiError("one_file_only", gettext("Only one file allowed per request."), 400)
    if names[0] not in hma.CONTENT_TYPES:
        raise ApiError("unknown_content_type", gettext("no such content_type: %(names)s (Veil hashes photo and "
                                                       "video).") % {
            "names": repr(names[0][:40])}, 400)
    upload = _upload(files[names[0]])
    try:
        return hma.image_pdq(upload, size=int(upload.size or 0))
    except media.UnsafeImage as exc:
        _refuse(exc)


def _pdq_of_url(url: str) -> str:
    try:
        data = outbound.fetch_image(url)
        return hma.image_pdq(io.BytesIO(data), size=len(data))
    except (media.UnsafeImage, outbound.OutboundRefused) as exc:
        _refuse(exc)


def _banks(request: Request) -> set[str] | None:
    raw = request.query_params.get("banks")
    return {name.strip() for name in raw.split(",") if name.strip()} if raw else None


def _parsed(request: Request) -> tuple[str, str]:
    try:
        return hma.signal_parse(signal_type=request.query_params.get("signal_type"),
                                signal=request.query_params.get("signal"))
    except ReviewError as exc:
        _refuse(exc)


def _by_bank(matches: Iterable[hma.BankMatch]) -> dict[str, list[dict[str, Any]]]:
    # HMA sends the distance as a string (SignalSimilarityInfo.pretty_str()); so does Veil.
    result: dict[str, list[dict[str, Any]]] = {}
    for match in matches:
        result.setdefault(match.bank, []).append({"bank_content_id": match.bank_content_id,
                                                  "distance": str(match.distance)})
    return result


def _audit(request: Request, *, endpoint: str, **data: Any) -> None:
    audit_record(action=AuditEvent.Action.HASH_LOOKUP, actor=signed_in(request), endpoint=endpoint, **data)


class HashMedia(IntegrationView):
    hma_errors = True
    parser_classes = [MultiPartParser]

    @extend_schema(parameters=[OpenApiParameter("url", str, description=("only with VEIL_FETCH_URL_PREFIXES"))],
                   responses={200: _JSON}, operation_id="hma_hash_url")
    def get(self, request: Request) -> Response:
        url = request.query_params.get("url")
        if not url:
            raise ApiError("url_required",
                           gettext("url is required (or POST the file as the multipart field photo)."), 400)
        pdq = _pdq_of_url(url)
        _audit(request, endpoint="h/hash", source="url", pdq=pdq)
        return Response({"pdq": pdq})

    @extend_schema(request={"multipart/form-data": {"type": "object", "properties": {
        "photo": {"type": "string", "format": "binary"}, "video": {"type": "string", "format": "binary"}}}},
        responses={200: _JSON}, operation_id="hma_hash_upload")
    def post(self, request: Request) -> Response:
        signals = _signals_of_upload(request)
        _audit(request, endpoint="h/hash", source="upload", **{k: v[:64] for k, v in signals.items()})
        return Response(signals)


class MatchLookup(IntegrationView):
    hma_errors = True
    parser_classes = [MultiPartParser]

    @extend_schema(parameters=[*_SIGNAL_PARAMS, OpenApiParameter("url", str, description=("instead of a signal"))],
                   responses={200: _JSON}, operation_id="hma_lookup")
    def get(self, request: Request) -> Response:
        banks = _banks(request)
        url = request.query_params.get("url")
        if url:
            pdq = _pdq_of_url(url)
            matches = hma.signal_lookup(signal_type="pdq", signal=pdq, banks=banks)
            _audit(request, endpoint="m/lookup", source="url", signal_type="pdq", signal=pdq, matches=len(matches))
            by_type = {"pdq": _by_bank(matches)}
            # As HMA: naming the signal type elides the outer object.
            selected = request.query_params.get("signal_type")
            return Response(by_type.get(selected, {}) if selected else by_type)
        signal_type, signal = _parsed(request)
        matches = hma.signal_lookup(signal_type=signal_type, signal=signal, banks=banks)
        _audit(request, endpoint="m/lookup", signal_type=signal_type, signal=signal[:64], matches=len(matches))
        return Response(_by_bank(matches))

    @extend_schema(request={"multipart/form-data": {"type": "object", "properties": {
        "photo": {"type": "string", "format": "binary"}, "video": {"type": "string", "format": "binary"}}}},
        responses={200: _JSON}, operation_id="hma_lookup_upload")
    def post(self, request: Request) -> Response:
        signals = _signals_of_upload(request)
        found = {}
        for signal_type, signal in signals.items():
            matches = hma.signal_lookup(signal_type=signal_type, signal=signal, banks=_banks(request))
            _audit(request, endpoint="m/lookup", source="upload", signal_type=signal_type, signal=signal[:64],
                   matches=len(matches))
            found[signal_type] = _by_bank(matches)
        return Response(found)


class RawLookup(IntegrationView):
    hma_errors = True

    @extend_schema(parameters=[*_SIGNAL_PARAMS, OpenApiParameter("include_distance", bool)],
                   responses={200: _JSON}, operation_id="hma_raw_lookup")
    def get(self, request: Request) -> Response:
        raw = request.query_params.get("include_distance", "false").lower()
        if raw not in ("true", "1", "false", "0"):
            raise ApiError("invalid_boolean", gettext("invalid boolean parameter - prefer true/false"), 400)
        signal_type, signal = _parsed(request)
        matches = hma.signal_lookup(signal_type=signal_type, signal=signal, banks=_banks(request))
        _audit(request, endpoint="m/raw_lookup", signal_type=signal_type, signal=signal[:64], matches=len(matches))
        if raw in ("true", "1"):
            return Response({"matches": [{"bank_content_id": m.bank_content_id, "distance": str(m.distance)}
                                         for m in matches]})
        return Response({"matches": [m.bank_content_id for m in matches]})
