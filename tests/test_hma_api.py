"""HMA-compatible matching: /h/hash, /m/lookup, /m/raw_lookup answer in HMA's shapes, through Veil's upload checks,
for requester tokens only, rate-limited; called as HMA clients call them (requests against a live server)."""

from __future__ import annotations

import io
from typing import Any

import pytest
import requests
from django.core.cache import cache
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from core.models import AuditEvent
from demo.content import near_duplicate
from intake import hashlists
from intake.models import ContentItem, HashList, HashListEntry
from tests.helpers import imagecorpus
from tests.helpers.factories import make_queue, make_user
from tests.helpers.hma import client_for, make_list, picture, token_of
from tests.helpers.matching import ingest, jpeg

pytestmark = pytest.mark.django_db

ENDPOINTS = [
    ("get", "/h/hash?url=http://127.0.0.1/x.png"),
    ("post", "/h/hash"),
    ("get", "/m/lookup?signal_type=pdq&signal=" + "0" * 64),
    ("post", "/m/lookup"),
    ("get", "/m/raw_lookup?signal_type=pdq&signal=" + "0" * 64),
    ("post", "/api/v1/items/async/"),
]


@pytest.fixture(autouse=True)
def _fresh_rate_limits() -> Any:
    cache.clear()
    yield
    cache.clear()


def flip(signal: str, bits: int) -> str:
    value = int(signal, 16) ^ ((1 << bits) - 1)
    return f"{value:064x}"


def photo(data: bytes, field: str = "photo", name: str = "x.jpg") -> dict[str, Any]:
    return {field: SimpleUploadedFile(name, data)}


def assert_error(response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.content
    body: dict[str, Any] = response.json()
    assert body["error"] == code, body
    assert len(body["detail"]) > 5 and body["message"] == body["detail"]
    return body


def test_hash_of_an_upload_is_the_pdq_ingest_stores(requester):
    data = jpeg(picture(1))
    response = client_for(requester).post("/h/hash", photo(data), format="multipart")
    assert response.status_code == 200, response.content
    queue = make_queue(slug="q")
    item = ingest(queue, picture(1), data=data)
    assert response.json() == {"pdq": item.pdq}
    assert len(item.pdq) == 64 and item.pdq == item.pdq.lower()
    event = AuditEvent.objects.get(action="hash_lookup")
    assert event.actor == requester and event.data["endpoint"] == "h/hash" and event.data["pdq"] == item.pdq


def test_lookup_returns_banks_with_content_ids_and_distances(requester):
    _, bad_ids = make_list("KNOWN_BAD", picture(2), picture(3))
    _, other_ids = make_list("OTHER_BANK", picture(2))
    make_list("not-an-hma-name", picture(2))
    pdq, _ = hashlists.pdq_of(picture(2))
    client = client_for(requester)
    exact = client.get(f"/m/lookup?signal_type=pdq&signal={pdq}")
    assert exact.status_code == 200, exact.content
    assert exact.json() == {"KNOWN_BAD": [{"bank_content_id": bad_ids[0], "distance": "0"}],
                            "OTHER_BANK": [{"bank_content_id": other_ids[0], "distance": "0"}]}
    near = client.get(f"/m/lookup?signal_type=pdq&signal={flip(pdq, 5).upper()}&banks=KNOWN_BAD").json()
    assert near == {"KNOWN_BAD": [{"bank_content_id": bad_ids[0], "distance": "5"}]}
    assert client.get(f"/m/lookup?signal_type=pdq&signal={flip(pdq, 40)}").json() == {}
    event = AuditEvent.objects.filter(action="hash_lookup").first()
    assert event is not None and event.data["endpoint"] == "m/lookup" and event.actor == requester


def test_raw_lookup_in_both_of_hmas_shapes(requester):
    _, ids = make_list("KNOWN_BAD", picture(4))
    pdq, _ = hashlists.pdq_of(picture(4))
    client = client_for(requester, header="x-api-key")
    assert client.get(f"/m/raw_lookup?signal_type=pdq&signal={pdq}").json() == {"matches": ids}
    with_distance = client.get(f"/m/raw_lookup?signal_type=pdq&signal={flip(pdq, 2)}&include_distance=true")
    assert with_distance.json() == {"matches": [{"bank_content_id": ids[0], "distance": "2"}]}
    assert client.get(f"/m/raw_lookup?signal_type=pdq&signal={pdq}&banks=ELSEWHERE").json() == {"matches": []}
    assert_error(client.get(f"/m/raw_lookup?signal_type=pdq&signal={pdq}&include_distance=maybe"), 400,
                 "invalid_boolean")


def test_phash_lists_answer_too(requester):
    hash_list = HashList.objects.create(name="PHASH_BANK", label="pHash bank")
    entry = HashListEntry.objects.create(hash_list=hash_list, signal_type="phash", signal="c3d1e0f0b0a09880")
    client = client_for(requester)
    assert client.get("/m/lookup?signal_type=phash&signal=c3d1e0f0b0a09881").json() == {
        "PHASH_BANK": [{"bank_content_id": entry.pk, "distance": "1"}]
    }


def test_upload_lookup_matches_an_edited_copy(requester):
    _, ids = make_list("KNOWN_BAD", picture(5))
    response = client_for(requester).post("/m/lookup", photo(jpeg(near_duplicate(picture(5), "reencoded"))),
                                          format="multipart")
    assert response.status_code == 200, response.content
    body = response.json()
    assert list(body) == ["pdq"] and [m["bank_content_id"] for m in body["pdq"]["KNOWN_BAD"]] == ids
    assert int(body["pdq"]["KNOWN_BAD"][0]["distance"]) <= hashlists.PDQ_MATCH_THRESHOLD


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("signal=" + "0" * 64, "signal_type_required"),
        ("signal_type=pdq", "signal_required"),
        ("signal_type=tmk&signal=" + "0" * 32, "unknown_signal_type"),
        ("signal_type=video_md5&signal=" + "0" * 31, "invalid_signal"),
        ("signal_type=vpdq&signal=%5B%22abc%22%5D", "invalid_signal"),
        ("signal_type=pdq&signal=" + "g" * 64, "invalid_signal"),
        ("signal_type=pdq&signal=" + "0" * 63, "invalid_signal"),
        ("signal_type=pdq&signal=%3Cscript%3E", "invalid_signal"),
        ("signal_type=phash&signal=" + "0" * 64, "invalid_signal"),
    ],
)
def test_bad_signals_are_a_clear_400(requester, query: str, code: str):
    client = client_for(requester)
    for path in ("/m/lookup", "/m/raw_lookup"):
        assert_error(client.get(f"{path}?{query}"), 400, code)


def test_uploads_go_through_the_upload_checks(requester, settings):
    client = client_for(requester)
    svg = b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
    assert_error(client.post("/h/hash", photo(svg, name="x.jpg"), format="multipart"), 400, "svg_refused")
    assert_error(client.post("/h/hash", photo(b"GIF89a" + b"\0" * 40), format="multipart"), 400, "truncated")
    assert_error(client.post("/h/hash", photo(b"not an image at all"), format="multipart"), 400,
                 "unsupported_format")
    assert_error(client.post("/h/hash", photo(jpeg(picture(6)), field="audio"), format="multipart"), 400,
                 "unknown_content_type")
    assert_error(client.post("/h/hash", photo(jpeg(picture(6)), field="video"), format="multipart"), 400,
                 "unsupported_format")  # a picture sent as a video
    two = {"photo": [SimpleUploadedFile("a.jpg", jpeg(picture(6))), SimpleUploadedFile("b.jpg", jpeg(picture(7)))]}
    assert_error(client.post("/h/hash", two, format="multipart"), 400, "one_file_only")
    assert_error(client.post("/h/hash", {}, format="multipart"), 400, "file_required")
    big = imagecorpus.encode(imagecorpus.photo(400, 300), "PNG")
    settings.VEIL_MAX_UPLOAD_BYTES = len(big) - 1
    assert_error(client.post("/h/hash", photo(big), format="multipart"), 413, "too_large")
    assert_error(client.post("/m/lookup", photo(big), format="multipart"), 413, "too_large")
    settings.VEIL_MAX_UPLOAD_BYTES = 25 * 1024 * 1024
    settings.VEIL_MAX_PIXELS = 100 * 100
    assert_error(client.post("/h/hash", photo(big), format="multipart"), 400, "too_many_pixels")
    assert not ContentItem.objects.exists()


def test_url_hashing_is_off_unless_allow_listed(requester, peer, settings):
    data = jpeg(picture(8))
    peer.files["/media/a.jpg"] = (data, "image/jpeg")
    peer.files["/private/a.jpg"] = (data, "image/jpeg")
    client = client_for(requester)
    url = f"{peer.url}/media/a.jpg"
    assert_error(client.get(f"/h/hash?url={url}"), 403, "url_fetch_disabled")
    assert_error(client.get(f"/m/lookup?url={url}"), 403, "url_fetch_disabled")
    assert peer.received == []  # no outbound request at all by default
    settings.VEIL_FETCH_URL_PREFIXES = [f"{peer.url}/media/"]
    # Allow-listed, but loopback is refused in production.
    assert_error(client.get(f"/h/hash?url={url}"), 403, "private_address")
    settings.VEIL_OUTBOUND_ALLOW_PRIVATE = True
    fetched = client.get(f"/h/hash?url={url}")
    assert fetched.status_code == 200, fetched.content
    uploaded = client.post("/h/hash", photo(data), format="multipart").json()
    assert fetched.json() == uploaded
    assert_error(client.get(f"/h/hash?url={peer.url}/private/a.jpg"), 403, "url_not_allowed")
    assert_error(client.get(f"/h/hash?url={peer.url}/media/../private/a.jpg"), 403, "url_not_allowed")
    assert_error(client.get("/h/hash"), 400, "url_required")
    assert_error(client.get(f"/h/hash?url={peer.url}/media/missing.jpg"), 502, "fetch_failed")
    peer.files["/media/x.svg"] = (b"<svg xmlns='http://www.w3.org/2000/svg'/>", "image/svg+xml")
    assert_error(client.get(f"/h/hash?url={peer.url}/media/x.svg"), 400, "svg_refused")
    _, ids = make_list("KNOWN_BAD", picture(8))
    looked_up = client.get(f"/m/lookup?url={url}").json()
    assert [m["bank_content_id"] for m in looked_up["pdq"]["KNOWN_BAD"]] == ids
    assert client.get(f"/m/lookup?url={url}&signal_type=pdq").json() == looked_up["pdq"]
    peer.redirect_to = f"{peer.url}/private/a.jpg"
    assert_error(client.get(f"/h/hash?url={url}"), 502, "fetch_failed")
    assert all(not r.path.startswith("/private") for r in peer.received)


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
def test_everyone_but_requester_tokens_is_refused(
    method: str, path: str, moderator, lead, health, stranger, requester
):
    assert getattr(APIClient(), method)(path).status_code == 401
    for header in ({"HTTP_AUTHORIZATION": "Token " + "f" * 40}, {"HTTP_X_API_KEY": "f" * 40},
                   {"HTTP_X_API_KEY": "two words"}):
        wrong = APIClient()
        wrong.credentials(**header)
        assert getattr(wrong, method)(path).status_code == 401, header
    for user in (moderator, lead, health, stranger):
        for kind in ("token", "x-api-key"):
            response = getattr(client_for(user, header=kind), method)(path)
            assert response.status_code == 403, (user.username, kind, response.content)
            assert response.json()["error"] == "forbidden"
    # A signed-in session is no integration credential, not even a requester's.
    session = APIClient()
    session.force_login(requester)
    assert getattr(session, method)(path).status_code == 401
    assert not AuditEvent.objects.filter(action__in=["hash_lookup", "ingested"]).exists()


def test_rate_limit_answers_429_with_retry_after(requester, settings):
    settings.VEIL_INTEGRATION_RATE_PER_MINUTE = 3
    client = client_for(requester, header="x-api-key")
    path = "/m/raw_lookup?signal_type=pdq&signal=" + "0" * 64
    assert [client.get(path).status_code for _ in range(3)] == [200, 200, 200]
    limited = client.get(path)
    body = assert_error(limited, 429, "rate_limited")
    assert 1 <= int(limited["Retry-After"]) <= 60, body
    # Per account: another requester still gets through.
    assert client_for(make_user("req2", "requester")).get(path).status_code == 200
    # And across all integration endpoints.
    assert client.post("/api/v1/items/async/", {"items": []}, format="json").status_code == 429


@pytest.mark.django_db(transaction=True)
def test_an_hma_client_against_a_live_server(live_daphne: str) -> None:
    requester = make_user("req", "requester")
    key = token_of(requester)
    _, ids = make_list("KNOWN_BAD", picture(9))
    data = jpeg(near_duplicate(picture(9), "resized"))
    headers = {"X-API-KEY": key}
    hashed = requests.post(f"{live_daphne}/h/hash", files={"photo": ("x.jpg", io.BytesIO(data), "image/jpeg")},
                           headers=headers, timeout=30)
    assert hashed.status_code == 200, hashed.text
    pdq = hashed.json()["pdq"]
    looked_up = requests.get(f"{live_daphne}/m/lookup", params={"signal_type": "pdq", "signal": pdq},
                             headers=headers, timeout=30)
    assert looked_up.status_code == 200, looked_up.text
    assert [m["bank_content_id"] for m in looked_up.json()["KNOWN_BAD"]] == ids
    raw = requests.get(f"{live_daphne}/m/raw_lookup", params={"signal_type": "pdq", "signal": pdq},
                       headers={"Authorization": f"Token {key}"}, timeout=30)
    assert raw.json() == {"matches": ids}
    bad = requests.get(f"{live_daphne}/m/lookup", params={"signal_type": "pdq", "signal": "zz"}, headers=headers,
                       timeout=30)
    assert bad.status_code == 400 and "invalid signal" in bad.json()["message"]
    assert requests.get(f"{live_daphne}/m/lookup", params={"signal_type": "pdq", "signal": pdq},
                        timeout=30).status_code == 401
