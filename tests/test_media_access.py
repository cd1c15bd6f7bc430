"""Who may see which rendition: the blurred preview by default, the clear one only inside a logged reveal."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import time_machine
from django.test import Client
from django.utils import timezone
from PIL import Image

from core.errors import ReviewError
from core.models import AuditEvent
from review.models import RevealEvent
from review.services import item_claim
from review.viewing import reveal_start, viewing_preference_update
from tests.helpers.factories import logged_in, make_item, make_queue

pytestmark = pytest.mark.django_db



def reveal(client: Client, item_id: int) -> dict[str, Any]:
    response = client.post(f"/api/v1/items/{item_id}/reveal/")
    assert response.status_code == 201, response.content
    found: dict[str, Any] = response.json()
    return found


def assert_private(response) -> None:
    assert "no-store" in response["Cache-Control"] and "private" in response["Cache-Control"]
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Content-Disposition"].startswith("inline")


def test_preview_is_the_blurred_grayscale_rendition(moderator):
    queue = make_queue()
    item = make_item(queue, seed=1)
    item_claim(reviewer=moderator, queue=queue)
    response = logged_in(moderator).get(f"/media/items/{item.pk}/preview")
    assert response.status_code == 200
    assert_private(response)
    with item.preview.open("rb") as fp:
        assert Image.open(fp).mode == "L"


def test_reveal_is_logged_and_serves_the_clear_image_to_the_holder(moderator):
    queue = make_queue()
    item = make_item(queue, seed=1)
    item_claim(reviewer=moderator, queue=queue)
    client = logged_in(moderator)
    grant = reveal(client, item.pk)
    assert grant["seconds"] == 10
    response = client.get(grant["url"])
    assert response.status_code == 200
    assert_private(response)
    # Not type-checked below: the test client's response type omits FileResponse's streaming_content
    assert b"".join(response.streaming_content)[:3] == b"\xff\xd8\xff"  # type: ignore[attr-defined]
    assert AuditEvent.objects.filter(action="revealed", item=item, actor=moderator).count() == 1
    assert RevealEvent.objects.filter(item=item, reviewer=moderator).count() == 1


def test_clear_image_refused_to_anyone_else(moderator, moderator2, lead, health, stranger):
    queue = make_queue()
    item = make_item(queue, seed=1)
    item_claim(reviewer=moderator, queue=queue)
    url = reveal(logged_in(moderator), item.pk)["url"]
    for user in (moderator2, lead):
        assert logged_in(user).get(url).status_code == 403
    for user in (health, stranger):
        assert logged_in(user).get(url).status_code == 403
    anonymous = Client().get(url)
    assert anonymous.status_code == 302 and "/login/" in anonymous["Location"]


def test_clear_image_needs_a_reveal_token(moderator):
    queue = make_queue()
    item = make_item(queue, seed=1)
    item_claim(reviewer=moderator, queue=queue)
    client = logged_in(moderator)
    assert client.get(f"/media/items/{item.pk}/clear").status_code == 403
    assert client.get(f"/media/items/{item.pk}/clear?t=forged").status_code == 403


def test_reveal_window_closes(moderator):
    queue = make_queue()
    item = make_item(queue, seed=1)
    item_claim(reviewer=moderator, queue=queue)
    viewing_preference_update(user=moderator, blur_level=3, reveal_seconds=4, grayscale_on_reveal=True)
    client = logged_in(moderator)
    grant = reveal(client, item.pk)
    assert grant["seconds"] == 4
    with time_machine.travel(timezone.now() + timedelta(seconds=5)):
        assert client.get(grant["url"]).status_code == 403
    ended = client.post(f"/api/v1/reveals/{grant['reveal']}/end/")
    assert ended.status_code == 204
    assert client.get(grant["url"]).status_code == 403  # ended reveals stay closed


def test_reveal_needs_the_live_lease(moderator):
    queue = make_queue()
    item = make_item(queue, seed=1)
    claim = item_claim(reviewer=moderator, queue=queue)
    with time_machine.travel(claim.expires_at + timedelta(seconds=1)), pytest.raises(ReviewError) as exc:
        reveal_start(item=item, reviewer=moderator)
    assert exc.value.code == "lease_expired"


def test_preview_denied_to_non_reviewers_and_strangers_items(moderator, moderator2, health, requester):
    queue = make_queue()
    item = make_item(queue, seed=1)
    item_claim(reviewer=moderator, queue=queue)
    assert logged_in(moderator2).get(f"/media/items/{item.pk}/preview").status_code == 404
    for user in (health, requester):
        assert logged_in(user).get(f"/media/items/{item.pk}/preview").status_code == 403


def test_viewing_preferences_only_get_stricter(moderator, settings):
    with pytest.raises(ReviewError) as weak:
        viewing_preference_update(user=moderator, blur_level=settings.VEIL_MIN_BLUR_LEVEL - 1, reveal_seconds=5,
                                  grayscale_on_reveal=True)
    assert weak.value.code == "blur_too_weak"
    with pytest.raises(ReviewError) as long:
        viewing_preference_update(user=moderator, blur_level=4, reveal_seconds=settings.VEIL_REVEAL_SECONDS + 1,
                                  grayscale_on_reveal=True)
    assert long.value.code == "reveal_too_long"
    prefs = viewing_preference_update(user=moderator, blur_level=5, reveal_seconds=3, grayscale_on_reveal=False)
    assert (prefs.effective_blur_level(), prefs.effective_reveal_seconds()) == (5, 3)
    assert AuditEvent.objects.filter(action="preferences_changed", actor=moderator).exists()
    # If the organisation later tightens its rules, a stored weaker preference is overridden, not obeyed.
    settings.VEIL_MIN_BLUR_LEVEL = 6
    settings.VEIL_REVEAL_SECONDS = 2
    assert (prefs.effective_blur_level(), prefs.effective_reveal_seconds()) == (6, 2)
