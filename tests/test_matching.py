"""Near-duplicates at ingest: copies of a decided picture inherit the decision, copies of a waiting picture wait
with it, distinct pictures stay apart, splits stick, and hash lists route or decide."""

from __future__ import annotations

import io
import threading

import pytest
from django.db import close_old_connections, connection
from django.test import Client
from PIL import Image
from rest_framework.test import APIClient

from core.errors import ReviewError
from core.models import AuditEvent
from demo.content import demo_image, near_duplicate
from intake import hashlists, matching
from intake.models import ContentItem, Decision, HashList, HashListEntry, SplitPair
from intake.services import cluster_split, item_ingest
from review.decisions import do_decision
from review.services import NothingToClaim, item_claim
from tests.helpers.factories import make_queue, make_user, upload
from tests.helpers.matching import ingest, jpeg

pytestmark = pytest.mark.django_db


def picture(seed: int) -> Image.Image:
    return demo_image(seed, label=f"SYNTHETIC TEST #{seed}")


def decide(item: ContentItem, reviewer, action: str = "remove"):
    claim = item_claim(reviewer=reviewer, queue=item.queue)
    assert claim.item_id == item.pk
    policy = item.queue.policies.first() if action == "remove" else None
    return do_decision(item=item, reviewer=reviewer, action=action, policy=policy, reason="test")


EDITS = ["resized", "reencoded", "brighter", "grayscale", "cropped", "mirrored"]


@pytest.mark.parametrize("edit", EDITS)
def test_copy_of_a_decided_picture_inherits_the_decision(moderator, moderator2, edit):
    queue = make_queue(slug="q")
    original = ingest(queue, picture(1))
    decision = decide(original, moderator)
    copy = ingest(queue, near_duplicate(picture(1), edit), external_id="copy")
    assert copy.status == ContentItem.Status.DECIDED, edit
    carried = Decision.objects.get(item=copy)
    assert carried.is_final and carried.carried_over_from == decision and carried.reviewer is None
    assert carried.action == "remove" and carried.policy == decision.policy
    audit = AuditEvent.objects.get(item=copy, action="matched")
    assert audit.data["matched_item"] == original.pk and "distance" in audit.data
    assert AuditEvent.objects.filter(item=copy, action="carried_over").exists()
    # Never offered to anyone.
    with pytest.raises(NothingToClaim):
        item_claim(reviewer=moderator2, queue=queue)


def test_exact_same_file_matches_by_sha256(moderator):
    queue = make_queue(slug="q")
    data = jpeg(picture(2))
    first = ingest(queue, picture(2), data=data)
    second = ingest(queue, picture(2), data=data)
    assert second.cluster_id == first.cluster_id
    assert second.matches.get().method == "sha256"


def test_copies_of_a_waiting_picture_wait_and_one_review_decides_all(moderator, moderator2):
    queue = make_queue(slug="q")
    original = ingest(queue, picture(3), external_id="post-1")
    copy_a = ingest(queue, near_duplicate(picture(3), "resized"), external_id="post-2")
    copy_b = ingest(queue, near_duplicate(picture(3), "mirrored"), external_id="post-3")
    assert [copy_a.status, copy_b.status] == ["clustered", "clustered"]
    assert copy_a.cluster_id == copy_b.cluster_id == original.cluster_id
    claim = item_claim(reviewer=moderator, queue=queue)
    assert claim.item_id == original.pk
    with pytest.raises(NothingToClaim):
        item_claim(reviewer=moderator2, queue=queue)  # copies are not separate work
    do_decision(item=original, reviewer=moderator, action="approve", policy=None, reason="")
    for copy in (copy_a, copy_b):
        copy.refresh_from_db()
        assert copy.status == "decided"
        source = Decision.objects.get(item=copy).carried_over_from
        assert source is not None and source.item_id == original.pk


def test_console_shows_how_many_times_the_picture_arrived(moderator):
    queue = make_queue(slug="q")
    original = ingest(queue, picture(4), external_id="post-1")
    ingest(queue, near_duplicate(picture(4), "cropped"), external_id="post-2")
    item_claim(reviewer=moderator, queue=queue)
    client = Client()
    client.force_login(moderator)
    html = client.get(f"/console/items/{original.pk}/").content.decode()
    assert "This picture arrived 2 times" in html
    assert "post-2" in html and "Not the same picture" in html


def test_distinct_pictures_are_never_merged():
    queue = make_queue(slug="q")
    items = [ingest(queue, picture(seed)) for seed in range(10, 22)]
    assert len({item.cluster_id for item in items}) == len(items)
    assert {item.status for item in items} == {"ready"}


def test_split_sends_the_copy_back_and_never_merges_again(moderator, lead):
    queue = make_queue(slug="q")
    original = ingest(queue, picture(5))
    decide(original, moderator)
    copy = ingest(queue, near_duplicate(picture(5), "brighter"))
    assert copy.status == "decided"
    with pytest.raises(ReviewError) as refused:
        cluster_split(item=copy, by=moderator, reason="no")  # not holding the picture, not a lead
    assert refused.value.code == "forbidden"
    cluster_split(item=copy, by=lead, reason="different person in the picture")
    copy.refresh_from_db()
    assert copy.status == "ready" and copy.cluster_id != original.cluster_id
    carried = Decision.objects.get(item=copy)
    assert carried.voided_at is not None and not carried.is_final
    assert SplitPair.objects.filter(item_low=original.pk, item_high=copy.pk).exists()
    audit = AuditEvent.objects.get(item=copy, action="split")
    assert audit.actor == lead and audit.data["voided_decisions"] == [carried.pk]
    # Matching the detached item again never puts it back with the one it was split from.
    from intake.neardup import Fingerprint

    assert copy.fingerprint is not None
    found = matching.find_match(copy, Fingerprint.from_bytes(bytes(copy.fingerprint)))
    assert found is None or found.item.cluster_id != original.cluster_id
    # And it is reviewed on its own.
    assert item_claim(reviewer=moderator, queue=queue).item_id == copy.pk


def test_the_reviewer_of_the_picture_can_split_a_waiting_copy(moderator):
    queue = make_queue(slug="q")
    original = ingest(queue, picture(6))
    copy = ingest(queue, near_duplicate(picture(6), "resized"))
    item_claim(reviewer=moderator, queue=queue)
    client = Client()
    client.force_login(moderator)
    response = client.post(f"/console/items/{original.pk}/copies/{copy.pk}/split/")
    assert response.status_code == 302
    copy.refresh_from_db()
    assert copy.status == "ready"


def test_copies_can_be_revealed_only_by_the_reviewer_of_the_picture(moderator, moderator2):
    queue = make_queue(slug="q")
    ingest(queue, picture(7))
    copy = ingest(queue, near_duplicate(picture(7), "resized"))
    item_claim(reviewer=moderator, queue=queue)
    mine = APIClient()
    mine.force_login(moderator)
    grant = mine.post(f"/api/v1/items/{copy.pk}/reveal/")
    assert grant.status_code == 201
    assert mine.get(grant.json()["url"]).status_code == 200
    other = APIClient()
    other.force_login(moderator2)
    assert other.post(f"/api/v1/items/{copy.pk}/reveal/").status_code == 409
    assert other.get(grant.json()["url"]).status_code == 403


def make_list(name: str, action: str, image: Image.Image, **fields: object) -> HashList:
    hash_list = HashList.objects.create(name=name, label=f"{name} list", action=action, **fields)
    pdq, quality = hashlists.pdq_of(image)
    assert quality >= hashlists.PDQ_MIN_QUALITY
    HashListEntry.objects.create(hash_list=hash_list, signal_type="pdq", signal=pdq)
    return hash_list


def test_hash_list_remove_decides_without_review(moderator):
    queue = make_queue(slug="q")
    make_list("KNOWN_BAD", HashList.Action.REMOVE, picture(8))
    item = ingest(queue, near_duplicate(picture(8), "reencoded"))
    assert item.status == "decided"
    decision = Decision.objects.get(item=item)
    assert decision.hash_list is not None and decision.action == "remove" and decision.is_final
    assert AuditEvent.objects.filter(item=item, action="hash_list_match", data__hash_list="KNOWN_BAD").exists()


def test_hash_list_route_sends_to_the_specialist_queue():
    general = make_queue(slug="general")
    specialist = make_queue(slug="specialist")
    make_list("KNOWN_TVEC", HashList.Action.ROUTE, picture(9), target_queue=specialist, severity=3)
    item = ingest(general, picture(9))
    assert item.queue_id == specialist.pk and item.status == "ready" and item.severity == 3


def test_api_status_shows_a_carried_over_decision(moderator, requester, django_capture_on_commit_callbacks):
    queue = make_queue(slug="q")
    queue.submitters.add(requester)
    original = ingest(queue, picture(10))
    decide(original, moderator)
    client = APIClient()
    client.force_login(requester)
    with io.BytesIO(jpeg(near_duplicate(picture(10), "resized"))) as fh:
        fh.name = "copy.jpg"
        with django_capture_on_commit_callbacks(execute=True):
            created = client.post("/api/v1/items/", {"file": fh, "queue": "q"}, format="multipart")
    assert created.status_code == 201
    body = client.get(f"/api/v1/items/{created.json()['id']}/").json()
    assert body["status"] == "decided" and body["decision"]["action"] == "remove"
    assert body["decision"]["carried_over"] is True


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_copies_arriving_at_once_end_in_one_cluster():
    queue = make_queue(slug="race")
    image = picture(11)
    items = [item_ingest(queue=queue, upload=upload(jpeg(near_duplicate(image, kind)), "x.jpg", "image/jpeg"),
                         submitted_by=None) for kind in ("resized", "reencoded", "brighter", "grayscale")]
    # Pipelines already ran eagerly on commit; undo their placement to race the matching step itself.
    ContentItem.objects.filter(pk__in=[i.pk for i in items]).update(status="processing", cluster=None)
    from intake.models import Cluster, HashKey, MatchEvidence

    HashKey.objects.all().delete()
    MatchEvidence.objects.all().delete()
    Cluster.objects.all().delete()
    matching.reset_caches()
    barrier = threading.Barrier(len(items))
    errors: list[BaseException] = []

    def place(item_id: int) -> None:
        try:
            barrier.wait(timeout=10)
            matching.item_match(item_id=item_id)
        except BaseException as exc:
            errors.append(exc)
        finally:
            close_old_connections()
            connection.close()

    threads = [threading.Thread(target=place, args=(i.pk,)) for i in items]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    clusters = set(ContentItem.objects.filter(pk__in=[i.pk for i in items]).values_list("cluster_id", flat=True))
    assert len(clusters) == 1 and None not in clusters
    statuses = sorted(ContentItem.objects.filter(pk__in=[i.pk for i in items]).values_list("status", flat=True))
    assert statuses == ["clustered", "clustered", "clustered", "ready"]


def test_second_copy_of_a_decided_picture_never_reaches_a_console(moderator, moderator2):
    queue = make_queue(slug="q")
    original = ingest(queue, picture(12))
    decide(original, moderator)
    for edit in ("resized", "mirrored", "cropped"):
        ingest(queue, near_duplicate(picture(12), edit))
    for reviewer in (moderator, moderator2, make_user("third", "moderator")):
        client = APIClient()
        client.force_login(reviewer)
        assert client.post("/api/v1/queues/q/claim/").json()["error"] == "queue_empty"
        assert "0" in client.get("/api/v1/queues/").content.decode()
