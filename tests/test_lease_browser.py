"""Issue 21, point 5 in a real browser: while the moderator writes, the console renews the lease; when nothing has
happened for a while it says so calmly before the lease would end, "Keep this item" keeps it, and the decision being
written is recorded long after the first lease would have run out."""

from __future__ import annotations

import re

import pytest

from intake.models import Decision
from review.models import Claim
from tests.helpers.browser import make_queue, new_page, open_next_item, shoot, sign_in
from tests.helpers.factories import make_item, make_user
from tests.helpers.livesrv import chromium_browser

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
LEASE_SECONDS = 12  # renewed at most every 4 s while active; the notice comes 3 s before the end


def test_the_lease_is_renewed_while_writing_and_a_calm_notice_keeps_it(live_daphne: str) -> None:
    queue = make_queue()
    queue.lease_seconds = LEASE_SECONDS
    queue.save(update_fields=["lease_seconds"])
    item = make_item(queue, seed=1)
    make_item(queue, seed=2)
    moderator = make_user("mo", "moderator")
    reason = "Looks like a news photo of a protest; nothing against the rules that I can see here."
    with chromium_browser() as browser:
        page, errors = new_page(browser)
        sign_in(page, live_daphne, "mo")
        open_next_item(page, live_daphne, item.pk)
        notice = page.locator("#lease-note")

        # Writing for longer than the whole lease: it is renewed as the moderator types, and nothing interrupts.
        page.locator("#reason").press_sequentially(reason[:18], delay=1000, timeout=40_000)
        assert notice.is_hidden()

        # Then nothing happens for a while: a calm notice, with the time in the reader's zone, before the end.
        for width, height in ((1366, 900), (390, 844)):
            page.set_viewport_size({"width": width, "height": height})
            page.wait_for_function("() => document.getElementById('lease-note').dataset.state === 'warning'",
                                   timeout=3 * LEASE_SECONDS * 1000)
            text = notice.inner_text()
            assert "Still with this item?" in text and "goes back to the queue at" in text
            assert re.search(r"\d\d:\d\d", text) and "seconds" not in text  # a time, never a countdown
            shoot(page, f"21-5-lease-notice-{width}")
            page.get_by_role("button", name="Keep this item").click()
            page.wait_for_function("() => document.getElementById('lease-note').dataset.state === 'kept'")
            assert notice.is_hidden()

        page.locator("#reason").press_sequentially(reason[18:], delay=5)
        page.get_by_label("Go back to the queue list after this decision").check()
        page.get_by_role("button", name=re.compile("^Approve")).click()
        page.wait_for_url(f"{live_daphne}/console/")
        assert "no longer yours" not in page.content()
        assert errors == []

    decision = Decision.objects.get(item=item)
    assert (decision.action, decision.reason, decision.reviewer_id) == ("approve", reason, moderator.pk)
    claim = Claim.objects.get(item=item)
    assert claim.ended_at is not None
    assert (claim.ended_at - claim.claimed_at).total_seconds() > 2 * LEASE_SECONDS  # far past the first lease
