"""Issue 23, point 3: the check/do split on the hot paths, and the dry runs it gives the API.

GET /api/v1/queues/<slug>/claim/ answers "could I claim now, and if not why and until when", with the same checks a
claim runs (review.services.check_item_claim) and the same choice of item, and leaves nothing behind: no
lease, no shift, no break row, no audit event. POST /api/v1/items/<id>/decision/?dry_run=1 checks a decision
(review.decisions.check_decision) without recording it.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine

from core.models import AuditEvent
from intake.models import ContentItem, Decision
from review.models import Claim
from review.services import item_claim
from tests.helpers.factories import logged_in, make_queue
from tests.helpers.wellbeing import T0, finish, ready_item, set_policy
from wellbeing import services
from wellbeing.models import Break, ExposureEntry, Shift

pytestmark = pytest.mark.django_db


def _footprint() -> tuple[int, ...]:
    return (Claim.objects.count(), Shift.objects.count(), Break.objects.count(), AuditEvent.objects.count(),
            ExposureEntry.objects.count(),
            ContentItem.objects.filter(status=ContentItem.Status.IN_REVIEW).count())


def test_the_claim_dry_run_says_yes_and_leaves_nothing_behind(moderator):
    queue = make_queue(slug="work")
    ready_item(queue)
    client = logged_in(moderator)
    before = _footprint()
    response = client.get("/api/v1/queues/work/claim/")
    assert response.status_code == 200 and response["Cache-Control"] == "no-store"
    assert response.json() == {"claimable": True}
    assert _footprint() == before  # not even the shift a first claim would start
    # ... and the real claim still gets the item.
    assert client.post("/api/v1/queues/work/claim/").status_code == 200


def test_the_claim_dry_run_says_why_not_and_until_when(moderator):
    queue = make_queue(slug="work")
    ready_item(queue)
    client = logged_in(moderator)
    with time_machine.travel(T0, tick=False):
        services.break_start(reviewer=moderator, minutes=10)
        before = _footprint()
        body = client.get("/api/v1/queues/work/claim/").json()
        assert _footprint() == before
        refused = client.post("/api/v1/queues/work/claim/").json()
    assert body["claimable"] is False
    # Word for word what the claim itself would say.
    assert (body["error"], body["detail"], body["retry_at"]) == (refused["error"], refused["detail"],
                                                                refused["retry_at"])
    assert body["error"] == "on_break" and body["retry_at"] == "2026-03-02T09:10:00+00:00"


def test_the_claim_dry_run_of_an_empty_queue_and_of_items_held_back(moderator):
    set_policy(cooldown=timedelta(minutes=5))
    queue = make_queue(slug="work")
    client = logged_in(moderator)
    assert client.get("/api/v1/queues/work/claim/").json()["error"] == "queue_empty"
    ready_item(queue, severity=3)
    ready_item(queue, severity=3)
    with time_machine.travel(T0, tick=False) as clock:
        finish(item_claim(reviewer=moderator, queue=queue))
        clock.shift(30)
        body = client.get("/api/v1/queues/work/claim/").json()
    assert body["claimable"] is False and body["error"] == "cooldown" and body["retry_at"]


def test_what_the_gate_records_on_the_way_the_dry_run_does_not(moderator):
    """A claim after a long enough pause records that pause as the break it was (a Break row, the shift's rested_at);
    the dry run, asked first, records neither, and the claim after it still does."""
    set_policy(break_every=timedelta(minutes=50), break_length=timedelta(minutes=10))
    queue = make_queue(slug="work")
    for _ in range(2):
        ready_item(queue)
    client = logged_in(moderator)
    with time_machine.travel(T0, tick=False) as clock:
        finish(item_claim(reviewer=moderator, queue=queue))
        clock.shift(timedelta(hours=2))
        rows, rested = Break.objects.count(), Shift.objects.get().rested_at
        assert client.get("/api/v1/queues/work/claim/").json() == {"claimable": True}
        assert (Break.objects.count(), Shift.objects.get().rested_at) == (rows, rested)
        assert client.post("/api/v1/queues/work/claim/").status_code == 200
        assert Shift.objects.get().rested_at is not None


def test_the_claim_dry_run_names_the_item_already_in_hand(moderator):
    queue = make_queue(slug="work")
    ready_item(queue)
    claim = item_claim(reviewer=moderator, queue=queue)
    body = logged_in(moderator).get("/api/v1/queues/work/claim/").json()
    assert body == {"claimable": True, "holding_item": claim.item_id}


@pytest.mark.parametrize("who", ["anonymous", "requester", "health", "stranger"])
def test_the_claim_dry_run_is_refused_to_those_who_cannot_claim(who, request):
    make_queue(slug="work")
    client = logged_in(request.getfixturevalue(who)) if who != "anonymous" else None
    from django.test import Client

    response = (client or Client()).get("/api/v1/queues/work/claim/")
    assert response.status_code in (401, 403)
    assert response.json()["error"] in ("not_authenticated", "forbidden")


def test_a_decision_dry_run_checks_without_recording(moderator):
    queue = make_queue(slug="work")
    ready_item(queue)
    claim = item_claim(reviewer=moderator, queue=queue)
    client = logged_in(moderator)
    url = f"/api/v1/items/{claim.item_id}/decision/?dry_run=1"
    missing = client.post(url, {"action": "remove", "reason": "graphic"}, content_type="application/json")
    assert missing.status_code == 400 and missing.json()["error"] == "policy_required"
    no_reason = client.post(url, {"action": "escalate"}, content_type="application/json")
    assert no_reason.status_code == 400 and no_reason.json()["error"] == "reason_required"
    fine = client.post(url, {"action": "escalate", "reason": "unsure"}, content_type="application/json")
    assert fine.status_code == 200 and fine.json() == {"valid": True}
    assert not Decision.objects.exists()
    assert Claim.objects.get(pk=claim.pk).ended_at is None  # the lease is still theirs
    done = client.post(f"/api/v1/items/{claim.item_id}/decision/", {"action": "escalate", "reason": "unsure"},
                       content_type="application/json")
    assert done.status_code == 201 and Decision.objects.count() == 1


def test_a_decision_dry_run_by_someone_without_the_lease_is_refused(moderator, moderator2):
    queue = make_queue(slug="work")
    ready_item(queue)
    claim = item_claim(reviewer=moderator, queue=queue)
    response = logged_in(moderator2).post(f"/api/v1/items/{claim.item_id}/decision/?dry_run=1",
                                          {"action": "approve"}, content_type="application/json")
    assert response.status_code == 409 and response.json()["error"] == "not_lease_holder"
