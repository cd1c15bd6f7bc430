"""Animated pictures and video through the real pipeline: probe in the request, decode in the worker, renditions,
keyframe and playback reveals, hostile files refused with clear errors (nothing stored, the worker alive)."""

from __future__ import annotations

import io
import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import av
import pytest
import time_machine
from django.urls import reverse

from core import errors
from core.models import AuditEvent
from intake import media, services
from intake.models import ContentItem, FrameHash, MediaKind, Motion
from review import decisions, viewing
from review.models import RevealEvent
from review.services import item_claim
from tests.helpers import motioncorpus as mc
from tests.helpers.factories import logged_in, make_queue, upload

pytestmark = pytest.mark.django_db


def ingest(queue, data: bytes, name: str = "clip.mp4", requester=None) -> ContentItem:
    item = services.item_ingest(queue=queue, upload=upload(data, name, "application/octet-stream"),
                                submitted_by=requester)
    services.item_process(item_id=item.pk)
    item.refresh_from_db()
    return item


def test_gif_whose_later_frames_differ_is_reviewed_whole() -> None:
    """The issue's GIF: white first, red later. Every frame is counted and hashed; the red scene is a keyframe."""
    queue = make_queue()
    data = mc.animation([(1, 12), (2, 20)], delay_ms=50)
    item = ingest(queue, data, "anim.gif")
    assert item.kind == MediaKind.ANIMATION and item.status == ContentItem.Status.READY, item.failure
    assert item.frame_count == 32
    moving = Motion.objects.get(item=item)
    assert moving.duration == pytest.approx(1.6, abs=0.01)
    scenes = [k for k in moving.keyframes if k["scene"]]
    assert [round(k["seconds"], 2) for k in scenes] == [0.6]  # the second scene starts at frame 12 (600 ms)
    assert FrameHash.objects.filter(item=item).count() == 32  # every frame of an animation hashed
    # The contact sheet is the item's preview: grey and blurred.
    from PIL import Image

    with item.preview.open("rb") as fp:
        sheet = Image.open(fp)
        sheet.load()
    assert sheet.mode == "L"
    # The clear stream is real H.264 that decodes to the same number of frames.
    with moving.stream.open("rb") as fp:
        container: Any = av.open(io.BytesIO(fp.read()))
    with container:
        assert container.streams.video[0].codec_context.name == "h264"
        assert len(list(container.decode(video=0))) == 32


def test_keyframes_at_least_one_a_second() -> None:
    queue = make_queue()
    item = ingest(queue, mc.clip([(3, 4.0)], fps=10), "pan.mp4")
    moving = Motion.objects.get(item=item)
    times = [k["seconds"] for k in moving.keyframes]
    assert times[0] == 0
    assert all(b - a <= 1.0 + 1e-6 for a, b in itertools.pairwise(times))
    assert moving.duration == pytest.approx(4.0, abs=0.15)
    assert item.frame_count == 40


def test_long_animation_over_3000_frames_is_accepted() -> None:
    """The issue's limit: at least 3,000 frames (a minute at 20 ms). Tiny frames keep the test quick."""
    queue = make_queue()
    data = mc.animation([(n, 300) for n in range(10)], size=(32, 24), delay_ms=20)
    item = ingest(queue, data, "long.gif")
    assert item.status == ContentItem.Status.READY, item.failure
    assert item.frame_count == 3000
    assert Motion.objects.get(item=item).duration == pytest.approx(60.0, abs=0.1)


def test_video_with_sound_is_probed_decoded_and_kept_with_audio(requester) -> None:
    queue = make_queue()
    data = mc.clip([(4, 1.0), (5, 1.0)], audio=True, codec="libvpx-vp9", container="webm")
    item = ingest(queue, data, "talk.webm")
    assert item.status == ContentItem.Status.READY, item.failure
    assert item.kind == MediaKind.VIDEO and item.mime == "video/webm"
    moving = Motion.objects.get(item=item)
    assert (moving.container, moving.video_codec, moving.audio_codec, moving.has_audio) == ("webm", "vp9", "opus",
                                                                                           True)
    with moving.stream.open("rb") as fp, av.open(io.BytesIO(fp.read())) as container:
        assert {s.type for s in container.streams} == {"video", "audio"}
    with moving.clip.open("rb") as fp, av.open(io.BytesIO(fp.read())) as container:
        assert [s.type for s in container.streams] == ["video"]  # the preview clip is silent


@pytest.mark.parametrize(("make", "code"), [
    (lambda: mc.truncated(mc.clip([(1, 2.0)])), "truncated"),
    (lambda: mc.huge_dimensions(mc.clip([(1, 1.0)])), "dimensions_unsupported"),
    (lambda: mc.billion_frames(mc.clip([(1, 1.0)])), "too_many_frames"),
    (lambda: mc.unsupported_codec(), "unsupported_codec"),
    (lambda: mc.zero_duration(mc.clip([(1, 1.0)])), "zero_duration"),
])
def test_hostile_videos_refused_in_the_request_with_a_clear_error(requester, make, code) -> None:
    queue = make_queue()
    queue.submitters.add(requester)
    client = logged_in(requester)
    before = ContentItem.objects.count()
    response = client.post(reverse("api-items"), {"queue": queue.slug, "file": upload(make(), "x.mp4", "video/mp4")})
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["error"] == code and len(body["detail"]) > 20
    assert ContentItem.objects.count() == before  # nothing stored
    # ...and the next, good video goes through.
    good = client.post(reverse("api-items"), {"queue": queue.slug, "file": upload(mc.clip([(2, 0.5)]), "ok.mp4")})
    assert good.status_code == 201, good.content


def test_video_failing_in_the_worker_fails_cleanly_and_the_next_one_works() -> None:
    """A file that passes the probe but breaks while decoding: the item is failed with a sentence, nothing else."""
    queue = make_queue()
    good = mc.clip([(6, 1.0)])
    item = services.item_ingest(queue=queue, upload=upload(good, "a.mp4"), submitted_by=None)
    # The stored original is damaged after the request checked it (the worker re-checks; see item_process).
    with item.original.open("wb") as fp:
        fp.write(mc.truncated(good, 0.7))
    services.item_process(item_id=item.pk)
    item.refresh_from_db()
    assert item.status == ContentItem.Status.FAILED and "truncated" in item.failure
    assert AuditEvent.objects.filter(item=item, action=AuditEvent.Action.PROCESSING_FAILED).exists()
    other = ingest(queue, mc.clip([(7, 1.0)]))
    assert other.status == ContentItem.Status.READY


def test_keyframe_reveal_shows_that_keyframe_only_and_stream_needs_playback(moderator) -> None:
    queue = make_queue()
    item = ingest(queue, mc.clip([(8, 1.0), (9, 1.0)]))
    claim = item_claim(queue=queue, reviewer=moderator)
    assert claim is not None and claim.item_id == item.pk
    client = logged_in(moderator)
    # Before any reveal: the sheet and the grey clip, never the clear keyframe or stream.
    assert client.get(reverse("media-preview", args=[item.pk])).status_code == 200
    clip = client.get(reverse("media-clip", args=[item.pk]))
    assert clip.status_code == 200 and clip["Cache-Control"].startswith("no-store")
    assert client.get(reverse("media-keyframe", args=[item.pk, 1])).status_code == 403
    assert client.get(reverse("media-stream", args=[item.pk])).status_code == 403
    granted = client.post(reverse("api-item-reveal", args=[item.pk]) + "?keyframe=1")
    assert granted.status_code == 201
    shown = client.get(granted.json()["url"])
    assert shown.status_code == 200 and shown["Content-Type"] == "image/jpeg"
    reveal = RevealEvent.objects.get(pk=granted.json()["reveal"])
    assert reveal.keyframe == 1 and not reveal.is_playback
    # The keyframe reveal's cookie opens neither another keyframe nor the stream.
    assert client.get(reverse("media-keyframe", args=[item.pk, 0])).status_code == 403
    assert client.get(reverse("media-stream", args=[item.pk])).status_code == 403
    played = client.post(reverse("api-item-reveal", args=[item.pk]) + "?playback=1")
    assert played.status_code == 201
    stream = client.get(played.json()["url"], HTTP_RANGE="bytes=0-99")
    assert stream.status_code == 206 and len(stream.content) == 100
    assert stream["Cache-Control"].startswith("no-store")
    assert AuditEvent.objects.filter(item=item, action=AuditEvent.Action.REVEALED).count() == 2


def test_played_seconds_are_bounded_by_the_clock_and_count_as_revealed(moderator) -> None:
    queue = make_queue()
    item = ingest(queue, mc.clip([(10, 2.0)]))
    item_claim(queue=queue, reviewer=moderator)
    client = logged_in(moderator)
    grant = client.post(reverse("api-item-reveal", args=[item.pk]) + "?playback=1").json()
    # The console claims an hour: only the seconds since the reveal began are believed.
    answer = client.post(grant["progress"], {"seconds": 3600})
    assert answer.status_code == 200
    reveal = RevealEvent.objects.get(pk=grant["reveal"])
    assert 0 <= reveal.played_seconds < 5
    assert reveal.seconds_shown == reveal.played_seconds


T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def test_played_video_counts_as_revealed_time_and_the_cap_stops_it_mid_video(moderator) -> None:
    from wellbeing import services as wellbeing_services
    from wellbeing.models import ExposureEntry, OrganisationPolicy

    OrganisationPolicy.objects.update_or_create(pk=1, defaults={"item_seconds_min": 0, "item_seconds_max": 120,
                                                                "cooldown": timedelta(0)})
    queue = make_queue()
    item = ingest(queue, mc.clip([(13, 30.0)], size=(64, 48), fps=5))  # a playback window of 150 s
    ContentItem.objects.filter(pk=item.pk).update(severity=3)
    with time_machine.travel(T0, tick=False) as clock:
        claim = item_claim(queue=queue, reviewer=moderator)
        assert claim is not None
        grant = viewing.reveal_start(item=item, reviewer=moderator, playback=True)
        clock.move_to(T0 + timedelta(seconds=20))
        viewing.playback_progress(reveal_id=grant.reveal.pk, reviewer=moderator, played_seconds=20)
        clock.move_to(T0 + timedelta(seconds=61))
        # 61 s on screen + 61 s of clear video counted 100 % extra = 122 s: past what one item may count (120 s).
        with pytest.raises(errors.ReviewError) as refused:
            viewing.playback_progress(reveal_id=grant.reveal.pk, reviewer=moderator, played_seconds=61)
        assert refused.value.code == "cap_reached"
        reveal = RevealEvent.objects.get(pk=grant.reveal.pk)
        assert reveal.ended_at is not None and reveal.played_seconds == 61
        decisions.do_decision(item=item, reviewer=moderator, action="approve", policy=None, reason="")
        wellbeing_services.exposure_settle(reviewer=moderator)
    entry = ExposureEntry.objects.get(claim=claim)
    assert entry.reveal_seconds == 61 and entry.reveal_count == 1


def test_a_break_stops_clear_playback_on_the_server(moderator) -> None:
    from wellbeing import services as wellbeing_services

    queue = make_queue()
    item = ingest(queue, mc.clip([(14, 1.0)]))
    item_claim(queue=queue, reviewer=moderator)
    client = logged_in(moderator)
    grant = client.post(reverse("api-item-reveal", args=[item.pk]) + "?playback=1").json()
    assert client.get(grant["url"], HTTP_RANGE="bytes=0-9").status_code == 206
    wellbeing_services.break_start(reviewer=moderator, minutes=10)
    # The next range request of the stream and the next progress report are refused: the player stops.
    assert client.get(grant["url"], HTTP_RANGE="bytes=10-19").status_code == 409
    answer = client.post(grant["progress"], {"seconds": 1})
    assert answer.status_code == 409 and answer.json()["error"] == "reveal_expired"
    assert RevealEvent.objects.get(pk=grant["reveal"]).ended_at is not None


def test_heic_phone_photo_is_accepted_as_a_still() -> None:
    from PIL import Image

    from tests.helpers.factories import image_bytes

    picture = Image.open(io.BytesIO(image_bytes(5)))
    out = io.BytesIO()
    picture.save(out, "HEIF", quality=80)
    assert out.getvalue()[4:12] == b"ftypheic"
    item = ingest(make_queue(), out.getvalue(), "IMG_0001.HEIC")
    assert item.status == ContentItem.Status.READY, item.failure
    assert (item.kind, item.mime, item.width, item.height) == (MediaKind.STILL, "image/heif", 320, 240)
    assert item.pdq_quality is not None and item.pdq_quality >= 50
    # A HEIC cut short is refused in the request with a sentence, nothing stored.
    with pytest.raises(media.UnsafeImage) as refused:
        services.item_ingest(queue=item.queue, upload=upload(out.getvalue()[:400], "cut.heic"), submitted_by=None)
    assert refused.value.code in ("truncated", "corrupt")


def test_a_full_decode_budget_is_a_retry_not_a_refusal(monkeypatch) -> None:
    """DecodeBusy (the process's decode budget stayed full) must reach the task, which retries; the item waits."""
    queue = make_queue()
    item = services.item_ingest(queue=queue, upload=upload(mc.clip([(15, 1.0)]), "a.mp4"), submitted_by=None)

    # A small budget, taken whole by another decode for the length of this test; a short wait for room.
    budget = media.DecodeBudget(budget_bytes=1024 * 1024, wait_seconds=0.2)
    monkeypatch.setattr(media, "DECODES", budget)
    with budget.hold(1024 * 1024), pytest.raises(media.DecodeBusy):
        services.item_process(item_id=item.pk)
    item.refresh_from_db()
    assert item.status == ContentItem.Status.PROCESSING and not item.failure


@pytest.mark.parametrize(("fmt", "mime"), [("PNG", "image/png"), ("WEBP", "image/webp")])
def test_apng_and_animated_webp_are_reviewed_whole(fmt: str, mime: str) -> None:
    item = ingest(make_queue(), mc.animation([(16, 5), (17, 5)], size=(64, 48), fmt=fmt), "anim")
    assert item.status == ContentItem.Status.READY, item.failure
    assert (item.kind, item.mime, item.frame_count) == (MediaKind.ANIMATION, mime, 10)
    assert [k["scene"] for k in Motion.objects.get(item=item).keyframes] == [False, True]
