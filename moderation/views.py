"""Media is served only through these views: role-checked, lease-checked, never cached."""

from __future__ import annotations

from django.http import FileResponse, Http404, HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import get_object_or_404
from django.utils.translation import gettext

from config.api_errors import retry_after_seconds
from config.roles import Role, role_required, signed_in
from moderation import selectors, services
from moderation.models import ContentItem

# The reveal token's cookie (set by the reveal API, scoped to the item's clear URL, HttpOnly, a few seconds long). A
# token in the query string would be written to every access log on the way; a cookie is not.
REVEAL_COOKIE = "veil_reveal"


def _private_image(field_file: object, *, download_name: str) -> FileResponse:
    if not field_file:
        raise Http404(gettext("No rendition yet."))
    response = FileResponse(field_file.open("rb"), content_type="image/jpeg")  # type: ignore[attr-defined]
    response["Cache-Control"] = "no-store, private, max-age=0"
    response["Pragma"] = "no-cache"
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Disposition"] = f'inline; filename="{download_name}"'
    response["Cross-Origin-Resource-Policy"] = "same-origin"
    return response


@role_required(Role.MODERATOR, Role.TEAM_LEAD)
def preview(request: HttpRequest, item_id: int) -> HttpResponseBase:
    """The blurred grayscale preview: the default everywhere an item appears."""
    user = signed_in(request)
    item = get_object_or_404(selectors.items_visible_to(user=user), pk=item_id)
    return _private_image(item.preview, download_name=f"item-{item.pk}-preview.jpg")


@role_required(Role.MODERATOR, Role.TEAM_LEAD)
def clear(request: HttpRequest, item_id: int) -> HttpResponseBase:
    """The clear rendition, only inside a logged reveal window and only to the holder of the live lease."""
    user = signed_in(request)
    item = get_object_or_404(ContentItem, pk=item_id)
    try:
        services.reveal_check(item=item, reviewer=user, token=request.COOKIES.get(REVEAL_COOKIE, ""))
    except services.ReviewError as exc:
        response = HttpResponse(exc.detail, status=exc.status, content_type="text/plain; charset=utf-8")
        response["Cache-Control"] = "no-store"
        if exc.retry_at is not None:
            response["Retry-After"] = retry_after_seconds(exc.retry_at)
        return response
    return _private_image(item.display, download_name=f"item-{item.pk}.jpg")
