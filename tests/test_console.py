"""Console pages: who reaches them, what they show, and that deciding leads to the next item."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from intake.models import ContentItem, Decision
from review.models import Claim
from review.services import item_claim
from tests.helpers.factories import logged_in, make_item, make_queue

pytestmark = pytest.mark.django_db



CONSOLE_PAGES = ["/console/", "/console/preferences/"]


@pytest.mark.parametrize("path", CONSOLE_PAGES)
def test_anonymous_is_sent_to_login(path):
    response = Client().get(path)
    assert response.status_code == 302 and response["Location"].startswith("/login/")


@pytest.mark.parametrize("path", CONSOLE_PAGES)
def test_non_reviewers_are_refused(path, health, requester, stranger):
    for user in (health, requester, stranger):
        assert logged_in(user).get(path).status_code == 403


def test_post_endpoints_refuse_non_reviewers(health, requester, stranger, moderator):
    queue = make_queue(slug="q")
    item = make_item(queue, seed=1)
    for user in (health, requester, stranger):
        client = logged_in(user)
        assert client.post("/console/queues/q/next/").status_code == 403
        assert client.post(f"/console/items/{item.pk}/decide/", {"action": "approve"}).status_code == 403
        assert client.post(f"/console/items/{item.pk}/release/").status_code == 403
        assert client.get(f"/console/items/{item.pk}/").status_code == 403
    assert Client().post("/console/queues/q/next/").status_code == 302
    assert not Claim.objects.exists()


def test_home_sends_each_role_somewhere_sensible(moderator, lead, health, requester):
    assert logged_in(moderator).get("/")["Location"] == "/console/"
    assert logged_in(lead).get("/")["Location"] == "/console/"
    assert logged_in(requester).get("/")["Location"] == "/api/docs/"
    assert logged_in(health).get("/").status_code == 200
    assert Client().get("/")["Location"] == "/login/"


def test_queue_list_declares_purpose_and_requester_and_no_speed_metrics(moderator):
    queue = make_queue(slug="reports", purpose="Check reported posts for graphic violence before re-publication.",
                       requester="Trust & Safety, Riverbank Social")
    make_item(queue, seed=1)
    html = logged_in(moderator).get("/console/").content.decode()
    assert "Check reported posts for graphic violence" in html
    assert "Trust &amp; Safety, Riverbank Social" in html
    assert 'data-queue-count="reports"' in html
    for pressure in ("per hour", "/hour", "leaderboard", "ranking", "throughput", "average time"):
        assert pressure not in html.lower()


def test_claim_shows_blurred_item_with_purpose_and_policies(moderator):
    queue = make_queue(slug="reports")
    item = make_item(queue, seed=1)
    client = logged_in(moderator)
    response = client.post("/console/queues/reports/next/")
    assert response.status_code == 302 and response["Location"] == f"/console/items/{item.pk}/"
    html = client.get(response["Location"]).content.decode()
    assert queue.purpose in html and "Trust &amp; Safety" in html
    assert f"/media/items/{item.pk}/preview" in html
    assert f"/media/items/{item.pk}/clear" not in html  # the clear rendition needs a logged reveal first
    assert 'data-state="blurred"' in html
    for policy in queue.policies.all():
        assert policy.title in html
    # Keyboard shortcuts are listed on the page.
    for key in ("R", "A", "X", "E", "O", "S"):
        assert re.search(rf"<kbd>{key}</kbd>", html), key
    assert "per hour" not in html.lower()


def test_decide_then_next_item(moderator):
    queue = make_queue(slug="reports")
    first = make_item(queue, seed=1)
    second = make_item(queue, seed=2)
    client = logged_in(moderator)
    client.post("/console/queues/reports/next/")
    response = client.post(f"/console/items/{first.pk}/decide/",
                           {"action": "remove", "policy": "violence", "reason": "graphic"})
    assert response["Location"] == f"/console/items/{second.pk}/"
    decision = Decision.objects.get(item=first)
    assert (decision.action, decision.policy.code if decision.policy else None) == ("remove", "violence")
    response = client.post(f"/console/items/{second.pk}/decide/", {"action": "approve"})
    assert response["Location"] == "/console/"
    follow = client.get("/console/")
    assert "Nothing is waiting" in follow.content.decode()


def test_decision_errors_keep_the_item(moderator):
    queue = make_queue(slug="reports")
    item = make_item(queue, seed=1)
    client = logged_in(moderator)
    client.post("/console/queues/reports/next/")
    response = client.post(f"/console/items/{item.pk}/decide/", {"action": "remove", "reason": "x"}, follow=True)
    assert "must cite one of the queue" in response.content.decode()
    item.refresh_from_db()
    assert item.status == ContentItem.Status.IN_REVIEW and item.lease_holder_id == moderator.pk


def test_someone_elses_item_page_is_not_shown(moderator, moderator2):
    queue = make_queue(slug="reports")
    item = make_item(queue, seed=1)
    item_claim(reviewer=moderator, queue=queue)
    response = logged_in(moderator2).get(f"/console/items/{item.pk}/")
    assert response.status_code == 302 and response["Location"] == "/console/"
    assert logged_in(moderator2).post(f"/console/items/{item.pk}/decide/", {"action": "approve"}).status_code == 302
    assert not Decision.objects.exists()


def test_skip_gives_the_item_back(moderator):
    queue = make_queue(slug="reports")
    item = make_item(queue, seed=1)
    client = logged_in(moderator)
    client.post("/console/queues/reports/next/")
    assert client.post(f"/console/items/{item.pk}/release/")["Location"] == "/console/"
    item.refresh_from_db()
    assert item.status == ContentItem.Status.READY


def test_preferences_page_offers_only_stricter_values(moderator, settings):
    settings.VEIL_MIN_BLUR_LEVEL = 3
    client = logged_in(moderator)
    html = client.get("/console/preferences/").content.decode()
    assert 'value="2"' not in re.sub(r'name="reveal_seconds"[\s\S]*', "", html)
    response = client.post("/console/preferences/", {"blur_level": "1", "reveal_seconds": "5"}, follow=True)
    assert "organisation" in response.content.decode()
    response = client.post("/console/preferences/", {"blur_level": "5", "reveal_seconds": "4",
                                                     "grayscale_on_reveal": "on"})
    assert response.status_code == 302
    moderator.viewing.refresh_from_db()
    assert (moderator.viewing.blur_level, moderator.viewing.reveal_seconds) == (5, 4)


def test_pages_carry_security_headers(moderator):
    response = logged_in(moderator).get("/console/")
    assert "default-src 'self'" in response["Content-Security-Policy"]
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
