"""Moving pictures in a real browser: the blurred grey keyframe sheet comes first and nothing moves; a keyframe is
revealed on purpose; clear playback starts only on purpose, muted, and its seconds are reported; a break stops it."""

from __future__ import annotations

import re

import pytest

from intake import services
from review.models import RevealEvent
from tests.helpers import motioncorpus as mc
from tests.helpers.browser import new_page, open_next_item, shoot, sign_in
from tests.helpers.factories import make_queue, make_user, upload
from tests.helpers.livesrv import chromium_browser

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PLAYING = "() => { const v = document.getElementById('motion-video'); return v && !v.paused && v.currentTime > 0.3; }"


def test_sheet_first_keyframe_reveal_muted_playback_and_a_break_stops_it(live_daphne: str) -> None:
    queue = make_queue()
    item = services.item_ingest(queue=queue, upload=upload(mc.clip([(11, 3.0), (12, 3.0)], audio=True), "v.mp4"),
                                submitted_by=None, severity=3)
    services.item_process(item_id=item.pk)
    make_user("mo", "moderator")
    with chromium_browser() as browser:
        page, errors = new_page(browser)
        sign_in(page, live_daphne, "mo")
        open_next_item(page, live_daphne, item.pk)

        # The contact sheet, blurred and grey; the video element is hidden, has no source and never autoplays.
        still = page.locator("#motion-still")
        assert "/preview" in (still.get_attribute("src") or "")
        assert re.search(r"blur-\d", still.get_attribute("class") or "")
        assert page.locator("#motion-video").is_hidden()
        assert page.evaluate("document.getElementById('motion-video').autoplay") is False
        assert page.locator(".motion__key").count() >= 6  # two scenes of 3 s: at least one a second
        shoot(page, "25-motion-sheet")

        # Keyboard: the next keyframe, then reveal it.
        page.keyboard.press("ArrowRight")
        page.keyboard.press("r")
        page.wait_for_function("() => document.getElementById('motion-still').dataset.state === 'revealed'")
        assert "/keyframes/1/clear" in (still.get_attribute("src") or "")
        page.keyboard.press("Escape")
        page.wait_for_function("() => document.getElementById('motion-still').dataset.state === 'blurred'")

        # Softened playback: the grey clip, blurred.
        page.keyboard.press("p")
        page.wait_for_function(PLAYING)
        video = page.locator("#motion-video")
        assert "/clip" in (video.get_attribute("src") or "")
        assert re.search(r"blur-\d", video.get_attribute("class") or "")
        page.keyboard.press("p")

        # Clear playback on purpose: muted; M turns the sound on.
        page.keyboard.press("v")
        page.wait_for_function(PLAYING)
        assert "/stream?r=" in (video.get_attribute("src") or "")
        assert page.evaluate("document.getElementById('motion-video').muted") is True
        page.keyboard.press("m")
        assert page.evaluate("document.getElementById('motion-video').muted") is False
        page.keyboard.press("]")
        assert page.locator("#motion-speed").inner_text() == "1.5\u00d7"
        page.wait_for_timeout(2500)  # at least one progress report
        shoot(page, "25-motion-clear")

        # A break begins in another tab: playback stops and the break screen opens.
        other = page.context.new_page()
        other.goto(f"{live_daphne}/wellbeing/break/")
        other.get_by_role("button", name="Start my break").click()
        other.get_by_role("heading", name="Time to rest").wait_for()
        page.wait_for_url(f"{live_daphne}/wellbeing/break/")
        assert page.locator("video").count() == 0
        assert [e for e in errors if "409" not in e and "403" not in e] == []

    played = RevealEvent.objects.get(item=item, is_playback=True)
    assert played.ended_at is not None
    assert 1.0 <= played.played_seconds <= 10
    assert RevealEvent.objects.filter(item=item, keyframe=1).exists()
