"""Issue 21, point 5 on the server: the console renews the lease while the moderator is at it; only the live lease
can be renewed; a decision that comes too late is not thrown away (what was written comes back). The browser side is
in test_lease_browser.py."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from intake.models import ContentItem, Decision
from review.models import Claim
from review.services import item_claim, lease_renew
from tests.helpers.factories import logged_in, make_queue
from tests.helpers.wellbeing import ready_item

pytestmark = pytest.mark.django_db



@pytest.fixture
def queue():
    queue = make_queue(slug="work", lease_seconds=60)
    for _ in range(2):
        ready_item(queue)
    return queue


def test_renewing_runs_the_lease_its_full_length_again_from_now(moderator, queue):
    start = timezone.now()
    with time_machine.travel(start, tick=False) as clock:
        claim = item_claim(reviewer=moderator, queue=queue)
        clock.move_to(start + timedelta(seconds=50))
        response = logged_in(moderator).post(f"/api/v1/items/{claim.item_id}/lease/")
        assert response.status_code == 200 and response["Cache-Control"] == "no-store"
        expected = start + timedelta(seconds=110)
        assert response.json() == {"expires_at": expected.isoformat(), "seconds": 60}
        claim.refresh_from_db()
        assert claim.expires_at == expected == ContentItem.objects.get(pk=claim.item_id).lease_expires_at
        clock.move_to(start + timedelta(seconds=100))  # past the first lease, inside the renewed one
        response = logged_in(moderator).post(f"/console/items/{claim.item_id}/decide/",
                                             {"action": "approve", "then": "stop"})
    assert response.status_code == 302 and response["Location"] == "/console/"
    assert Decision.objects.get(item_id=claim.item_id).action == "approve"


def test_only_the_live_lease_is_renewed(moderator, moderator2, queue):
    start = timezone.now()
    with time_machine.travel(start, tick=False) as clock:
        claim = item_claim(reviewer=moderator, queue=queue)
        refused = logged_in(moderator2).post(f"/api/v1/items/{claim.item_id}/lease/")
        assert refused.status_code == 409 and refused.json()["error"] == "not_lease_holder"
        clock.move_to(start + timedelta(seconds=61))  # ran out: it may be someone else's by now
        late = logged_in(moderator).post(f"/api/v1/items/{claim.item_id}/lease/")
        assert late.status_code == 409 and late.json()["error"] == "lease_expired"
        from core.errors import ReviewError

        with pytest.raises(ReviewError):
            lease_renew(item=claim.item, reviewer=moderator)
    assert Claim.objects.get(pk=claim.pk).expires_at == claim.expires_at


def test_a_decision_after_the_lease_ran_out_gives_back_what_was_written(moderator, queue):
    start = timezone.now()
    with time_machine.travel(start, tick=False) as clock:
        claim = item_claim(reviewer=moderator, queue=queue)
        clock.move_to(start + timedelta(seconds=61))
        client = logged_in(moderator)
        response = client.post(f"/console/items/{claim.item_id}/decide/",
                               {"action": "escalate", "reason": "The caption names a child; please check."},
                               follow=True)
    assert response.redirect_chain[-1][0] == "/console/"
    assert "The caption names a child; please check." in response.content.decode()
    assert not Decision.objects.exists()


def test_renewing_never_puts_a_due_break_off_for_good(moderator, queue):
    from tests.helpers.wellbeing import T0, finish, set_policy

    set_policy(break_every=timedelta(minutes=10), break_window=timedelta(minutes=1))
    for _ in range(6):
        ready_item(queue)
    with time_machine.travel(T0, tick=False) as clock:
        for minute in (0, 3, 6, 9):  # working steadily, never idle for a break's length
            clock.move_to(T0 + timedelta(minutes=minute))
            finish(item_claim(reviewer=moderator, queue=queue))
        clock.move_to(T0 + timedelta(minutes=10, seconds=30))  # the break is due; the window closes at 09:11
        claim = item_claim(reviewer=moderator, queue=queue)
        ends = []
        for seconds in (40, 80, 100):  # kept busy with the item in hand, past the window
            clock.move_to(T0 + timedelta(minutes=10, seconds=seconds))
            ends.append(lease_renew(item=claim.item, reviewer=moderator))
        assert ends == [T0 + timedelta(minutes=11, seconds=40), T0 + timedelta(minutes=12),
                        T0 + timedelta(minutes=12)]  # one lease past the window, no more
        clock.move_to(T0 + timedelta(minutes=12))
        from core.errors import ReviewError

        with pytest.raises(ReviewError):
            lease_renew(item=claim.item, reviewer=moderator)


def test_roles_without_review_rights_cannot_renew_a_lease(moderator, requester, health, stranger, queue):
    """Denial per role: nobody but the holder (a moderator or a lead) renews; the lease is left as it was."""
    from django.test import Client

    with time_machine.travel(timezone.now(), tick=False) as clock:
        claim = item_claim(reviewer=moderator, queue=queue)
        expires = Claim.objects.get(pk=claim.pk).expires_at
        clock.shift(30)  # a renewal now would move the end 30 s later
        path = f"/api/v1/items/{claim.item_id}/lease/"
        assert Client().post(path).status_code in {401, 403}
        for user in (requester, health, stranger):
            assert logged_in(user).post(path).status_code == 403, user.username
        assert Claim.objects.get(pk=claim.pk).expires_at == expires
        assert logged_in(moderator).post(path).status_code == 200  # the holder can, at that moment
        assert Claim.objects.get(pk=claim.pk).expires_at == expires + timedelta(seconds=30)
