"""A break stops all viewing (issue 21, point 1): reveals and clear renditions are refused on the server with 409
`on_break`, the item in hand goes back to its queue, every console page is the break screen, and after the break
the reviewer comes back to a calm page, not to the picture. The browser side is in test_break_browser.py."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine

from core.errors import ReviewError
from intake.models import ContentItem
from oversight import team_services
from review.models import Claim, RevealEvent
from review.services import item_claim
from review.viewing import reveal_start
from tests.helpers.factories import logged_in, make_item, make_queue
from tests.helpers.wellbeing import T0, finish, set_policy
from wellbeing import services
from wellbeing.models import Break, ExposureEntry, Team, TeamMembership

pytestmark = pytest.mark.django_db
MIN = timedelta(minutes=1)



@pytest.fixture
def queue():
    queue = make_queue(slug="work")
    for seed in range(3):
        make_item(queue, seed=seed)
    return queue


def test_a_voluntary_break_refuses_reveals_and_the_clear_image_granted_before_it(moderator, queue):
    claim = item_claim(reviewer=moderator, queue=queue)
    client = logged_in(moderator)
    granted = client.post(f"/api/v1/items/{claim.item_id}/reveal/")
    assert granted.status_code == 201
    url = granted.json()["url"]
    assert client.get(url).status_code == 200  # before the break: the clear image, inside the logged reveal

    services.break_start(reviewer=moderator, minutes=10)

    image = client.get(url)
    assert image.status_code == 409 and b"break" in image.content  # the token from before the break is worthless
    again = client.post(f"/api/v1/items/{claim.item_id}/reveal/")
    assert again.status_code == 409 and again.json()["error"] == "on_break"
    assert RevealEvent.objects.filter(claim=claim).count() == 1  # the refused reveal was not granted
    assert RevealEvent.objects.get(claim=claim).ended_at is not None  # the open one ended with the break


def test_the_item_in_hand_goes_back_to_the_queue_and_counts_only_up_to_the_break(moderator, moderator2, queue):
    with time_machine.travel(T0, tick=False) as clock:
        claim = item_claim(reviewer=moderator, queue=queue)
        clock.move_to(T0 + 2 * MIN)
        services.break_start(reviewer=moderator, minutes=10)
        claim.refresh_from_db()
        item = ContentItem.objects.get(pk=claim.item_id)
        assert claim.outcome == Claim.Outcome.RELEASED and claim.ended_at == T0 + 2 * MIN
        assert item.status == ContentItem.Status.READY and item.lease_holder_id is None
        # Someone else can take it at once: nothing waits on a person who is resting.
        assert item_claim(reviewer=moderator2, queue=queue).item_id == item.pk
        clock.move_to(T0 + 13 * MIN)
        services.exposure_settle(reviewer=moderator)
    entry = ExposureEntry.objects.get(claim=claim)
    assert entry.screen_seconds == 120  # the two minutes on screen, not the break


def test_the_service_refuses_reveals_during_any_break(moderator, queue):
    """Also the scheduled break: the rule is the break schedule, whatever started the break."""
    set_policy(break_every=timedelta(minutes=10), break_window=timedelta(0), break_length=timedelta(minutes=5))
    with time_machine.travel(T0, tick=False) as clock:
        finish(item_claim(reviewer=moderator, queue=queue))
        clock.move_to(T0 + 4 * MIN)
        claim = item_claim(reviewer=moderator, queue=queue)
        reveal_start(item=claim.item, reviewer=moderator)
        clock.move_to(T0 + 11 * MIN)  # the break is due and its window has passed: it starts after this item
        services.break_start(reviewer=moderator)  # ... or now, with the item in hand
        with pytest.raises(ReviewError) as refused:
            reveal_start(item=claim.item, reviewer=moderator)
    assert refused.value.code == "on_break" and refused.value.status == 409
    assert refused.value.retry_at == Break.objects.get(reviewer=moderator).ends_at


def test_a_break_sent_by_the_lead_gives_the_item_back(moderator, lead, queue):
    from wellbeing.models import Department

    team = Team.objects.create(name="A", department=Department.objects.create(name="D"))
    team.leads.add(lead)
    TeamMembership.objects.create(team=team, user=moderator)
    claim = item_claim(reviewer=moderator, queue=queue)
    team_services.lead_send_on_break(lead=lead, team=team, reviewer_id=moderator.pk)
    claim.refresh_from_db()
    assert claim.ended_at is not None and claim.outcome == Claim.Outcome.RELEASED
    response = logged_in(moderator).post(f"/api/v1/items/{claim.item_id}/reveal/")
    assert response.status_code == 409 and response.json()["error"] == "on_break"


@pytest.mark.parametrize("path", ["/console/", "/console/preferences/", "/console/items/{item}/"])
def test_every_console_page_is_the_break_screen_during_a_break(moderator, queue, path):
    claim = item_claim(reviewer=moderator, queue=queue)
    client = logged_in(moderator)
    services.break_start(reviewer=moderator, minutes=5)
    response = client.get(path.format(item=claim.item_id))
    assert response.status_code == 302 and response["Location"] == "/wellbeing/break/"
    assert "no-store" in response["Cache-Control"]
    screen = client.get("/wellbeing/break/")
    assert b"went back to its queue" in screen.content and b"item-image" not in screen.content


def test_after_the_break_the_item_page_is_a_calm_page_not_the_picture(moderator, queue):
    claim = item_claim(reviewer=moderator, queue=queue)
    client = logged_in(moderator)
    services.break_start(reviewer=moderator, minutes=5)
    services.break_end(reviewer=moderator)
    response = client.get(f"/console/items/{claim.item_id}/", follow=True)
    assert response.redirect_chain[-1][0] == "/console/"
    assert b"item-image" not in response.content and b"media/items" not in response.content
