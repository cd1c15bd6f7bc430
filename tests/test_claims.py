"""Claiming with a lease: never two people on one item, expired leases return, release works."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
import time_machine
from django.db import close_old_connections, connection
from django.utils import timezone

from core.errors import ReviewError
from core.models import AuditEvent
from intake.models import ContentItem
from review.models import Claim
from review.services import NothingToClaim, item_claim, item_release, leases_expire
from tests.helpers.factories import make_item, make_queue, make_user

pytestmark = pytest.mark.django_db


def test_claim_gives_oldest_ready_item_with_a_lease(moderator):
    queue = make_queue()
    first = make_item(queue, seed=1)
    make_item(queue, seed=2)
    claim = item_claim(reviewer=moderator, queue=queue)
    assert claim.item_id == first.pk
    first.refresh_from_db()
    assert first.status == ContentItem.Status.IN_REVIEW
    assert first.lease_holder_id == moderator.pk
    assert claim.expires_at - claim.claimed_at == timedelta(seconds=600)
    assert AuditEvent.objects.filter(action="claimed", item=first, actor=moderator).exists()


def test_items_still_processing_are_never_offered(moderator):
    queue = make_queue()
    make_item(queue, seed=1, process=False)
    with pytest.raises(NothingToClaim) as exc:
        item_claim(reviewer=moderator, queue=queue)
    assert exc.value.code == "queue_empty"


def test_holder_gets_the_same_item_back_instead_of_a_second(moderator):
    queue = make_queue()
    make_item(queue, seed=1)
    make_item(queue, seed=2)
    first = item_claim(reviewer=moderator, queue=queue)
    again = item_claim(reviewer=moderator, queue=queue)
    assert again.pk == first.pk
    assert Claim.objects.filter(reviewer=moderator, ended_at__isnull=True).count() == 1


def test_two_moderators_never_share_an_item(moderator, moderator2):
    queue = make_queue()
    make_item(queue, seed=1)
    make_item(queue, seed=2)
    a = item_claim(reviewer=moderator, queue=queue)
    b = item_claim(reviewer=moderator2, queue=queue)
    assert a.item_id != b.item_id
    third = make_user("third", "moderator")
    with pytest.raises(NothingToClaim):
        item_claim(reviewer=third, queue=queue)


def test_expired_lease_returns_item_to_queue_and_is_audited(moderator, moderator2):
    queue = make_queue()
    item = make_item(queue, seed=1)
    item_claim(reviewer=moderator, queue=queue)
    with time_machine.travel(timezone.now() + timedelta(seconds=601), tick=False):
        claim = item_claim(reviewer=moderator2, queue=queue)
    assert claim.item_id == item.pk
    old = Claim.objects.get(reviewer=moderator)
    assert old.outcome == Claim.Outcome.EXPIRED and old.ended_at is not None
    assert AuditEvent.objects.filter(action="lease_expired", item=item, data__holder=moderator.pk).exists()


def test_leases_expire_sweeps_without_a_claim(moderator):
    queue = make_queue()
    item = make_item(queue, seed=1)
    item_claim(reviewer=moderator, queue=queue)
    assert leases_expire(now=timezone.now()) == 0
    assert leases_expire(now=timezone.now() + timedelta(minutes=11)) == 1
    item.refresh_from_db()
    assert item.status == ContentItem.Status.READY and item.lease_holder_id is None


def test_release_puts_item_back_first_in_line(moderator, moderator2):
    queue = make_queue()
    first = make_item(queue, seed=1)
    make_item(queue, seed=2)
    claim = item_claim(reviewer=moderator, queue=queue)
    item_release(item=claim.item, reviewer=moderator)
    assert Claim.objects.get(pk=claim.pk).outcome == Claim.Outcome.RELEASED
    assert item_claim(reviewer=moderator2, queue=queue).item_id == first.pk


def test_release_by_someone_else_is_refused(moderator, moderator2):
    queue = make_queue()
    make_item(queue, seed=1)
    claim = item_claim(reviewer=moderator, queue=queue)
    with pytest.raises(ReviewError) as exc:
        item_release(item=claim.item, reviewer=moderator2)
    assert exc.value.code == "not_lease_holder"


def test_roles_without_review_rights_cannot_claim(health, requester, stranger):
    queue = make_queue()
    make_item(queue, seed=1)
    for user in (health, requester, stranger):
        with pytest.raises(ReviewError) as exc:
            item_claim(reviewer=user, queue=queue)
        assert exc.value.code == "forbidden"


def test_escalated_items_go_to_leads_only(moderator, lead):
    queue = make_queue()
    make_item(queue, seed=1)
    with pytest.raises(ReviewError):
        item_claim(reviewer=moderator, queue=queue, escalated=True)
    with pytest.raises(NothingToClaim):
        item_claim(reviewer=lead, queue=queue, escalated=True)


def test_closed_queue_refuses(moderator):
    queue = make_queue(is_active=False)
    make_item(queue, seed=1)
    with pytest.raises(ReviewError) as exc:
        item_claim(reviewer=moderator, queue=queue)
    assert exc.value.code == "queue_closed"


def test_database_refuses_a_second_open_claim_on_one_item(moderator, moderator2):
    from django.db import IntegrityError, transaction

    queue = make_queue()
    make_item(queue, seed=1)
    claim = item_claim(reviewer=moderator, queue=queue)
    with pytest.raises(IntegrityError), transaction.atomic():
        Claim.objects.create(item=claim.item, queue=queue, reviewer=moderator2, claimed_at=timezone.now(),
                             expires_at=timezone.now())


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_fifty_threads_claim_two_hundred_items_each_exactly_once():
    queue = make_queue()
    for seed in range(200):
        make_item(queue, seed=seed, process=False)
    # Processing 200 images is not what this test is about: mark them ready directly.
    ContentItem.objects.filter(queue=queue).update(status=ContentItem.Status.READY)
    reviewers = [make_user(f"m{n}", "moderator") for n in range(50)]
    claimed: list[int] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    barrier = threading.Barrier(50)

    def work(reviewer) -> None:
        try:
            barrier.wait(timeout=30)
            while True:
                try:
                    claim = item_claim(reviewer=reviewer, queue=queue)
                except NothingToClaim:
                    return
                with lock:
                    claimed.append(claim.item_id)
                # Finish it so the reviewer can take another (a holder gets the same item back otherwise).
                Claim.objects.filter(pk=claim.pk).update(ended_at=timezone.now(), outcome="decided")
                ContentItem.objects.filter(pk=claim.item_id).update(
                    status=ContentItem.Status.DECIDED
                )
        except BaseException as exc:  # surfaced below
            errors.append(exc)
        finally:
            close_old_connections()
            connection.close()

    threads = [threading.Thread(target=work, args=(r,)) for r in reviewers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors[:3]
    assert len(claimed) == 200
    assert len(set(claimed)) == 200
    assert Claim.objects.count() == 200
