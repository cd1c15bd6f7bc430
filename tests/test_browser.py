"""The console in a real browser: Debian's Chromium, driven by Playwright, against daphne on the test database.

Screenshots land in /work/main/screenshots/ (gitignored) so a person can look at what a moderator sees.
"""

from __future__ import annotations

import re
import time

import pytest
from django.conf import settings

from intake.models import ContentItem, Decision
from review import viewing
from review.models import RevealEvent
from tests.helpers.browser import (
    IMAGE_BLURRED,
    IMAGE_REVEALED,
    PURPOSE,
    REQUESTER,
    make_queue,
    new_page,
    open_next_item,
    shoot,
    sign_in,
)
from tests.helpers.factories import make_item, make_user
from tests.helpers.livesrv import chromium_browser

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_moderator_reveals_decides_and_moves_on(live_daphne: str) -> None:
    queue = make_queue()
    first = make_item(queue, seed=1, category="violence", severity=3)
    second = make_item(queue, seed=2)
    moderator = make_user("mo", "moderator")
    viewing.viewing_preference_update(
        user=moderator, blur_level=settings.VEIL_MIN_BLUR_LEVEL, reveal_seconds=2, grayscale_on_reveal=True
    )
    with chromium_browser() as browser:
        page, errors = new_page(browser)

        sign_in(page, live_daphne, "mo")
        card = page.locator("[data-queue='reported-posts']")
        assert PURPOSE in card.inner_text()
        assert REQUESTER in card.inner_text()
        assert page.locator("[data-queue-count='reported-posts']").inner_text() == "2"
        page.wait_for_function("() => document.body.dataset.live === 'open'")  # the socket is up, no paused notice
        assert page.locator("#live-status").inner_text() == ""
        shoot(page, "1-queue-list")

        card.get_by_role("button", name=re.compile("^Next item")).click()
        page.wait_for_url(f"{live_daphne}/console/items/{first.pk}/")
        image = page.locator("#item-image")
        assert image.get_attribute("src") == f"/media/items/{first.pk}/preview"
        assert image.get_attribute("data-state") == "blurred"
        assert PURPOSE in page.locator(".item-context").inner_text()
        assert REQUESTER in page.locator(".item-context").inner_text()
        page.wait_for_function(IMAGE_BLURRED)
        shoot(page, "2-item-blurred")

        page.locator("#reveal").click()
        page.wait_for_function(IMAGE_REVEALED)
        revealed_at = time.monotonic()
        assert image.get_attribute("src").startswith(f"/media/items/{first.pk}/clear?r=")
        assert "grayscale" in (image.get_attribute("class") or "")
        shoot(page, "3-item-revealed")

        # Nobody touches anything: the reveal window (2 s for this moderator) closes by itself.
        page.wait_for_function(IMAGE_BLURRED, timeout=8_000)
        assert time.monotonic() - revealed_at > 1.0
        assert image.get_attribute("src") == f"/media/items/{first.pk}/preview"

        page.get_by_label("Graphic violence").check()
        page.get_by_label(re.compile("^Reason")).fill("Shows a graphic injury.")
        page.get_by_role("button", name=re.compile("^Remove")).click()
        page.wait_for_url(f"{live_daphne}/console/items/{second.pk}/")
        assert page.locator("#item-image").get_attribute("src") == f"/media/items/{second.pk}/preview"

        page.goto(f"{live_daphne}/console/preferences/")
        assert page.locator("#reveal_seconds").input_value() == "2"
        shoot(page, "4-preferences")
        assert errors == []

    decision = Decision.objects.get(item=first)
    assert (decision.action, decision.policy.code if decision.policy else None) == ("remove", "violence")
    assert decision.reason == "Shows a graphic injury."
    reveal = RevealEvent.objects.get(item=first)
    assert reveal.allowed_seconds == 2
    assert reveal.ended_at is not None
    assert ContentItem.objects.get(pk=second.pk).lease_holder_id == moderator.pk


def test_clear_url_is_for_the_lease_holder_only(live_daphne: str) -> None:
    queue = make_queue()
    item = make_item(queue, seed=3)
    make_user("mo", "moderator")
    make_user("mia", "moderator")

    with chromium_browser() as browser:
        mia_page, _ = new_page(browser)
        sign_in(mia_page, live_daphne, "mia")
        waiting = "() => document.querySelector(\"[data-queue-count='reported-posts']\").textContent === '%s'"
        mia_page.wait_for_function(waiting % "1")
        mia_page.wait_for_function("() => document.body.dataset.live === 'open'")

        mo_page, _ = new_page(browser)
        sign_in(mo_page, live_daphne, "mo")
        open_next_item(mo_page, live_daphne, item.pk)
        # mia's open queue list hears about the claim over the websocket, without a reload.
        mia_page.wait_for_function(waiting % "0", timeout=5_000)

        mo_page.locator("#reveal").click()
        mo_page.wait_for_function(IMAGE_REVEALED)
        clear_url = live_daphne + str(mo_page.locator("#item-image").get_attribute("src"))
        # The token is live: the lease holder can load it...
        own = mo_page.context.request.get(clear_url)
        assert own.status == 200
        assert own.headers["content-type"] == "image/jpeg"

        # ...another moderator, with the exact same URL, cannot.
        response = mia_page.goto(clear_url)
        assert response is not None
        assert response.status == 403
        assert not response.headers["content-type"].startswith("image/")
        assert mia_page.locator("img").count() == 0

        anonymous, _ = new_page(browser)
        anonymous.goto(f"{live_daphne}/console/")
        assert anonymous.url == f"{live_daphne}/login/?next=/console/"
        assert anonymous.get_by_label("Password").is_visible()


def test_keyboard_reveals_and_approves(live_daphne: str) -> None:
    queue = make_queue()
    item = make_item(queue, seed=4)
    make_user("mo", "moderator")
    with chromium_browser() as browser:
        page, errors = new_page(browser)
        sign_in(page, live_daphne, "mo")
        open_next_item(page, live_daphne, item.pk)
        page.wait_for_function(IMAGE_BLURRED)

        page.keyboard.press("?")
        assert page.locator("#help-panel").is_visible()
        page.keyboard.press("/")
        # Typing the reason must not fire shortcuts: it contains r (reveal), a (approve), x (remove), s (skip).
        page.keyboard.type("Fine: a harmless street scene, nothing to remove.")
        assert page.locator("#item-image").get_attribute("data-state") == "blurred"
        assert page.url == f"{live_daphne}/console/items/{item.pk}/"
        page.keyboard.press("Escape")  # leaves the reason box

        page.keyboard.press("r")
        page.wait_for_function(IMAGE_REVEALED)
        page.keyboard.press("a")
        page.wait_for_url(f"{live_daphne}/console/")
        assert "Nothing is waiting" in page.locator(".messages").inner_text()
        assert errors == []

    decision = Decision.objects.get(item=item)
    assert decision.action == "approve"
    assert decision.reason == "Fine: a harmless street scene, nothing to remove."
