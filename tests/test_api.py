"""The REST contract: ingest, status, claim, decision, errors as {"error", "detail"}, and who may do what."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from core.models import AuditEvent
from intake.models import ContentItem
from tests.helpers import imagecorpus
from tests.helpers.factories import image_bytes, make_item, make_queue

pytestmark = pytest.mark.django_db


@pytest.fixture
def queue(requester):
    q = make_queue(slug="reports")
    q.submitters.add(requester)
    return q


def token_client(user) -> APIClient:
    client = APIClient()
    token, _ = Token.objects.get_or_create(user=user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


def session_client(user) -> APIClient:
    client = APIClient()
    client.force_login(user)
    return client


def post_item(client: APIClient, data: bytes, name: str = "x.png", **fields: object):
    payload = {"file": SimpleUploadedFile(name, data), "queue": "reports", **fields}
    return client.post("/api/v1/items/", payload, format="multipart")


def assert_error(response, status: int, code: str) -> None:
    assert response.status_code == status, response.content
    body = response.json()
    assert body["error"] == code, body
    assert isinstance(body["detail"], str) and len(body["detail"]) > 5


def test_ingest_creates_a_reviewable_item(requester, queue, django_capture_on_commit_callbacks):
    client = token_client(requester)
    with django_capture_on_commit_callbacks(execute=True):
        response = post_item(client, image_bytes(3), external_id="post-17", category="violence", severity=3)
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["external_id"] == "post-17" and body["severity"] == 3
    assert body["queue"]["purpose"] and body["queue"]["requester"]
    item = ContentItem.objects.get(pk=body["id"])
    # Eager Celery ran the pipeline on commit: the item is ready, with derivatives and hashes.
    assert item.status == ContentItem.Status.READY
    assert item.is_reviewable
    status = client.get(f"/api/v1/items/{item.pk}/").json()
    assert status["status"] == "ready" and status["decision"] is None


def test_original_is_stored_under_a_generated_name_outside_static(requester, queue, _private_media):
    response = post_item(token_client(requester), image_bytes(4), name="../../etc/passwd.png")
    item = ContentItem.objects.get(pk=response.json()["id"])
    name = item.original.name or ""
    assert "passwd" not in name and ".." not in name
    assert item.original.path.startswith(str(_private_media))


@pytest.mark.parametrize(
    ("maker", "code", "status"),
    [
        (imagecorpus.empty, "empty_file", 400),
        (imagecorpus.truncated_jpeg, "truncated", 400),
        (imagecorpus.text_file, "unsupported_format", 400),
        (imagecorpus.svg, "svg_refused", 400),
        (imagecorpus.png_bomb, "decompression_bomb", 400),
        (lambda: imagecorpus.png_header_claiming(60000, 60000), "too_many_pixels", 400),
    ],
    ids=["zero-byte", "truncated-jpeg", "text-as-jpg", "svg", "png-bomb", "huge-dimensions"],
)
def test_bad_uploads_get_a_clear_4xx_and_leave_nothing(requester, queue, _private_media, maker, code, status):
    response = post_item(token_client(requester), maker(), name="innocent.jpg")
    # A bomb may be refused as a bomb or for its pixel count: both name the problem.
    if code in {"decompression_bomb", "too_many_pixels"} and response.json().get("error") in {
        "decompression_bomb", "too_many_pixels"}:
        code = response.json()["error"]
    assert_error(response, status, code)
    assert ContentItem.objects.count() == 0
    assert not [p for p in _private_media.rglob("*") if p.is_file()]


def test_a_bad_file_loses_nothing_else_in_the_batch(requester, queue):
    client = token_client(requester)
    results = [post_item(client, data).status_code for data in
               (image_bytes(1), imagecorpus.truncated_jpeg(), image_bytes(2), imagecorpus.svg(), image_bytes(3))]
    assert results == [201, 400, 201, 400, 201]
    assert ContentItem.objects.count() == 3


def test_oversized_upload_is_refused_before_decoding(requester, queue, settings):
    settings.VEIL_MAX_UPLOAD_BYTES = 2048
    response = post_item(token_client(requester), image_bytes(5, size=(800, 600)))
    assert_error(response, 413, "too_large")
    assert ContentItem.objects.count() == 0


def test_odd_but_valid_images_are_accepted(requester, queue, django_capture_on_commit_callbacks):
    client = token_client(requester)
    for data in (imagecorpus.cmyk_jpeg(), imagecorpus.png16_gradient(), imagecorpus.rotated_jpeg_with_metadata(),
                 imagecorpus.animated_gif(frames=40), imagecorpus.webp()):
        with django_capture_on_commit_callbacks(execute=True):
            response = post_item(client, data)
        assert response.status_code == 201, response.content
    assert set(ContentItem.objects.values_list("status", flat=True)) == {"ready"}


def test_unknown_or_foreign_queue_is_refused_alike(requester, queue):
    other = make_queue(slug="not-yours")
    client = token_client(requester)
    assert_error(post_item(client, image_bytes(1), queue="nope"), 400, "unknown_queue")
    response = client.post("/api/v1/items/", {"file": SimpleUploadedFile("a.png", image_bytes(1)),
                                              "queue": other.slug}, format="multipart")
    assert_error(response, 400, "unknown_queue")


def test_missing_fields_are_named(requester, queue):
    response = token_client(requester).post("/api/v1/items/", {"queue": "reports"}, format="multipart")
    assert_error(response, 400, "invalid")
    assert "file" in response.json()["detail"]
    bad = post_item(token_client(requester), image_bytes(1), severity=7)
    assert_error(bad, 400, "invalid")
    assert "severity" in bad.json()["detail"]


def test_ingest_denied_to_other_roles_and_anonymous(queue, moderator, lead, health, stranger):
    assert_error(post_item(APIClient(), image_bytes(1)), 401, "not_authenticated")
    for user in (moderator, lead, health, stranger):
        assert_error(post_item(token_client(user), image_bytes(1)), 403, "forbidden")
    bad_token = APIClient()
    bad_token.credentials(HTTP_AUTHORIZATION="Token nope")
    assert_error(post_item(bad_token, image_bytes(1)), 401, "authentication_failed")


def test_item_status_is_private_to_its_submitter(requester, queue, health, stranger, moderator):
    item = make_item(queue, seed=1, submitted_by=requester)
    assert token_client(requester).get(f"/api/v1/items/{item.pk}/").status_code == 200
    for user in (health, stranger, moderator):
        assert_error(token_client(user).get(f"/api/v1/items/{item.pk}/"), 404, "not_found")
    other = make_queue(slug="other")
    second_requester_item = make_item(other, seed=2)
    assert_error(token_client(requester).get(f"/api/v1/items/{second_requester_item.pk}/"), 404, "not_found")


def test_claim_then_decide_through_the_api(requester, queue, moderator):
    item = make_item(queue, seed=1, submitted_by=requester)
    client = session_client(moderator)
    claimed = client.post("/api/v1/queues/reports/claim/")
    assert claimed.status_code == 200, claimed.content
    body = claimed.json()
    assert body["id"] == item.pk
    assert body["queue"]["purpose"] and body["queue"]["requester"]
    assert body["preview_url"].endswith("/preview")
    assert "clear" not in str(body)  # the clear rendition is reached only through a logged reveal
    assert {p["code"] for p in body["policies"]} == {"violence", "nudity", "ok"}
    decided = client.post(f"/api/v1/items/{item.pk}/decision/",
                          {"action": "remove", "policy": "violence", "reason": "graphic injury"}, format="json")
    assert decided.status_code == 201, decided.content
    assert decided.json()["is_final"] is True
    status = token_client(requester).get(f"/api/v1/items/{item.pk}/").json()
    assert status["status"] == "decided"
    assert status["decision"]["action"] == "remove" and status["decision"]["policy"] == "violence"
    assert AuditEvent.objects.filter(action="decided", item=item).exists()
    assert_error(client.post("/api/v1/queues/reports/claim/"), 404, "queue_empty")


def test_decision_rules_are_explained(queue, moderator, moderator2):
    item = make_item(queue, seed=1)
    client = session_client(moderator)
    client.post("/api/v1/queues/reports/claim/")
    url = f"/api/v1/items/{item.pk}/decision/"
    assert_error(client.post(url, {"action": "remove", "reason": "x"}, format="json"), 400, "policy_required")
    assert_error(client.post(url, {"action": "escalate"}, format="json"), 400, "reason_required")
    assert_error(client.post(url, {"action": "explode", "reason": "x"}, format="json"), 400, "invalid")
    assert_error(client.post(url, {"action": "remove", "policy": "nope", "reason": "x"}, format="json"),
                 400, "invalid_policy")
    # Someone without the lease cannot decide.
    assert_error(session_client(moderator2).post(url, {"action": "approve"}, format="json"), 409, "not_lease_holder")


def test_escalation_reaches_a_lead_and_second_opinion_excludes_asker(queue, moderator, moderator2, lead):
    item = make_item(queue, seed=1)
    mo = session_client(moderator)
    mo.post("/api/v1/queues/reports/claim/")
    r = mo.post(f"/api/v1/items/{item.pk}/decision/", {"action": "second_opinion", "reason": "unsure"}, format="json")
    assert r.status_code == 201
    assert_error(mo.post("/api/v1/queues/reports/claim/"), 404, "queue_empty")  # not offered to the asker again
    mia = session_client(moderator2)
    assert mia.post("/api/v1/queues/reports/claim/").json()["id"] == item.pk
    mia.post(f"/api/v1/items/{item.pk}/decision/", {"action": "escalate", "reason": "needs a lead"}, format="json")
    assert_error(mia.post("/api/v1/queues/reports/claim/"), 404, "queue_empty")
    le = session_client(lead)
    assert le.post("/api/v1/queues/reports/claim/?escalated=1").json()["id"] == item.pk
    final = le.post(f"/api/v1/items/{item.pk}/decision/", {"action": "approve"}, format="json")
    assert final.status_code == 201 and final.json()["is_final"]


def test_claim_denied_to_non_reviewers(queue, health, requester, stranger):
    make_item(queue, seed=1)
    assert_error(APIClient().post("/api/v1/queues/reports/claim/"), 401, "not_authenticated")
    for user in (health, requester, stranger):
        assert_error(session_client(user).post("/api/v1/queues/reports/claim/"), 403, "forbidden")


def test_unknown_queue_claim_is_404(moderator):
    assert_error(session_client(moderator).post("/api/v1/queues/none/claim/"), 404, "unknown_queue")


def test_session_api_calls_need_csrf(queue, moderator):
    make_item(queue, seed=1)
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(moderator)
    assert_error(client.post("/api/v1/queues/reports/claim/"), 403, "forbidden")


def test_schema_and_docs_are_served_locally(moderator):
    client = session_client(moderator)
    schema = client.get("/api/schema/")
    assert schema.status_code == 200
    text = schema.content.decode()
    for path in ("/api/v1/items/", "/api/v1/queues/{slug}/claim/", "/api/v1/items/{item_id}/decision/"):
        assert path in text
    docs = client.get("/api/docs/")
    assert docs.status_code == 200
    html = docs.content.decode()
    assert "cdn" not in html.lower() and "unpkg" not in html.lower()
    assert "/static/drf_spectacular_sidecar/" in html
