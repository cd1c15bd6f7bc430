"""Issue 21, point 8 in a real browser: the console on a 390 px touch phone. A compact header, the purpose block
folded to a summary that still names the requester, the image in the first screen, a decision bar that stays at the
bottom of the screen, and no keyboard legend on a touch screen (while a desktop keeps all of it)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from intake.models import Decision
from tests.helpers.browser import PURPOSE, REQUESTER, SCREENSHOTS, make_queue, new_page, open_next_item, shoot, sign_in
from tests.helpers.factories import make_item, make_user
from tests.helpers.livesrv import chromium_browser

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
PHONE = {"width": 390, "height": 844}


def phone_page(browser: Any) -> tuple[Any, list[str]]:
    return new_page(browser, viewport=PHONE, is_mobile=True, has_touch=True, device_scale_factor=2)


def shoot_screen(page: Any, name: str) -> None:
    """What the phone shows, one screen (a full-page capture drops the touch emulation, and with it the touch CSS)."""
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))


def box(page: Any, selector: str) -> dict[str, float]:
    found: dict[str, float] = page.locator(selector).first.bounding_box()
    assert found is not None, selector
    return found


def test_the_console_on_a_phone(live_daphne: str) -> None:
    queue = make_queue()
    item = make_item(queue, seed=1, category="violence", severity=2)
    make_item(queue, seed=2)
    moderator = make_user("mo", "moderator")
    with chromium_browser() as browser:
        page, errors = phone_page(browser)
        sign_in(page, live_daphne, "mo")
        open_next_item(page, live_daphne, item.pk)
        page.wait_for_function("() => !document.getElementById('item-purpose').open")
        shoot_screen(page, "21-8-phone-item-390-first-screen")

        assert box(page, ".site-header")["height"] <= 60  # one compact row
        # The purpose block is folded, and its summary still says who asked for the work; one tap opens it.
        summary = page.locator("#item-purpose summary")
        assert REQUESTER in summary.inner_text() and not page.get_by_text(PURPOSE).is_visible()
        image = box(page, "#item-image")
        assert image["y"] < PHONE["height"] / 2  # the image starts in the first half of the first screen
        # The decision bar is on screen from the start, and stays there when the page scrolls.
        for scroll in (0, 10_000):
            page.evaluate(f"window.scrollTo(0, {scroll})")
            bar = box(page, ".actions")
            assert bar["y"] >= 0 and bar["y"] + bar["height"] <= PHONE["height"] + 1, (scroll, bar)
            assert page.get_by_role("button", name=re.compile("^Approve")).is_visible()
        shoot_screen(page, "21-8-phone-item-390-scrolled")
        # No keyboard legend and no key hints on a touch screen.
        assert not page.locator(".shortcuts").is_visible()
        assert page.locator("#decision-form kbd:visible").count() == 0
        page.evaluate("window.scrollTo(0, 0)")
        summary.tap()
        assert page.get_by_text(PURPOSE).is_visible()
        shoot_screen(page, "21-8-phone-item-390-purpose-open")
        page.get_by_role("button", name=re.compile("^Approve")).tap()
        page.wait_for_url(re.compile(r"/console/items/\d+/$"))
        assert errors == []

        # The same page on a desktop keeps the purpose open, the legend and the key hints, and no fixed bar.
        desktop = browser.new_context(viewport={"width": 1366, "height": 900}).new_page()
        sign_in(desktop, live_daphne, "mo")
        desktop.goto(page.url)
        assert desktop.locator("#item-purpose").evaluate("el => el.open")
        assert desktop.get_by_text(PURPOSE).is_visible() and desktop.locator(".shortcuts").is_visible()
        assert desktop.locator(".actions").evaluate("el => getComputedStyle(el).position") == "static"
        shoot(desktop, "21-8-desktop-item-1366")
    assert Decision.objects.filter(item=item, reviewer=moderator, action="approve").exists()
