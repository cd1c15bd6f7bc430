"""A moderator hits a scheduled break in a real browser: the console says it calmly, claiming stops (page and API),
the break screen shows until the server ends the break, then work goes on. Short durations set in the policy (the
server is another process, so no time-machine); screenshots land in /work/main/screenshots/."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from intake.models import ContentItem
from review.models import Claim
from tests.helpers.browser import new_page, open_next_item, shoot, sign_in
from tests.helpers.factories import make_item, make_queue, make_user
from tests.helpers.livesrv import chromium_browser
from tests.helpers.wellbeing import set_policy
from wellbeing.models import Break

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
S = timedelta(seconds=1)
BANNER_SAYS = (
    "() => { const b = document.getElementById('break-banner'); return b && !b.hidden && b.textContent.includes(%r); }"
)


def test_a_moderator_hits_a_break_and_cannot_claim_until_it_ends(live_daphne: str) -> None:
    # A break is due 3 s into the shift, the window to start it lasts 2 s, the break 6 s.
    set_policy(break_every=3 * S, break_window=2 * S, break_length=6 * S)
    queue = make_queue(slug="reported-posts", name="Reported posts")
    first = make_item(queue, seed=1)
    second = make_item(queue, seed=2)
    moderator = make_user("mo", "moderator")
    with chromium_browser() as browser:
        page, errors = new_page(browser)
        sign_in(page, live_daphne, "mo")
        open_next_item(page, live_daphne, first.pk)  # the shift starts with this claim
        page.get_by_label("Go back to the queue list after this decision").check()
        page.get_by_role("button", name=re.compile("^Approve")).click()
        page.wait_for_url(f"{live_daphne}/console/")

        # Pushed over the websocket: a calm notice with a choice, no countdown.
        page.wait_for_function(BANNER_SAYS % "A break is due", timeout=6_000)
        banner = page.locator("#break-banner")
        assert banner.get_by_role("button", name="Start my break").is_visible()
        assert not re.search(r"\d+\s*(s|sec|seconds?)\b", banner.inner_text())
        shoot(page, "5-break-due")

        # The window passes without the moderator starting it: the break starts anyway, and the console shows it.
        page.wait_for_url(f"{live_daphne}/wellbeing/break/", timeout=6_000)
        assert page.get_by_role("heading", name="Time to rest").is_visible()
        assert page.locator("img").count() == 0
        shoot(page, "6-break-screen")

        # Claiming is refused by the server, through the API as through the page.
        csrf = next(c["value"] for c in page.context.cookies() if c["name"] == "csrftoken")
        refused = page.request.post(f"{live_daphne}/api/v1/queues/reported-posts/claim/",
                                    headers={"X-CSRFToken": csrf, "Referer": live_daphne + "/console/"})
        assert refused.status == 409 and refused.json()["error"] in {"break_due", "on_break"}
        page.goto(f"{live_daphne}/console/")
        page.wait_for_url(f"{live_daphne}/wellbeing/break/")  # the queue list sends a resting moderator back

        # The server ends the break; the screen says welcome back and offers the optional check-in.
        page.wait_for_function("() => !document.getElementById('rest-over').hidden", timeout=10_000)
        assert page.get_by_role("heading", name="Welcome back").is_visible()
        shoot(page, "7-break-over")
        page.get_by_role("link", name="Skip, back to the queues").click()
        page.wait_for_url(f"{live_daphne}/console/")
        open_next_item(page, live_daphne, second.pk)

        page.goto(f"{live_daphne}/wellbeing/")
        shoot(page, "8-my-wellbeing")
        assert errors == []

    taken = Break.objects.get(reviewer=moderator)
    assert taken.kind == "scheduled" and taken.started_automatically and taken.started_at is not None
    assert Claim.objects.filter(reviewer=moderator).count() == 2
    assert ContentItem.objects.get(pk=second.pk).lease_holder_id == moderator.pk
