"""Issue 21, point 9 in a real browser: N on the queue list takes the next item, the decision is confirmed on the
next page, and My limits refuses in the browser what the server would refuse (a cap of 0)."""

from __future__ import annotations

import pytest

from tests.helpers.browser import make_queue, new_page, shoot, sign_in
from tests.helpers.factories import make_item, make_user
from tests.helpers.livesrv import chromium_browser

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_queue_list_key_the_confirmation_and_the_limits_minimum(live_daphne: str) -> None:
    queue = make_queue()
    first = make_item(queue, seed=1)
    second = make_item(queue, seed=2)
    make_user("mo", "moderator")
    with chromium_browser() as browser:
        page, errors = new_page(browser)
        sign_in(page, live_daphne, "mo")
        assert "takes the next item" in page.locator("#queue-keys").inner_text()
        page.keyboard.press("n")
        page.wait_for_url(f"{live_daphne}/console/items/{first.pk}/")
        page.keyboard.press("a")
        page.wait_for_url(f"{live_daphne}/console/items/{second.pk}/")
        assert page.locator(".message--success").inner_text() == f"Saved: Item {first.pk} approved."
        for width, height in ((1366, 900), (390, 844)):
            page.set_viewport_size({"width": width, "height": height})
            shoot(page, f"21-9-confirmation-{width}")

        page.goto(f"{live_daphne}/wellbeing/limits/")
        cap = page.get_by_label("Exposure limit per shift")
        cap.fill("0")
        page.get_by_role("button", name="Save my limits").click()
        assert page.url == f"{live_daphne}/wellbeing/limits/"
        assert cap.evaluate("el => el.validity.rangeUnderflow")  # the browser asks for at least 10, as the server
        cap.fill("500")
        assert cap.evaluate("el => el.validity.rangeOverflow")  # and no looser than the organisation's 240
        shoot(page, "21-9-limits-390")
        assert errors == []
