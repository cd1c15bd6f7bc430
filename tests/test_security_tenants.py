"""Issue 22, point 1: external ids belong to their submitter, on both ingest APIs. A second requester on a shared
queue can neither block another's id nor learn which ids exist, and no reply names an item the caller cannot read."""

from __future__ import annotations

from typing import Any

import pytest
from django.apps import apps
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import IntegrityError, transaction

from intake import services
from intake.models import ContentItem
from review.models import Queue
from tests.helpers.coop import by_id, coop_item, submit
from tests.helpers.factories import image_bytes, make_item, make_queue, make_user
from tests.helpers.hma import client_for

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_rate_limits")]



@pytest.fixture
def shared(requester) -> tuple[Queue, Any]:
    """One queue, two submitting accounts: `requester` (the real one) and `other`."""
    other = make_user("req2", "requester")
    queue = make_queue(slug="reported-posts", coop_type_id="post-type-1")
    queue.submitters.add(requester, other)
    return queue, other


def post_item(client, data: bytes, external_id: str):
    payload = {"file": SimpleUploadedFile("x.png", data), "queue": "reported-posts", "external_id": external_id}
    return client.post("/api/v1/items/", payload, format="multipart")


def test_coop_another_requesters_id_neither_blocks_nor_reveals(requester, shared):
    queue, other = shared
    squatted = by_id(submit(client_for(other, header="x-api-key"), [coop_item("post-777")]))["post-777"]
    assert squatted["status"] == "accepted"

    mine = client_for(requester, header="x-api-key")
    answer = by_id(submit(mine, [coop_item("post-777")]))["post-777"]
    # The real requester's picture is taken in as its own item, not answered with the other account's.
    assert answer["status"] == "accepted" and answer["item"] != squatted["item"]
    item = ContentItem.objects.get(pk=answer["item"])
    assert item.submitted_by == requester and item.external_id == "post-777" and item.queue == queue
    reader = client_for(requester)  # X-API-KEY is for the integration endpoints; the item API takes Token
    assert reader.get(f"/api/v1/items/{answer['item']}/").status_code == 200
    assert reader.get(f"/api/v1/items/{squatted['item']}/").status_code == 404

    # Its own repeat is a duplicate naming its own (readable) item, never the other's.
    again = by_id(submit(mine, [coop_item("post-777")]))["post-777"]
    assert again == {**answer, "status": "duplicate"}
    assert ContentItem.objects.filter(external_id="post-777").count() == 2


def test_items_api_ids_are_per_submitter_and_a_repeat_names_only_your_item(
    requester, shared
):
    _queue, other = shared
    theirs = post_item(client_for(other), image_bytes(1), "post-777")
    assert theirs.status_code == 201, theirs.content

    mine = client_for(requester)
    first = post_item(mine, image_bytes(2), "post-777")
    assert first.status_code == 201, first.content
    assert first.json()["id"] != theirs.json()["id"]

    repeat = post_item(mine, image_bytes(3), "post-777")
    assert repeat.status_code == 409, repeat.content
    body = repeat.json()
    assert body["error"] == "duplicate" and body["item"] == first.json()["id"] and str(theirs.json()["id"]) not in (
        body["detail"].replace(str(first.json()["id"]), "")
    )
    assert mine.get(f"/api/v1/items/{body['item']}/").status_code == 200
    assert ContentItem.objects.filter(submitted_by=requester, external_id="post-777").count() == 1
    # Without an external id nothing is a duplicate.
    assert post_item(mine, image_bytes(4), "").status_code == 201
    assert post_item(mine, image_bytes(5), "").status_code == 201


def test_the_database_keeps_one_item_per_submitter_queue_and_id(requester, shared):
    queue, other = shared
    first = make_item(queue, seed=1, external_id="p-1", submitted_by=requester, process=False)
    make_item(queue, seed=2, external_id="p-1", submitted_by=other, process=False)  # another account: fine
    clone = ContentItem.objects.get(pk=first.pk)
    clone.pk, clone.media_key = None, __import__("uuid").uuid4()
    with pytest.raises(IntegrityError), transaction.atomic():
        clone.save()
    # item_ingest says which item it already is, and stores nothing.
    with pytest.raises(services.DuplicateSubmission) as raised:
        services.item_ingest(queue=queue, upload=SimpleUploadedFile("x.png", image_bytes(3)), submitted_by=requester,
                             external_id="p-1")
    assert raised.value.item == first


def test_the_migration_keeps_legacy_repeats_and_leaves_them_unbound(requester, shared):
    from importlib import import_module

    migration = import_module("intake.migrations.0007_external_id_per_submitter")
    queue, _other = shared
    routed = make_queue(slug="specialist")
    first = make_item(queue, seed=1, external_id="p-1", submitted_by=requester, process=False)
    ContentItem.objects.filter(pk=first.pk).update(submitted_to=None, queue=routed)  # routed by a hash list since
    second = make_item(queue, seed=2, external_id="p-2", submitted_by=requester, process=False)
    ContentItem.objects.filter(pk=second.pk).update(external_id="p-1", submitted_to=None)  # a legacy repeat
    migration.backfill_submitted_to(apps, None)
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.submitted_to == queue  # from its INGESTED audit event, not its present queue
    assert second.submitted_to is None and second.external_id == "p-1"  # kept whole, outside the constraint
