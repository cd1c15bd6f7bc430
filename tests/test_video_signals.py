"""Video signals in hash lists and the HMA-compatible API: `video_md5` and `vpdq` (python-threatexchange's
formats) import, export, match at ingest, and are served by /h/hash and /m/lookup."""

from __future__ import annotations

import hashlib

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from intake import hashlist_services, hashlists, services
from intake.models import ContentItem, Decision, HashList, HashListEntry, VideoSignal
from tests.helpers import motioncorpus as mc
from tests.helpers.factories import make_queue, upload

pytestmark = pytest.mark.django_db

PDQ = "f" * 64


def client_for(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=user)[0].key}")
    return client


def test_vpdq_and_video_md5_parse_normalise_and_round_trip() -> None:
    text = (f'signal_type,signal_str,collab,category,tags\r\nvideo_md5,{"A" * 32},C,,\r\n'
            f'vpdq,"[""{PDQ.upper()},100,0"", ""{"0" * 64},49,1.5""]",C,,x\r\n')
    parsed = hashlists.parse(text)
    assert [(e.signal_type, e.signal) for e in parsed] == [
        ("video_md5", "a" * 32), ("vpdq", f'["{PDQ},100,0.000","{"0" * 64},49,1.500"]')]
    assert hashlists.parse(hashlists.dump_te_csv(parsed.entries)).entries == parsed.entries
    simple = hashlists.parse(hashlists.dump_te_simple(parsed.entries))  # signals only: no collab, tags
    assert [e.key for e in simple] == [e.key for e in parsed]
    with pytest.raises(hashlists.HashListError, match="vpdq frame 1"):
        hashlists.parse('vpdq ["nothex,100,0"]\n')


def test_import_keeps_the_frames_and_export_gives_them_back(admin_user) -> None:
    hash_list = HashList.objects.create(name="VIDEOS", label="Known videos")
    signal = f'["{PDQ},100,0.000"]'
    data = f"vpdq {signal}\nvideo_md5 {'b' * 32}\n".encode()
    result = hashlist_services.hash_list_import(hash_list=hash_list, data=data, actor=admin_user)
    assert result.added == 2
    entry = HashListEntry.objects.get(signal_type="vpdq")
    assert entry.signal == hashlib.sha256(signal.encode()).hexdigest() and entry.video.body == signal
    again = hashlist_services.hash_list_import(hash_list=hash_list, data=data, actor=admin_user)
    assert (again.added, again.already_present) == (0, 2)
    assert VideoSignal.objects.count() == 1
    assert hashlist_services.hash_list_export(hash_list=hash_list, format="te_simple") == data.decode()


def test_a_listed_video_is_removed_at_ingest_by_md5_and_a_re_encoded_copy_by_vpdq(requester) -> None:
    queue = make_queue()
    queue.submitters.add(requester)
    original = mc.clip([(40, 2.0), (41, 2.0)])
    client = client_for(requester)
    signals = client.post("/h/hash", {"video": SimpleUploadedFile("v.mp4", original)}, format="multipart")
    assert signals.status_code == 200, signals.content
    body = signals.json()
    assert body["video_md5"] == hashlib.md5(original, usedforsecurity=False).hexdigest()
    assert len(hashlists.vpdq_frames(body["vpdq"])) == 4
    known = HashList.objects.create(name="KNOWN_VIDEOS", label="Known", action=HashList.Action.REMOVE)
    text = f"video_md5 {body['video_md5']}\nvpdq {body['vpdq']}\n".encode()
    hashlist_services.hash_list_import(hash_list=known, data=text, actor=None)

    same = services.item_ingest(queue=queue, upload=upload(original, "same.mp4"), submitted_by=None)
    services.item_process(item_id=same.pk)
    same.refresh_from_db()
    assert same.status == ContentItem.Status.DECIDED
    assert Decision.objects.get(item=same, is_final=True).hash_list_id == known.pk

    copy = mc.clip([(40, 2.0), (41, 2.0)], size=(240, 180), codec="libvpx-vp9", container="webm")
    item = services.item_ingest(queue=queue, upload=upload(copy, "copy.webm"), submitted_by=None)
    services.item_process(item_id=item.pk)
    item.refresh_from_db()
    assert item.status == ContentItem.Status.DECIDED

    # /m/lookup: by signal, and by uploading the copy.
    by_md5 = client.get("/m/lookup", {"signal_type": "video_md5", "signal": body["video_md5"]})
    assert list(by_md5.json()) == ["KNOWN_VIDEOS"]
    by_vpdq = client.get("/m/lookup", {"signal_type": "vpdq", "signal": body["vpdq"]})
    assert by_vpdq.json()["KNOWN_VIDEOS"][0]["distance"] == "0"
    uploaded = client.post("/m/lookup", {"video": SimpleUploadedFile("c.webm", copy)}, format="multipart")
    assert uploaded.status_code == 200
    assert uploaded.json()["video_md5"] == {} and list(uploaded.json()["vpdq"]) == ["KNOWN_VIDEOS"]


def test_a_hostile_video_sent_to_h_hash_is_a_clear_400(requester) -> None:
    response = client_for(requester).post(
        "/h/hash", {"video": SimpleUploadedFile("v.mp4", mc.billion_frames(mc.clip([(1, 1.0)])))}, format="multipart")
    assert response.status_code == 400
    assert "1,000,000,000 frames" in response.content.decode()
