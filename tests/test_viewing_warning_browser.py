"""Issue 21, point 11 in a real browser: for a category the moderator asked about, R shows a card naming it and
nothing clear is fetched until they choose "Reveal it"."""

from __future__ import annotations

import pytest

from review import viewing
from review.models import RevealEvent
from tests.helpers.browser import IMAGE_REVEALED, make_queue, new_page, open_next_item, shoot, sign_in
from tests.helpers.factories import make_item, make_user
from tests.helpers.livesrv import chromium_browser

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_card_names_the_category_before_the_reveal(live_daphne: str) -> None:
    queue = make_queue()
    item = make_item(queue, seed=1, category="violence", severity=3)
    moderator = make_user("mo", "moderator")
    viewing.viewing_preference_update(user=moderator, blur_level=4, reveal_seconds=10, grayscale_on_reveal=True,
                                            per_category={"violence": {"blur_level": 6, "warn": True}})
    with chromium_browser() as browser:
        page, errors = new_page(browser)
        clear_requests: list[str] = []
        page.on("request", lambda request: clear_requests.append(request.url) if "/clear" in request.url else None)
        sign_in(page, live_daphne, "mo")
        open_next_item(page, live_daphne, item.pk)
        assert "blur-6" in (page.locator("#item-image").get_attribute("class") or "")
        page.keyboard.press("r")
        card = page.locator("#reveal-warning")
        card.wait_for(state="visible")
        assert "Reported as Violence and gore" in card.inner_text()
        assert page.locator("#item-image").get_attribute("data-state") == "blurred" and clear_requests == []
        for width, height in ((1366, 900), (390, 844)):
            page.set_viewport_size({"width": width, "height": height})
            shoot(page, f"21-11-warning-card-{width}")
        page.get_by_role("button", name="Not now").click()
        assert card.is_hidden() and clear_requests == []
        page.keyboard.press("r")
        page.get_by_role("button", name="Reveal it").click()
        page.wait_for_function(IMAGE_REVEALED)
        assert len(clear_requests) == 1
        assert errors == []
    assert RevealEvent.objects.filter(item=item, reviewer=moderator).count() == 1
