"""Hashing and matching of moving items: a copy of a known video (re-encoded, resized, trimmed) joins its cluster
and carries the decision over; a still from a known video and a picture spliced into a video are recognised; frames
are looked up in hash lists like pictures."""

from __future__ import annotations

import io
from typing import Any

import pytest
from PIL import Image

from core.models import AuditEvent
from intake import services
from intake.models import ContentItem, Decision, FrameHash, HashList, HashListEntry, Motion
from review import decisions
from review.services import item_claim
from tests.helpers import motioncorpus as mc
from tests.helpers.factories import make_queue, upload

pytestmark = pytest.mark.django_db


def ingest(queue, data: bytes, name: str = "clip.mp4") -> ContentItem:
    item = services.item_ingest(queue=queue, upload=upload(data, name), submitted_by=None)
    services.item_process(item_id=item.pk)
    item.refresh_from_db()
    return item


def png(array) -> bytes:
    out = io.BytesIO()
    Image.fromarray(array).save(out, "PNG")
    return out.getvalue()


def test_frames_are_hashed_one_a_second_with_quality_and_the_file_md5() -> None:
    queue = make_queue()
    data = mc.clip([(20, 3.0)])
    item = ingest(queue, data)
    hashes = list(FrameHash.objects.filter(item=item).order_by("index"))
    assert [round(h.seconds) for h in hashes] == [0, 1, 2]
    assert all(len(h.pdq) == 64 and h.quality >= 50 for h in hashes)
    import hashlib

    assert Motion.objects.get(item=item).md5 == hashlib.md5(data, usedforsecurity=False).hexdigest()


def test_reencoded_resized_trimmed_copy_joins_the_cluster_and_gets_the_decision(moderator) -> None:
    queue = make_queue()
    original = ingest(queue, mc.clip([(21, 2.0), (22, 2.0), (23, 2.0)], size=(320, 240)))
    claim = item_claim(queue=queue, reviewer=moderator)
    assert claim is not None
    policy = queue.policies.first()
    decisions.do_decision(item=original, reviewer=moderator, action="remove", policy=policy, reason="violent")
    copy = ingest(queue, mc.clip([(21, 2.0), (22, 2.0)], size=(240, 180), codec="libvpx-vp9", container="webm"),
                  "copy.webm")
    assert copy.cluster_id == original.cluster_id
    assert copy.status == ContentItem.Status.DECIDED
    carried = Decision.objects.get(item=copy, is_final=True)
    assert carried.carried_over_from is not None and carried.action == "remove"
    evidence = copy.matches.get()
    assert evidence.method == "vpdq" and "100%" in evidence.explanation
    # A different video does not.
    other = ingest(queue, mc.clip([(24, 2.0), (25, 2.0)]))
    assert other.cluster_id != original.cluster_id and other.status == ContentItem.Status.READY


def test_a_video_never_clusters_with_a_still_of_its_first_frame() -> None:
    queue = make_queue()
    video = ingest(queue, mc.clip([(26, 2.0)]))
    still = ingest(queue, png(mc.scene(26, (320, 240))), "still.png")
    assert still.cluster_id != video.cluster_id and still.status == ContentItem.Status.READY
    # ...but it is recognised as a frame of the video.
    found = AuditEvent.objects.get(item=still, action=AuditEvent.Action.FRAME_MATCH)
    assert found.data["other_item"] == video.pk and found.data["seconds"] == 0


def test_a_still_from_later_in_a_known_video_is_recognised() -> None:
    queue = make_queue()
    data = mc.clip([(27, 2.0), (28, 2.0)])
    video = ingest(queue, data)
    # A frame grab at 2 s (the 51st frame), saved as a JPEG.
    import av

    container: Any = av.open(io.BytesIO(data))
    with container:
        grabbed = next(f for n, f in enumerate(container.decode(video=0)) if n == 50)
    frame = grabbed.to_image()
    out = io.BytesIO()
    frame.save(out, "JPEG", quality=80)
    still = ingest(queue, out.getvalue(), "frame.jpg")
    found = AuditEvent.objects.get(item=still, action=AuditEvent.Action.FRAME_MATCH)
    assert found.data["other_item"] == video.pk and found.data["seconds"] == pytest.approx(2.0, abs=0.05)


def test_a_known_picture_spliced_into_a_video_is_recognised() -> None:
    queue = make_queue()
    picture = ingest(queue, png(mc.scene(30, (320, 240))), "known.png")
    video = ingest(queue, mc.clip([(31, 2.0), (30, 1.0), (32, 2.0)]))
    found = AuditEvent.objects.get(item=video, action=AuditEvent.Action.FRAME_MATCH)
    assert found.data["other_item"] == picture.pk and found.data["seconds"] == pytest.approx(2.0, abs=0.05)


def test_frames_are_looked_up_in_hash_lists_and_the_list_action_applies() -> None:
    from intake import neardup

    queue = make_queue()
    spliced = Image.fromarray(mc.scene(33, (320, 240)))
    known = HashList.objects.create(name="KNOWN", label="Known", action=HashList.Action.REMOVE)
    HashListEntry.objects.create(hash_list=known, signal_type="pdq", signal=neardup.fingerprint(spliced).pdq)
    video = ingest(queue, mc.clip([(34, 2.0), (33, 1.0)]))
    assert video.status == ContentItem.Status.DECIDED
    assert Decision.objects.get(item=video, is_final=True).hash_list_id == known.pk
    hit = AuditEvent.objects.get(item=video, action=AuditEvent.Action.HASH_LIST_MATCH)
    assert hit.data["signal_type"] == "pdq"
