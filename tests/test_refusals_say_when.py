"""Issue 21, point 6: refusals for a break, a cool-down and the cap say precisely when trying again can work:
`Retry-After` and `retry_at` (ISO 8601 with its offset) on the API, a sentence with the date and time zone, and on the
console a <time> that the page writes out in the reader's own zone."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.test import Client

from review.services import item_claim
from tests.helpers.factories import logged_in, make_item, make_queue
from tests.helpers.wellbeing import T0, finish, ready_item, set_policy
from wellbeing import services

pytestmark = pytest.mark.django_db
MIN = timedelta(minutes=1)



def claim_api(client: Client, slug: str):
    return client.post(f"/api/v1/queues/{slug}/claim/")


def test_a_claim_during_a_break_says_when_it_ends(moderator):
    queue = make_queue(slug="work")
    ready_item(queue)
    client = logged_in(moderator)
    with time_machine.travel(T0, tick=False):
        services.break_start(reviewer=moderator, minutes=10)
        response = claim_api(client, "work")
    assert response.status_code == 409
    body = response.json()
    assert body["error"] == "on_break" and body["retry_at"] == "2026-03-02T09:10:00+00:00"
    assert response["Retry-After"] == "600"
    assert "Mon 2 Mar 2026, 09:10 UTC" in body["detail"]
    # The break screen gives the end as a moment the page writes out in the reader's own zone.
    with time_machine.travel(T0, tick=False):
        screen = client.get("/wellbeing/break/").content.decode()
    assert '<time datetime="2026-03-02T09:10:00+00:00" data-local-time="time">09:10</time>' in screen


def test_a_cool_down_says_when_the_next_severe_item_can_come(moderator):
    set_policy(cooldown=timedelta(seconds=90))
    queue = make_queue(slug="work")
    for _ in range(2):
        ready_item(queue, severity=3)
    client = logged_in(moderator)
    with time_machine.travel(T0, tick=False) as clock:
        finish(item_claim(reviewer=moderator, queue=queue))
        clock.move_to(T0 + timedelta(seconds=30))
        response = claim_api(client, "work")
        page = client.post("/console/queues/work/next/", follow=True).content.decode()
    body = response.json()
    assert response.status_code == 409 and body["error"] == "cooldown"
    assert body["retry_at"] == "2026-03-02T09:01:30+00:00" and response["Retry-After"] == "60"
    assert "Mon 2 Mar 2026, 09:01:30 UTC" in body["detail"]
    # The console says it too, as a <time> that console.js writes out in the reader's own zone.
    assert '<time datetime="2026-03-02T09:01:30+00:00" data-local-time>' in page


def test_the_cap_says_when_a_new_shift_can_start(moderator):
    set_policy(exposure_cap_units=10, item_seconds_min=300, item_seconds_max=300, cooldown=timedelta(0))
    queue = make_queue(slug="work")
    for _ in range(3):
        ready_item(queue, severity=3)
    client = logged_in(moderator)
    with time_machine.travel(T0, tick=False) as clock:
        finish(item_claim(reviewer=moderator, queue=queue))  # 5 of 10 minutes
        clock.move_to(T0 + MIN)
        finish(item_claim(reviewer=moderator, queue=queue))  # 10 of 10
        clock.move_to(T0 + 2 * MIN)
        response = claim_api(client, "work")
    body = response.json()
    assert response.status_code == 409 and body["error"] == "cap_reached"
    # The earliest a new shift can start: after ending this one now and the 11 hours' rest.
    assert body["retry_at"] == "2026-03-02T20:02:00+00:00" and response["Retry-After"] == str(11 * 3600)
    assert "Mon 2 Mar 2026, 20:02 UTC" in body["detail"]


def test_the_clear_image_refused_during_a_break_says_when(moderator):
    queue = make_queue(slug="work")
    make_item(queue, seed=1)
    client = logged_in(moderator)
    claim = item_claim(reviewer=moderator, queue=queue)
    url = client.post(f"/api/v1/items/{claim.item_id}/reveal/").json()["url"]
    services.break_start(reviewer=moderator, minutes=5)
    response = client.get(url)
    assert response.status_code == 409 and 299 <= int(response["Retry-After"]) <= 300
    reveal = client.post(f"/api/v1/items/{claim.item_id}/reveal/")
    assert reveal.status_code == 409 and "retry_at" in reveal.json() and reveal.has_header("Retry-After")
