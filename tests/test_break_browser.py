"""Issue 21, point 1 in a real browser: a break that begins while the clear image is on screen stops all viewing.
The console softens and opens the break screen, the clear image and new reveals are refused by the server, the item
goes back to the queue, and after the break the moderator comes back to a calm page, not to the picture."""

from __future__ import annotations

import re

import pytest

from intake.models import ContentItem
from review.models import Claim, RevealEvent
from tests.helpers.browser import IMAGE_REVEALED, make_queue, new_page, shoot, sign_in
from tests.helpers.factories import make_item, make_user
from tests.helpers.livesrv import chromium_browser
from wellbeing.models import Break

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_break_begun_in_another_tab_stops_the_clear_image_and_gives_the_item_back(
    live_daphne: str,
) -> None:
    queue = make_queue()
    item = make_item(queue, seed=1, category="violence", severity=3)
    make_item(queue, seed=2)
    moderator = make_user("mo", "moderator")
    with chromium_browser() as browser:
        page, errors = new_page(browser)
        sign_in(page, live_daphne, "mo")
        page.get_by_role("button", name=re.compile("^Next item")).click()
        item_url = f"{live_daphne}/console/items/{item.pk}/"
        page.wait_for_url(item_url)
        page.locator("#reveal").click()
        page.wait_for_function(IMAGE_REVEALED)
        clear_url = page.locator("#item-image").get_attribute("src")
        assert clear_url and "/clear?r=" in clear_url  # the token itself travels in a cookie (README, Security)

        # The break starts in another tab while the picture is clear in this one.
        other = page.context.new_page()
        other.goto(f"{live_daphne}/wellbeing/break/")
        other.get_by_role("button", name="Start my break").click()
        other.get_by_role("heading", name="Time to rest").wait_for()

        # This tab hears of it over the websocket and opens the break screen: no image on it.
        page.wait_for_url(f"{live_daphne}/wellbeing/break/")
        assert page.get_by_role("heading", name="Time to rest").is_visible()
        assert page.locator("img").count() == 0

        # The server refuses the clear image granted before the break, and any new reveal.
        status = page.evaluate("url => fetch(url, {cache: 'no-store'}).then(r => r.status)", clear_url)
        assert status == 409
        csrf = next(c["value"] for c in page.context.cookies() if c["name"] == "csrftoken")
        refused = page.request.post(f"{live_daphne}/api/v1/items/{item.pk}/reveal/",
                                    headers={"X-CSRFToken": csrf, "Referer": item_url})
        assert refused.status == 409 and refused.json()["error"] == "on_break"
        assert "went back to its queue" in page.locator("#rest-held").inner_text()

        # Every console page is the break screen meanwhile.
        page.goto(item_url)
        page.wait_for_url(f"{live_daphne}/wellbeing/break/")
        for width, height in ((1366, 900), (390, 844)):
            page.set_viewport_size({"width": width, "height": height})
            shoot(page, f"21-1-break-screen-{width}")

        # A voluntary break can end early; then a calm page, not the picture.
        page.get_by_role("button", name="I am ready to go back").click()
        page.get_by_role("heading", name="Welcome back").wait_for()
        page.goto(item_url)
        page.wait_for_url(f"{live_daphne}/console/")
        assert page.locator("#item-image").count() == 0
        assert "no longer yours" in page.locator(".messages").inner_text()
        for width, height in ((1366, 900), (390, 844)):
            page.set_viewport_size({"width": width, "height": height})
            shoot(page, f"21-1-after-break-{width}")
        assert [e for e in errors if "409 (Conflict)" not in e] == []  # the refused fetch above is the only error

    claim = Claim.objects.get(reviewer=moderator)
    assert claim.outcome == Claim.Outcome.RELEASED and claim.ended_at is not None
    assert ContentItem.objects.get(pk=item.pk).status == ContentItem.Status.READY
    assert RevealEvent.objects.filter(claim=claim, ended_at__isnull=True).count() == 0
    assert Break.objects.get(reviewer=moderator).kind == Break.Kind.VOLUNTARY
