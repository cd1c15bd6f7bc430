"""Media is served only through these views: role-checked, lease-checked, never cached."""

from __future__ import annotations

import re
from typing import Any

from django.db.models.fields.files import FieldFile
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import get_object_or_404
from django.utils.translation import gettext

from core import errors
from core.api_errors import retry_after_seconds
from core.roles import Role, role_required, signed_in
from intake.models import ContentItem, Motion
from review import selectors as review_selectors
from review import viewing

# The reveal token's cookie (set by the reveal API, scoped to the item's clear URL, HttpOnly, a few seconds long). A
# token in the query string would be written to every access log on the way; a cookie is not.
REVEAL_COOKIE = "veil_reveal"


def _private_image(field_file: FieldFile, *, download_name: str, content_type: str = "image/jpeg") -> FileResponse:
    if not field_file:
        raise Http404(gettext("No rendition yet."))
    response = FileResponse(field_file.open("rb"), content_type=content_type)
    _private_headers(response, download_name)
    return response


def _private_headers(response: HttpResponseBase, download_name: str) -> None:
    response["Cache-Control"] = "no-store, private, max-age=0"
    response["Pragma"] = "no-cache"
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Disposition"] = f'inline; filename="{download_name}"'
    response["Cross-Origin-Resource-Policy"] = "same-origin"


@role_required(Role.MODERATOR, Role.TEAM_LEAD)
def preview(request: HttpRequest, item_id: int) -> HttpResponseBase:
    """The blurred grayscale preview: the default everywhere an item appears."""
    user = signed_in(request)
    item = get_object_or_404(review_selectors.items_visible_to(user=user), pk=item_id)
    return _private_image(item.preview, download_name=f"item-{item.pk}-preview.jpg")


_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def _private_video(request: HttpRequest, field_file: Any, *, download_name: str) -> HttpResponseBase:
    """A video rendition, never cached, with single byte ranges (a browser's player seeks with them)."""
    if not field_file:
        raise Http404("No rendition yet.")
    size = field_file.size
    match = _RANGE.match(request.headers.get("Range", "").strip())
    if not match or not (match.group(1) or match.group(2)):
        response: HttpResponseBase = FileResponse(field_file.open("rb"), content_type="video/mp4")
        response["Accept-Ranges"] = "bytes"
        _private_headers(response, download_name)
        return response
    first, last = match.group(1), match.group(2)
    if first:
        start, end = int(first), min(int(last) if last else size - 1, size - 1)
    else:
        start, end = max(0, size - int(last)), size - 1
    if start > end or start >= size:
        refused = HttpResponse(status=416)
        refused["Content-Range"] = f"bytes */{size}"
        _private_headers(refused, download_name)
        return refused
    with field_file.open("rb") as fp:
        fp.seek(start)
        body = fp.read(end - start + 1)
    response = HttpResponse(body, status=206, content_type="video/mp4")
    response["Content-Range"] = f"bytes {start}-{end}/{size}"
    response["Accept-Ranges"] = "bytes"
    _private_headers(response, download_name)
    return response


def _refusal(exc: errors.ReviewError) -> HttpResponse:
    response = HttpResponse(exc.detail, status=exc.status, content_type="text/plain; charset=utf-8")
    response["Cache-Control"] = "no-store"
    if exc.retry_at is not None:
        response["Retry-After"] = retry_after_seconds(exc.retry_at)
    return response


@role_required(Role.MODERATOR, Role.TEAM_LEAD)
def clip(request: HttpRequest, item_id: int) -> HttpResponseBase:
    """A moving item's preview clip: tiny, grey, silent; shown blurred and only played on purpose."""
    user = signed_in(request)
    item = get_object_or_404(review_selectors.items_visible_to(user=user), pk=item_id)
    moving = Motion.objects.filter(item=item).first()
    return _private_video(request, moving.clip if moving else None, download_name=f"item-{item.pk}-preview.mp4")


@role_required(Role.MODERATOR, Role.TEAM_LEAD)
def keyframe(request: HttpRequest, item_id: int, number: int) -> HttpResponseBase:
    """One keyframe of a moving item, clear, only inside a logged reveal of that keyframe."""
    user = signed_in(request)
    item = get_object_or_404(ContentItem, pk=item_id)
    try:
        viewing.reveal_check(item=item, reviewer=user, token=request.COOKIES.get(REVEAL_COOKIE, ""),
                              keyframe=number)
    except errors.ReviewError as exc:
        return _refusal(exc)
    moving = get_object_or_404(Motion, item=item)
    if not 0 <= number < len(moving.keyframes):
        raise Http404("No such keyframe.")
    name = moving.keyframes[number]["name"]
    response = FileResponse(item.preview.storage.open(name, "rb"), content_type="image/jpeg")
    _private_headers(response, f"item-{item.pk}-keyframe-{number}.jpg")
    return response


@role_required(Role.MODERATOR, Role.TEAM_LEAD)
def stream(request: HttpRequest, item_id: int) -> HttpResponseBase:
    """The clear stream (with its sound), only inside a logged playback reveal; every range request is checked
    again, so a break or an ended reveal stops the stream at the next request."""
    user = signed_in(request)
    item = get_object_or_404(ContentItem, pk=item_id)
    try:
        viewing.reveal_check(item=item, reviewer=user, token=request.COOKIES.get(REVEAL_COOKIE, ""), playback=True)
    except errors.ReviewError as exc:
        return _refusal(exc)
    moving = get_object_or_404(Motion, item=item)
    return _private_video(request, moving.stream, download_name=f"item-{item.pk}.mp4")


@role_required(Role.MODERATOR, Role.TEAM_LEAD)
def clear(request: HttpRequest, item_id: int) -> HttpResponseBase:
    """The clear rendition, only inside a logged reveal window and only to the holder of the live lease."""
    user = signed_in(request)
    item = get_object_or_404(ContentItem, pk=item_id)
    try:
        viewing.reveal_check(item=item, reviewer=user, token=request.COOKIES.get(REVEAL_COOKIE, ""))
    except errors.ReviewError as exc:
        return _refusal(exc)
    return _private_image(item.display, download_name=f"item-{item.pk}.jpg")
