"""Shared by the browser tests: a page per browser context, signing in, screenshots, and the queue they review.

Screenshots land in screenshots/ at the top of the repository (gitignored) so a person can look at what a moderator
sees.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from tests.helpers.factories import PASSWORD, QueueFactory

SCREENSHOTS = Path(__file__).resolve().parents[2] / "screenshots"  # the repository's: tests/helpers/browser.py
WAIT_MS = 10_000

PURPOSE = "Check reported posts against the community rules before they are shown again."
REQUESTER = "Trust & Safety, Example Social"

IMAGE_REVEALED = """() => {
    const img = document.getElementById('item-image');
    return img.dataset.state === 'revealed' && img.getAttribute('src').includes('/clear?r=')
        && img.complete && img.naturalWidth > 0;
}"""
IMAGE_BLURRED = """() => {
    const img = document.getElementById('item-image');
    return img.dataset.state === 'blurred' && img.getAttribute('src').endsWith('/preview')
        && img.complete && img.naturalWidth > 0;
}"""


def new_page(browser: Any, **context_options: Any) -> tuple[Any, list[str]]:
    """A fresh browser context (its own cookies; Playwright's context options may change its screen) and page;
    collects console errors, CSP reports included."""
    options = {"viewport": {"width": 1280, "height": 900}, "reduced_motion": "reduce", **context_options}
    context = browser.new_context(**options)
    context.set_default_timeout(WAIT_MS)
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    return page, errors


def sign_in(page: Any, base_url: str, username: str) -> None:
    page.goto(f"{base_url}/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{base_url}/console/")


def open_next_item(page: Any, base_url: str, item_id: int) -> None:
    """Press the console's "Next item" (a claim, through the page) and wait for that item's page."""
    page.get_by_role("button", name=re.compile("^Next item")).click()
    page.wait_for_url(f"{base_url}/console/items/{item_id}/")


def shoot(page: Any, name: str) -> None:
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def make_queue() -> Any:
    # Not type-checked below: factory_boy ships no types
    return QueueFactory(  # type: ignore[no-untyped-call]
        slug="reported-posts", name="Reported posts", purpose=PURPOSE, requester=REQUESTER
    )
