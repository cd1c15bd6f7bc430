"""Issue 21, point 11: viewing settings per harm category, only ever stricter than the moderator's own (which are
only ever stricter than the organisation's), and an optional card naming the category before any reveal, enforced
on the server: no clear image without a logged reveal, and no reveal of a warned category without the card."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from core.errors import ReviewError
from core.models import AuditEvent
from review.models import RevealEvent
from review.services import item_claim
from review.viewing import reveal_start, viewing_preference_update
from tests.helpers.factories import make_item, make_queue

pytestmark = pytest.mark.django_db


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_category_settings_are_only_ever_stricter(moderator):
    prefs = viewing_preference_update(user=moderator, blur_level=3, reveal_seconds=8, grayscale_on_reveal=True,
                                      per_category={"violence": {"blur_level": 6, "reveal_seconds": 2, "warn": True},
                                                    "spam": {"blur_level": 3, "reveal_seconds": 8}})
    assert prefs.per_category == {"violence": {"blur_level": 6, "reveal_seconds": 2, "warn": True}}  # spam: as above
    assert (prefs.effective_blur_level("violence"), prefs.effective_reveal_seconds("violence")) == (6, 2)
    assert (prefs.effective_blur_level("spam"), prefs.effective_reveal_seconds("spam")) == (3, 8)
    assert prefs.warns_before_reveal("violence") and not prefs.warns_before_reveal("spam")
    refusals: list[dict[str, dict[str, Any]]] = [
        {"hate": {"blur_level": 2}}, {"hate": {"reveal_seconds": 9}}, {"unspecified": {"warn": True}},
        {"hate": {"colour": True}}, {"nonsense": {}}, {"hate": {"warn": "yes"}}]
    for looser in refusals:
        with pytest.raises(ReviewError) as refused:
            viewing_preference_update(user=moderator, blur_level=3, reveal_seconds=8, grayscale_on_reveal=True,
                                      per_category=looser)
        assert refused.value.status == 400, looser
    prefs.refresh_from_db()
    assert prefs.per_category == {"violence": {"blur_level": 6, "reveal_seconds": 2, "warn": True}}
    # Made stricter in general, a category setting that is no longer stricter falls away; the warning stays.
    prefs = viewing_preference_update(user=moderator, blur_level=6, reveal_seconds=2, grayscale_on_reveal=True)
    assert prefs.per_category == {"violence": {"warn": True}}
    assert AuditEvent.objects.filter(action="preferences_changed", actor=moderator).count() == 2


def test_a_warned_category_is_revealed_only_after_the_card(moderator, settings):
    viewing_preference_update(user=moderator, blur_level=2, reveal_seconds=10, grayscale_on_reveal=True,
                              per_category={"violence": {"reveal_seconds": 3, "warn": True}})
    queue = make_queue()
    make_item(queue, seed=1, category="violence", severity=3)
    claim = item_claim(reviewer=moderator, queue=queue)
    client = logged_in(moderator)
    refused = client.post(f"/api/v1/items/{claim.item_id}/reveal/")
    assert refused.status_code == 409 and refused.json()["error"] == "warning_first"
    assert "Violence and gore" in refused.json()["detail"]
    assert not RevealEvent.objects.exists()  # nothing granted, nothing to serve
    granted = client.post(f"/api/v1/items/{claim.item_id}/reveal/?warned=1")
    assert granted.status_code == 201 and granted.json()["seconds"] == 3  # the category's shorter reveal
    assert client.get(granted.json()["url"]).status_code == 200
    assert RevealEvent.objects.get().allowed_seconds == 3
    assert AuditEvent.objects.get(action="revealed").data["warned"] is True
    with pytest.raises(ReviewError):
        reveal_start(item=claim.item, reviewer=moderator)  # the service itself, not only the API


def test_the_item_page_and_the_settings_page(moderator):
    viewing_preference_update(user=moderator, blur_level=2, reveal_seconds=10, grayscale_on_reveal=True,
                              per_category={"violence": {"blur_level": 5, "warn": True}})
    queue = make_queue()
    make_item(queue, seed=1, category="violence", severity=3)
    claim = item_claim(reviewer=moderator, queue=queue)
    client = logged_in(moderator)
    html = client.get(f"/console/items/{claim.item_id}/").content.decode()
    assert 'class="item-image blur-5"' in html and 'data-warn-category="Violence and gore"' in html
    assert 'id="reveal-warning"' in html and "Reported as Violence and gore" in html
    saved = client.post("/console/preferences/", {"blur_level": "3", "reveal_seconds": "6",
                                                   "cat-self_harm-blur_level": "6", "cat-self_harm-warn": "on",
                                                   "cat-violence-reveal_seconds": "2"})
    assert saved.status_code == 302
    page = client.get("/console/preferences/").content.decode()
    assert 'name="cat-self_harm-warn" id="cat-self_harm-warn" checked' in page
    refused = client.post("/console/preferences/", {"blur_level": "3", "reveal_seconds": "6",
                                                     "cat-hate-reveal_seconds": "9"}, follow=True)
    assert "only ever shorter" in refused.content.decode()
