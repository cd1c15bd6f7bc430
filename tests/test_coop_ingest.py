"""Coop-style submission: POST /api/v1/items/async/ with {"items": [{"id", "typeId", "data"}]} → 202, each item
through item_ingest, a bad item refused on its own, the same id never making a second item."""

from __future__ import annotations

import json

import numpy as np
import pytest
import requests
from django.conf import settings
from PIL import Image

from core.models import AuditEvent
from intake.models import ContentItem, HashList
from review.models import Queue
from tests.helpers import imagecorpus
from tests.helpers.coop import by_id, coop_item, data_url, submit
from tests.helpers.factories import image_bytes, make_queue, make_user
from tests.helpers.hma import client_for, make_list, picture, token_of
from tests.helpers.matching import jpeg

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_rate_limits")]

SVG = b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>'


@pytest.fixture
def queue(requester) -> Queue:
    q = make_queue(slug="reported-posts", coop_type_id="post-type-1")
    q.submitters.add(requester)
    return q


def test_a_batch_is_accepted_with_202_and_goes_through_ingest(requester, queue,
                                                              django_capture_on_commit_callbacks):
    client = client_for(requester, header="x-api-key")
    response = submit(client, [coop_item("post-1", severity=2, category="violence"),
                               coop_item("post-2", type_id="reported-posts")], django_capture_on_commit_callbacks)
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["accepted"] == 2 and body["refused"] == 0
    results = by_id(response)
    first = ContentItem.objects.get(pk=results["post-1"]["item"])
    assert results["post-1"]["status"] == "accepted" and results["post-1"]["typeId"] == "post-type-1"
    assert first.queue == queue and first.external_id == "post-1" and first.submitted_by == requester
    assert first.severity == 2 and first.category == "violence"
    assert first.status == ContentItem.Status.READY and first.is_reviewable  # the pipeline ran on commit
    second = ContentItem.objects.get(pk=results["post-2"]["item"])
    assert second.queue == queue and second.external_id == "post-2"
    assert AuditEvent.objects.filter(action="ingested", actor=requester).count() == 2
    # The requester polls the usual status endpoint.
    assert client_for(requester).get(f"/api/v1/items/{first.pk}/").json()["status"] == "ready"


def test_authorization_token_works_as_well_as_x_api_key(requester, queue):
    assert submit(client_for(requester, header="token"), [coop_item("post-1")]).status_code == 202


def test_the_same_id_never_makes_a_second_item(requester, queue):
    client = client_for(requester, header="x-api-key")
    first = by_id(submit(client, [coop_item("post-1")]))["post-1"]
    again = submit(client, [coop_item("post-1"), coop_item("post-1", type_id="reported-posts")])
    assert again.status_code == 202
    assert [(e["status"], e["item"]) for e in again.json()["items"]] == [("duplicate", first["item"])] * 2
    assert ContentItem.objects.filter(external_id="post-1").count() == 1
    # Within one batch too.
    twice = submit(client, [coop_item("post-9"), coop_item("post-9")]).json()["items"]
    assert [e["status"] for e in twice] == ["accepted", "duplicate"] and twice[0]["item"] == twice[1]["item"]
    # Another queue is another namespace.
    other = make_queue(slug="other-queue")
    other.submitters.add(requester)
    assert by_id(submit(client, [coop_item("post-1", type_id="other-queue")]))["post-1"]["status"] == "accepted"


def test_a_duplicate_is_found_after_a_hash_list_routed_the_first_copy(requester, queue):
    specialist = make_queue(slug="specialist")
    hash_list, _ = make_list("KNOWN_TVEC", picture(20))
    HashList.objects.filter(pk=hash_list.pk).update(action=HashList.Action.ROUTE, target_queue=specialist)
    client = client_for(requester, header="x-api-key")
    item = coop_item("routed", image=[data_url(jpeg(picture(20)), "image/jpeg")])
    first = by_id(submit(client, [item]))["routed"]
    from intake.services import item_process

    routed = item_process(item_id=first["item"])
    assert routed is not None and routed.queue_id == specialist.pk
    assert by_id(submit(client, [item]))["routed"] == {**first, "status": "duplicate"}


def test_hostile_items_are_refused_one_by_one_and_the_rest_accepted(requester, queue,
                                                                    settings):
    settings.VEIL_MAX_UPLOAD_BYTES = 60_000
    locked = make_queue(slug="not-yours", coop_type_id="locked")
    noise = np.random.default_rng(3).integers(0, 256, size=(200, 200, 3), dtype=np.uint8)
    big = imagecorpus.encode(Image.fromarray(noise, "RGB"), "PNG")
    assert len(big) > 60_000
    batch = [
        coop_item("good-1"),
        coop_item("bad-base64", image=["data:image/png;base64,@@@not-base64@@@"]),
        coop_item("svg", image=[data_url(SVG, "image/png")]),
        coop_item("svg-declared", image=[data_url(SVG, "image/svg+xml")]),
        coop_item("unknown-type", type_id="no-such-type"),
        coop_item("not-yours", type_id=locked.coop_type_id),
        coop_item("no-images", image=[]),
        coop_item("two-images", image=[data_url(image_bytes(1)), data_url(image_bytes(2))]),
        coop_item("not-a-data-url", image=["/etc/passwd"]),
        coop_item("not-a-string", image=[42]),
        coop_item("url-not-allowed", image=["https://cdn.example.org/a.png"]),
        coop_item("too-big", image=[data_url(big)]),
        coop_item("truncated", image=[data_url(image_bytes(3)[:200])]),
        coop_item("bad-severity", severity=7),
        coop_item("bad-category", category="whatever"),
        {"id": "", "typeId": "post-type-1", "data": {"images": [data_url(image_bytes(4))]}},
        {"id": "x" * 201, "typeId": "post-type-1", "data": {"images": [data_url(image_bytes(4))]}},
        {"id": "no-data", "typeId": "post-type-1"},
        {"id": 12, "typeId": "post-type-1", "data": {"images": [data_url(image_bytes(5))]}},
        "not an object",
        coop_item("good-2"),
    ]
    response = submit(client_for(requester, header="x-api-key"), batch)
    assert response.status_code == 202, response.content
    items = response.json()["items"]
    assert len(items) == len(batch)
    codes = [(entry["id"], entry["status"], entry.get("error", "")) for entry in items]
    assert codes == [
        ("good-1", "accepted", ""),
        ("bad-base64", "refused", "bad_base64"),
        ("svg", "refused", "svg_refused"),
        ("svg-declared", "refused", "svg_refused"),
        ("unknown-type", "refused", "unknown_type"),
        ("not-yours", "refused", "unknown_type"),
        ("no-images", "refused", "one_image"),
        ("two-images", "refused", "one_image"),
        ("not-a-data-url", "refused", "bad_image"),
        ("not-a-string", "refused", "bad_image"),
        ("url-not-allowed", "refused", "url_fetch_disabled"),
        ("too-big", "refused", "too_large"),
        ("truncated", "refused", "truncated"),
        ("bad-severity", "refused", "invalid_severity"),
        ("bad-category", "refused", "invalid_category"),
        ("", "refused", "invalid_id"),
        ("x" * 201, "refused", "invalid_id"),
        ("no-data", "refused", "invalid_item"),
        (12, "refused", "invalid_id"),
        (None, "refused", "invalid_item"),
        ("good-2", "accepted", ""),
    ]
    assert all(len(entry["detail"]) > 5 for entry in items if entry["status"] == "refused")
    assert response.json()["accepted"] == 2 and response.json()["refused"] == len(batch) - 2
    assert set(ContentItem.objects.values_list("external_id", flat=True)) == {"good-1", "good-2"}
    refused = AuditEvent.objects.filter(action="submission_refused", actor=requester)
    assert refused.count() == len(batch) - 2
    assert refused.filter(data__code="svg_refused", data__via="coop").count() == 2


def test_a_batch_with_nothing_acceptable_is_a_400_that_still_says_why(requester, queue):
    response = submit(client_for(requester, header="x-api-key"), [coop_item("svg", image=[data_url(SVG)])])
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "nothing_accepted" and body["items"][0]["error"] == "svg_refused"


def test_malformed_and_oversized_bodies(requester, queue, settings):
    client = client_for(requester, header="x-api-key")
    post = client.post
    assert post("/api/v1/items/async/", "{not json", content_type="application/json").json()["error"] == (
        "malformed_request")
    assert post("/api/v1/items/async/", b"\xff\xfe", content_type="application/json").status_code == 400
    deep = "[" * 200_000 + "]" * 200_000
    assert post("/api/v1/items/async/", deep, content_type="application/json").json()["error"] == "malformed_request"
    assert post("/api/v1/items/async/", {"items": "nope"}, format="json").json()["error"] == "invalid"
    assert post("/api/v1/items/async/", {"items": []}, format="json").status_code == 400
    assert post("/api/v1/items/async/", [1, 2], format="json").status_code == 400
    assert post("/api/v1/items/async/", {"items": [coop_item("a")]}, format="multipart").status_code == 415
    settings.VEIL_COOP_MAX_ITEMS = 2
    too_many = post("/api/v1/items/async/", {"items": [coop_item("a"), coop_item("b"), coop_item("c")]},
                    format="json")
    assert too_many.status_code == 413 and too_many.json()["error"] == "too_many_items"
    settings.VEIL_COOP_MAX_BODY_BYTES = 512
    oversized = post("/api/v1/items/async/", {"items": [coop_item("a")]}, format="json")
    assert oversized.status_code == 413 and oversized.json()["error"] == "too_large"
    assert not ContentItem.objects.exists()


def test_a_body_without_a_declared_length_is_still_cut_off(requester, queue, settings):
    settings.VEIL_COOP_MAX_BODY_BYTES = 512
    body = json.dumps({"items": [coop_item("a")]})
    client = client_for(requester, header="x-api-key")
    # The test client always declares a length; lie low (as a chunked upload would not declare one).
    response = client.generic("POST", "/api/v1/items/async/", body, content_type="application/json",
                              CONTENT_LENGTH="100")
    assert response.status_code in (400, 413)  # read 100 bytes: cut off, never more
    assert not ContentItem.objects.exists()


def test_url_images_only_from_allow_listed_prefixes(requester, queue, peer, settings):
    peer.files["/media/a.png"] = (image_bytes(30), "image/png")
    peer.files["/media/a.svg"] = (SVG, "image/svg+xml")
    settings.VEIL_FETCH_URL_PREFIXES = [f"{peer.url}/media/"]
    settings.VEIL_OUTBOUND_ALLOW_PRIVATE = True
    response = submit(client_for(requester, header="x-api-key"), [
        coop_item("fetched", image=[f"{peer.url}/media/a.png"]),
        coop_item("outside", image=[f"{peer.url}/other/a.png"]),
        coop_item("svg", image=[f"{peer.url}/media/a.svg"]),
    ])
    assert response.status_code == 202, response.content
    assert {k: (v["status"], v.get("error", "")) for k, v in by_id(response).items()} == {
        "fetched": ("accepted", ""), "outside": ("refused", "url_not_allowed"), "svg": ("refused", "svg_refused")
    }
    assert {r.path for r in peer.received} == {"/media/a.png", "/media/a.svg"}


@pytest.mark.django_db(transaction=True)
def test_a_coop_client_against_a_live_server(live_daphne: str) -> None:
    requester = make_user("req", "requester")
    queue = make_queue(slug="reported-posts", coop_type_id="post-type-1")
    queue.submitters.add(requester)
    body = {"items": [coop_item("post-1"), coop_item("post-2", image=["data:image/png;base64,!!"])]}
    response = requests.post(f"{live_daphne}/api/v1/items/async/", json=body,
                             headers={"X-API-KEY": token_of(requester)}, timeout=60)
    assert response.status_code == 202, response.text
    assert [(e["id"], e["status"]) for e in response.json()["items"]] == [("post-1", "accepted"),
                                                                          ("post-2", "refused")]
    item = ContentItem.objects.get(external_id="post-1")
    if item.status == ContentItem.Status.PROCESSING and settings.REDIS_URL:
        # The real stack: the server queued the media pipeline on Redis, and no worker runs in this test (the worker
        # path has tests of its own). Run the queued task here, as a worker would.
        from intake.tasks import process_item

        process_item.apply(args=(item.pk,))
        item.refresh_from_db()
    assert item.queue_id == queue.pk and item.status == ContentItem.Status.READY
    again = requests.post(f"{live_daphne}/api/v1/items/async/", json=body,
                          headers={"X-API-KEY": token_of(requester)}, timeout=60)
    assert again.json()["items"][0] == {"id": "post-1", "typeId": "post-type-1", "status": "duplicate",
                                        "item": item.pk}
    assert requests.post(f"{live_daphne}/api/v1/items/async/", json=body, headers={"X-API-KEY": "nope"},
                         timeout=60).status_code == 401
