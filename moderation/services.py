"""Writes for content items: ingest, media processing, reveals, decisions, viewing preferences, audit."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import logging
import math
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import IO, Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core import signing
from django.core.files.base import ContentFile, File
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext as _

from moderation import media, motion, neardup, webhooks
from moderation.models import (
    AuditEvent,
    Category,
    ContentItem,
    Decision,
    FrameHash,
    MediaKind,
    Motion,
    RevealEvent,
    Severity,
    ViewingPreference,
)
from review_queue.models import Claim, Policy, Queue

log = logging.getLogger(__name__)

_REVEAL_SALT = "veil.reveal"


class ReviewError(Exception):
    """A refused action, with a stable code and a sentence for the person who tried it.

    `retry_at`: when trying again can succeed (a break's end, a cool-down's end), for a Retry-After header and a
    time the console shows in the reader's own zone."""

    status = 409

    def __init__(self, code: str, detail: str, *, status: int | None = None, retry_at: datetime | None = None) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.retry_at = retry_at
        if status is not None:
            self.status = status


class DuplicateSubmission(Exception):
    """The submitter already sent an item with this external id to this queue: `item` is that item (theirs)."""

    def __init__(self, item: ContentItem) -> None:
        super().__init__(f"external id already submitted as item #{item.pk}")
        self.item = item


def submitted_item(*, submitter: User | None, queue: Queue, external_id: str) -> ContentItem | None:
    """The item an earlier submission by this account, to this queue, with this external id made (wherever a hash
    list routed it since). External ids belong to their submitter: another account's equal id is another item."""
    if not external_id or submitter is None:
        return None
    return (ContentItem.objects.filter(submitted_by=submitter, submitted_to=queue, external_id=external_id)
            .order_by("id").first())


def audit_record(
    *, action: str, actor: User | None = None, item: ContentItem | None = None, **data: Any
) -> AuditEvent:
    return AuditEvent.objects.create(action=action, actor=actor, item=item, data=data)


def _sha256(fp: IO[bytes]) -> str:
    digest = hashlib.sha256()
    fp.seek(0)
    for chunk in iter(lambda: fp.read(1024 * 1024), b""):
        digest.update(chunk)
    fp.seek(0)
    return digest.hexdigest()


def item_ingest(
    *,
    queue: Queue,
    upload: File[bytes],
    submitted_by: User | None,
    external_id: str = "",
    category: str = Category.UNSPECIFIED,
    severity: int = Severity.NONE,
) -> ContentItem:
    """Check an upload, keep the original under a generated name and queue the media pipeline.

    Raises media.UnsafeImage for a refused file, DuplicateSubmission when this submitter already sent this external
    id to this queue; nothing is stored then.
    """
    if (earlier := submitted_item(submitter=submitted_by, queue=queue, external_id=external_id)) is not None:
        raise DuplicateSubmission(earlier)
    size = int(upload.size or 0)
    info = inspect_upload(upload, size=size)
    sha256 = _sha256(upload)
    item = ContentItem(
        queue=queue,
        submitted_to=queue,
        external_id=external_id,
        category=category,
        severity=severity,
        submitted_by=submitted_by,
        sha256=sha256,
        byte_size=size,
        mime=info.mime,
        source_width=info.width,
        source_height=info.height,
        frame_count=info.frames,
        kind=info.kind,
    )
    upload.seek(0)
    item.original.save("original", upload, save=False)
    try:
        with transaction.atomic():
            item.save()
            audit_record(action=AuditEvent.Action.INGESTED, actor=submitted_by, item=item, queue=queue.slug,
                         external_id=external_id, sha256=sha256, bytes=size)
    except BaseException as exc:
        # Nothing was recorded, so nothing may stay on disk either.
        item.original.delete(save=False)
        if isinstance(exc, IntegrityError) and (
            earlier := submitted_item(submitter=submitted_by, queue=queue, external_id=external_id)
        ) is not None:
            raise DuplicateSubmission(earlier) from None  # the same id, sent twice at once: the first one won
        raise
    # Registered outside the block above: with eager Celery the task runs inside on_commit, and a failure there
    # must not be mistaken for a failed save (the item and its original are kept either way).
    item_id = item.pk
    transaction.on_commit(lambda: _enqueue_processing(item_id))
    return item


@dataclass(frozen=True)
class UploadInfo:
    kind: str  # MediaKind
    mime: str
    width: int
    height: int
    frames: int


def motion_limits() -> motion.Limits:
    return motion.Limits(max_bytes=settings.VEIL_MAX_UPLOAD_BYTES, max_pixels=settings.VEIL_MAX_PIXELS,
                         max_frames=settings.VEIL_MAX_FRAMES, max_seconds=float(settings.VEIL_MAX_MEDIA_SECONDS))


def inspect_upload(upload: IO[bytes], *, size: int) -> UploadInfo:
    """Decide in the request whether an upload may be stored: a picture (media.inspect_image) or a video (probed:
    container, codecs, duration, dimensions). Raises media.UnsafeImage naming the problem."""
    if motion.is_video(upload):
        video = motion.probe_video(upload, size=size, limits=motion_limits())
        return UploadInfo(MediaKind.VIDEO, video.mime, video.width, video.height, video.frames)
    info = media.inspect_image(upload, size=size, max_bytes=settings.VEIL_MAX_UPLOAD_BYTES,
                               max_pixels=settings.VEIL_MAX_PIXELS, max_frames=settings.VEIL_MAX_FRAMES)
    kind = MediaKind.ANIMATION if info.frames > 1 else MediaKind.STILL
    return UploadInfo(kind, info.mime, info.width, info.height, info.frames)


def _enqueue_processing(item_id: int) -> None:
    from kombu.exceptions import OperationalError as BrokerUnavailable

    from moderation.tasks import process_item

    try:
        process_item.delay(item_id)
    except BrokerUnavailable:
        # The broker (Redis) is down: the item is stored and waits in PROCESSING; items_requeue_processing (a beat
        # task) sends it again once the broker is back. The upload itself succeeded, so it is not an error here.
        log.warning("could not queue item %s for processing; it will be sent again later", item_id, exc_info=True)


def items_requeue_processing(*, older_than: timedelta = timedelta(minutes=10)) -> int:
    """Send items still processing after `older_than` to the media pipeline again (their task was never queued,
    or was lost). Safe beside a worker that is still on one: item_process is idempotent."""
    from moderation.tasks import process_item

    cutoff = timezone.now() - older_than
    stuck = list(ContentItem.objects.filter(status=ContentItem.Status.PROCESSING, created_at__lte=cutoff)
                 .order_by("id").values_list("pk", flat=True)[:1000])
    for item_id in stuck:
        process_item.delay(item_id)
    return len(stuck)


def item_process(*, item_id: int) -> ContentItem | None:
    """Derive the renditions and the fingerprint, then place the item (new picture, or a copy of one seen).

    Idempotent in both steps, so an acks_late redelivery after a crash is safe: derivation is skipped when it
    was already committed, and only items still PROCESSING are placed.
    """
    item = _item_derive(item_id=item_id)
    if item is None or item.status != ContentItem.Status.PROCESSING:
        return item
    from moderation.matching import item_match

    return item_match(item_id=item_id)


def _item_derive(*, item_id: int) -> ContentItem | None:
    with transaction.atomic():
        item = ContentItem.objects.select_for_update().filter(pk=item_id).first()
        if item is None or item.status != ContentItem.Status.PROCESSING or item.fingerprint:
            return item
        moving: _Moving | None = None
        try:
            with item.original.open("rb") as fp:
                if item.kind == MediaKind.STILL:
                    derived = media.make_derivatives(
                        fp, display_max_side=settings.VEIL_DISPLAY_MAX_SIDE, max_pixels=settings.VEIL_MAX_PIXELS
                    )
                else:
                    moving, derived = _motion_derive(item, fp)
            fingerprint = neardup.fingerprint(derived.display_image)
        except (media.UnsafeImage, OSError) as exc:
            if isinstance(exc, media.UnsafeImage):
                detail = exc.detail
            else:
                detail = gettext("the stored original could not be read (%(exc)s)") % {"exc": exc}
            item.status = ContentItem.Status.FAILED
            item.failure = detail
            item.processed_at = timezone.now()
            item.save(update_fields=["status", "failure", "processed_at"])
            audit_record(action=AuditEvent.Action.PROCESSING_FAILED, item=item, detail=detail)
            return item
        # Derivative names are fixed per item: files left by a worker that died before committing are replaced,
        # not duplicated, when the task is redelivered.
        storage = item.preview.storage
        for field, data in ((item.preview, derived.preview), (item.display, derived.display)):
            name = field.field.generate_filename(item, "derived")
            storage.delete(name)
            field.save("derived", ContentFile(data), save=False)
        stored = [name for name in (item.preview.name, item.display.name) if name]
        if moving is not None:
            stored += _motion_store(item, moving)
        item.width, item.height = derived.width, derived.height
        item.phash, item.dhash = derived.phash, derived.dhash
        item.fingerprint = fingerprint.to_bytes()
        item.pdq, item.pdq_quality = fingerprint.pdq, fingerprint.pdq_quality
        item.processed_at = timezone.now()
        try:
            item.save()
        except BaseException:
            for name in stored:
                storage.delete(name)
            raise
    return item


def _motion_derive(item: ContentItem, fp: IO[bytes]) -> tuple[_Moving, media.Derivatives]:
    """Every frame of an animation or a video, decoded once under the task's time limit (it stops cleanly before
    Celery's hard limit would kill the worker) and the process's decode budget."""
    limits = motion_limits()
    if item.kind == MediaKind.VIDEO:
        info = motion.probe_video(fp, size=item.byte_size, limits=limits)
    else:
        image = media.inspect_image(fp, size=item.byte_size, max_bytes=limits.max_bytes,
                                    max_pixels=limits.max_pixels, max_frames=limits.max_frames)
        info = motion.probe_animation(fp, image)
    deadline = time.monotonic() + max(5, int(settings.VEIL_TASK_TIME_LIMIT_SECONDS) - 10)
    moving = motion.render(fp, info=info, limits=limits, deadline=deadline,
                           stream_max_side=int(settings.VEIL_STREAM_MAX_SIDE))
    # The still side of the item (display, hashes, fingerprint) is its first keyframe; the preview is replaced by
    # the contact sheet below.
    first = io.BytesIO(moving.keyframes[0].clear)
    derived = media.make_derivatives(first, display_max_side=settings.VEIL_DISPLAY_MAX_SIDE,
                                     max_pixels=settings.VEIL_MAX_PIXELS)
    derived = dataclasses.replace(derived, preview=moving.sheet)
    return _Moving(info, moving), derived


@dataclass(frozen=True)
class _Moving:
    info: motion.MotionInfo
    renditions: motion.Renditions


def _motion_store(item: ContentItem, found: _Moving) -> list[str]:
    """Keep the keyframes, the stream and the clip; return the storage names written."""
    moving, info = found.renditions, found.info
    storage = item.preview.storage
    token = item.media_key.hex
    keyframes = []
    for number, key in enumerate(moving.keyframes):
        name = f"motion/keyframes/{token[:2]}/{token[2:4]}/{token}-{number:04d}.jpg"
        storage.delete(name)
        keyframes.append({"index": key.index, "seconds": key.seconds, "scene": key.scene_change,
                          "name": storage.save(name, ContentFile(key.clear))})
    row = Motion.objects.filter(item=item).first() or Motion(item=item)
    row.container, row.video_codec, row.audio_codec = info.container, info.video_codec, info.audio_codec
    row.md5, row.duration, row.has_audio = moving.md5, moving.duration, moving.has_audio
    row.keyframes, row.sheet_columns = keyframes, moving.sheet_columns
    row.stream_width, row.stream_height = moving.width, moving.height
    for field, data in ((row.stream, moving.stream), (row.clip, moving.preview_clip)):
        name = field.field.generate_filename(row, "stream" if field is row.stream else "clip")
        storage.delete(name)
        field.save("stream" if field is row.stream else "clip", ContentFile(data), save=False)
    row.save()
    FrameHash.objects.filter(item=item).delete()
    FrameHash.objects.bulk_create([FrameHash(item=item, index=h.index, seconds=h.seconds, pdq=h.pdq,
                                             quality=h.quality) for h in moving.frame_hashes])
    item.frame_count = moving.frames
    return [str(k["name"]) for k in keyframes] + [str(row.stream.name), str(row.clip.name)]


def broadcast_counts(queue_id: int) -> None:
    from review_queue import realtime

    realtime.queue_counts_changed(queue_ids=[queue_id])


def _open_claim(*, item: ContentItem, reviewer: User) -> Claim:
    """The reviewer's live lease on the item, or a ReviewError saying why there is none."""
    claim = Claim.objects.filter(item=item, reviewer=reviewer, ended_at__isnull=True).first()
    if claim is None:
        raise ReviewError("not_lease_holder", gettext("You do not hold this item. Claim the next item from its queue."),
                          status=409)
    if claim.expires_at <= timezone.now():
        raise ReviewError("lease_expired", gettext("Your lease on this item has expired; it went back to the queue."),
                          status=409)
    return claim


@dataclass(frozen=True)
class RevealGrant:
    reveal: RevealEvent
    token: str
    seconds: int


def _reviewing_claim(*, item: ContentItem, reviewer: User) -> Claim:
    """The reviewer's live lease on this item, or on the copy of the same picture they are reviewing."""
    held = item
    if item.cluster_id is not None and not Claim.objects.filter(item=item, reviewer=reviewer,
                                                                ended_at__isnull=True).exists():
        held = ContentItem.objects.filter(cluster_id=item.cluster_id, claims__reviewer=reviewer,
                                          claims__ended_at__isnull=True).first() or item
    return _open_claim(item=held, reviewer=reviewer)


def viewing_check(*, reviewer: User) -> None:
    """Raise ReviewError while the reviewer may not look at anything clear: during a break (409 `on_break`).

    The rule is wellbeing's (where the break schedule lives); it is asked lazily because wellbeing sits above this
    module and imports it."""
    from wellbeing.services import check_viewing_allowed

    check_viewing_allowed(reviewer_id=reviewer.pk, now=timezone.now())


def reveal_start(*, item: ContentItem, reviewer: User, warned: bool = False, keyframe: int | None = None,
                 playback: bool = False) -> RevealGrant:
    """Log a deliberate reveal and grant a short-lived token for the clear rendition (lease holder only, for the
    item or a copy of the same picture in its cluster; never during a break). Someone who asked to be warned about
    the item's category gets 409 `warning_first` (naming it) until the reveal says the warning was shown.

    A moving item is revealed one keyframe at a time (`keyframe`: its number on the contact sheet) or played
    (`playback`): the playback window is long enough for the whole item at the slowest speed, and what counts as
    exposure is the seconds actually played, reported by the console (playback_progress)."""
    viewing_check(reviewer=reviewer)
    with transaction.atomic():
        item = ContentItem.objects.select_for_update().get(pk=item.pk)
        claim = _reviewing_claim(item=item, reviewer=reviewer)
        prefs = viewing_preference_for(user=reviewer)
        if prefs.warns_before_reveal(item.category) and not warned:
            raise ReviewError("warning_first", gettext(
                "This item was reported as %(category)s. You asked to be told before revealing such items: reveal it "
                "only if you choose to.") % {"category": item.get_category_display()}, status=409)
        seconds = prefs.effective_reveal_seconds(item.category)
        moving = Motion.objects.filter(item=item).first()
        if (keyframe is not None or playback) and moving is None:
            raise ReviewError("not_moving", _("This item is a still picture: reveal it as a whole."), status=400)
        if keyframe is not None and moving is not None and not 0 <= keyframe < len(moving.keyframes):
            raise ReviewError("no_such_keyframe", _("This item has no such keyframe."), status=400)
        if playback and moving is not None:
            seconds = playback_window(moving.duration)
        reveal = RevealEvent.objects.create(
            item=item, claim=claim, reviewer=reviewer, started_at=timezone.now(), allowed_seconds=seconds,
            keyframe=keyframe, is_playback=playback,
        )
        audit_record(action=AuditEvent.Action.REVEALED, actor=reviewer, item=item, reveal=reveal.pk, seconds=seconds,
                     warned=warned, keyframe=keyframe, playback=playback)
    token = signing.dumps({"r": reveal.pk, "i": item.pk, "u": reviewer.pk, "c": claim.pk, "k": keyframe,
                           "p": playback}, salt=_REVEAL_SALT)
    return RevealGrant(reveal=reveal, token=token, seconds=seconds)


# Playback may run at a quarter of normal speed; the window also leaves half a minute for pauses and seeking.
SLOWEST_PLAYBACK = 0.25
_PLAYBACK_SLACK_SECONDS = 30


def playback_window(duration: float) -> int:
    return min(32767, math.ceil(duration / SLOWEST_PLAYBACK) + _PLAYBACK_SLACK_SECONDS)


def reveal_check(*, item: ContentItem, reviewer: User, token: str, keyframe: int | None = None,
                 playback: bool = False) -> RevealEvent:
    """The clear rendition is served only inside a logged reveal's window, to the holder of the live lease, and
    never during a break (even for a reveal granted just before it began). A keyframe's reveal shows that keyframe
    only; the stream needs a playback reveal."""
    longest = playback_window(float(settings.VEIL_MAX_MEDIA_SECONDS)) if playback else int(settings.VEIL_REVEAL_SECONDS)
    try:
        payload = signing.loads(token, salt=_REVEAL_SALT, max_age=longest + 5)
    except signing.BadSignature:
        raise ReviewError("reveal_expired", gettext("This reveal has expired. Reveal the image again."),
                          status=403) from None
    if payload.get("i") != item.pk or payload.get("u") != reviewer.pk:
        raise ReviewError("forbidden", gettext("This reveal belongs to someone else."), status=403)
    if payload.get("k") != keyframe or bool(payload.get("p")) != playback:
        raise ReviewError("reveal_expired", _("This reveal was for another part of the item. Reveal it again."),
                          status=403)
    viewing_check(reviewer=reviewer)
    claim = _reviewing_claim(item=item, reviewer=reviewer)
    if payload.get("c") != claim.pk:
        raise ReviewError("reveal_expired", gettext("This reveal belongs to an earlier lease."), status=403)
    reveal = RevealEvent.objects.get(pk=payload["r"])
    if reveal.ended_at is not None or timezone.now() > reveal.started_at + timedelta(seconds=reveal.allowed_seconds):
        raise ReviewError("reveal_expired", gettext("This reveal has ended. Reveal the image again."), status=403)
    return reveal


def playback_progress(*, reveal_id: int, reviewer: User, played_seconds: float) -> RevealEvent:
    """The console reports, every few seconds while clear video plays, how many seconds it has played in this
    reveal. They count as revealed seconds (at the item's severity) when the item's exposure is settled. Playback
    must stop when this refuses: during a break (409 on_break), once the item has used all the exposure one item
    may count or the shift's cap would be passed (409 cap_reached), or when the reveal is over."""
    reveal = RevealEvent.objects.filter(pk=reveal_id, reviewer=reviewer, is_playback=True).select_related(
        "claim", "item").first()
    if reveal is None:
        raise ReviewError("no_such_reveal", _("There is no such playback."), status=404)
    now = timezone.now()
    # Never more than the wall clock allows since the reveal began (the console cannot invent seconds), never less
    # than already recorded (a late, smaller report does not erase what was played).
    elapsed = max(0.0, (min(now, reveal.ended_at or now) - reveal.started_at).total_seconds())
    played = max(reveal.played_seconds, min(max(0.0, float(played_seconds)), elapsed, float(reveal.allowed_seconds)))
    if played != reveal.played_seconds:
        RevealEvent.objects.filter(pk=reveal.pk, played_seconds__lt=played).update(played_seconds=played)
        reveal.played_seconds = played
    if reveal.ended_at is not None:
        raise ReviewError("reveal_expired", _("This playback has ended. Reveal the item again to play it."),
                          status=409)
    try:
        viewing_check(reviewer=reviewer)
        from wellbeing.services import check_playback_allowed

        check_playback_allowed(reveal=reveal, now=now)
    except ReviewError:
        reveal_end(reveal_id=reveal.pk, reviewer=reviewer)
        raise
    return reveal


def reveal_end(*, reveal_id: int, reviewer: User) -> RevealEvent | None:
    reveal = RevealEvent.objects.filter(pk=reveal_id, reviewer=reviewer, ended_at__isnull=True).first()
    if reveal is None:
        return None
    limit = reveal.started_at + timedelta(seconds=reveal.allowed_seconds)
    reveal.ended_at = min(timezone.now(), limit)
    reveal.save(update_fields=["ended_at"])
    return reveal


def check_decision(*, item: ContentItem, reviewer: User, action: str, policy: Policy | None, reason: str) -> str:
    """May this reviewer record this decision on this item now? The action, the policy it cites, the reason, and the
    reviewer's live lease. Raises ReviewError saying what to change; returns the reason as it will be stored. Reads
    the item as given: do_decision checks the lease again under the item's row lock."""
    reason = reason.strip()
    if action not in Decision.Action.values:
        raise ReviewError("invalid_action", gettext("Unknown action %(action)s: use approve, remove, escalate or "
                                                    "second_opinion.") % {"action": repr(action)}, status=400)
    if policy is not None and policy.queue_id != item.queue_id:
        raise ReviewError("invalid_policy", gettext("That policy does not belong to this item's queue."), status=400)
    if action == Decision.Action.REMOVE and policy is None:
        raise ReviewError("policy_required", gettext("Removing an item must cite one of the queue's policies."),
                          status=400)
    if action != Decision.Action.APPROVE and not reason:
        raise ReviewError("reason_required", gettext("Give a short reason, so the next person knows why."), status=400)
    if len(reason) > 4000:
        raise ReviewError("reason_too_long", gettext("Keep the reason under 4,000 characters."), status=400)
    _open_claim(item=item, reviewer=reviewer)
    if action == Decision.Action.ESCALATE and item.escalated_at is not None:
        raise ReviewError("already_escalated", gettext("This item is already with a lead; approve or remove it."),
                          status=400)
    return reason


def do_decision(*, item: ContentItem, reviewer: User, action: str, policy: Policy | None, reason: str) -> Decision:
    """Record a decision by the lease holder and end the lease (check_decision first, then again under the lock).

    approve/remove are final. escalate sends the item to a team lead; second_opinion sends it back to the queue
    for someone else.
    """
    reason = check_decision(item=item, reviewer=reviewer, action=action, policy=policy, reason=reason)
    now = timezone.now()
    with transaction.atomic():
        item = ContentItem.objects.select_for_update().get(pk=item.pk)
        check_decision(item=item, reviewer=reviewer, action=action, policy=policy, reason=reason)
        claim = _open_claim(item=item, reviewer=reviewer)
        is_final = action in Decision.FINAL_ACTIONS
        decision = Decision.objects.create(
            item=item, reviewer=reviewer, action=action, policy=policy, reason=reason, is_final=is_final
        )
        if is_final:
            item.status = ContentItem.Status.DECIDED
            outcome = Claim.Outcome.DECIDED
            audit_action = AuditEvent.Action.DECIDED
        elif action == Decision.Action.ESCALATE:
            item.status = ContentItem.Status.ESCALATED
            item.escalated_at = now
            outcome = Claim.Outcome.ESCALATED
            audit_action = AuditEvent.Action.ESCALATED
        else:
            item.status = item.resting_status
            item.second_opinion_excluded_id = reviewer.pk
            outcome = Claim.Outcome.SECOND_OPINION
            audit_action = AuditEvent.Action.SECOND_OPINION
        item.save(update_fields=["status", "escalated_at", "second_opinion_excluded"])
        from review_queue.services import claim_end  # review_queue.services imports this module

        claim_end(claim_id=claim.pk, outcome=outcome, at=now)
        audit_record(action=audit_action, actor=reviewer, item=item, decision=decision.pk, action_taken=action,
                     policy=policy.code if policy else None, reason=reason)
        if is_final:
            webhooks.decision_announce(decision=decision)
        if is_final and item.cluster_id is not None:
            _decide_waiting_copies(item, decision)
        queue_id = item.queue_id
        transaction.on_commit(lambda: broadcast_counts(queue_id))
    return decision


def _decide_waiting_copies(item: ContentItem, decision: Decision) -> None:
    """One review decides all: copies that waited with this picture get the decision, audited per copy."""
    from moderation.matching import carry_over

    copies = ContentItem.objects.select_for_update().filter(
        cluster=item.cluster, status=ContentItem.Status.CLUSTERED
    )
    for copy in copies:
        carry_over(copy, decision, why=f"the same picture as item #{item.pk}, decided in review")
        copy.save(update_fields=["status"])


def viewing_preference_for(*, user: User) -> ViewingPreference:
    prefs, _ = ViewingPreference.objects.get_or_create(
        user=user,
        defaults={"blur_level": settings.VEIL_MIN_BLUR_LEVEL, "reveal_seconds": settings.VEIL_REVEAL_SECONDS},
    )
    return prefs


CATEGORY_SETTINGS = ("blur_level", "reveal_seconds", "warn")


def check_per_category(*, per_category: Any, blur_level: int, reveal_seconds: int) -> dict[str, dict[str, Any]]:
    """Validate viewing settings per harm category: each only stricter than the general ones being saved (a
    stronger blur, a shorter reveal, a warning). Returns them cleaned (settings equal to the general ones dropped);
    raises ReviewError (400) naming the category otherwise."""
    if not isinstance(per_category, dict):
        raise ReviewError("invalid_categories", gettext("Viewing settings per category must be an object."), status=400)
    cleaned: dict[str, dict[str, Any]] = {}
    for category, values in per_category.items():
        if category not in Category.values or category == Category.UNSPECIFIED or not isinstance(values, dict):
            raise ReviewError("invalid_categories", gettext("%(category)s is not a category you can set.") % {
                "category": repr(category)}, status=400)
        label = Category(category).label
        unknown = set(values) - set(CATEGORY_SETTINGS)
        if unknown:
            raise ReviewError("invalid_categories", gettext("Unknown setting for %(label)s: %(unknown)s.") % {
                "label": label, "unknown": ', '.join(sorted(unknown))},
                              status=400)
        kept: dict[str, Any] = {}
        blur = values.get("blur_level")
        if blur is not None:
            if not isinstance(blur, int) or isinstance(blur, bool) or not blur_level <= blur <= 6:
                raise ReviewError("not_stricter", gettext("For %(label)s the blur can be from %(blur_level)s (your "
                                                          "general setting) to 6: only ever stronger.") % {
                                                              "label": label, "blur_level": blur_level}, status=400)
            if blur > blur_level:
                kept["blur_level"] = blur
        seconds = values.get("reveal_seconds")
        if seconds is not None:
            if not isinstance(seconds, int) or isinstance(seconds, bool) or not 1 <= seconds <= reveal_seconds:
                raise ReviewError("not_stricter", gettext("For %(label)s a reveal can last from 1 to "
                                                          "%(reveal_seconds)s seconds (your general setting): only "
                                                          "ever shorter.") % {
                                                              "label": label,
                                                              "reveal_seconds": reveal_seconds}, status=400)
            if seconds < reveal_seconds:
                kept["reveal_seconds"] = seconds
        if values.get("warn") is True:
            kept["warn"] = True
        elif values.get("warn") not in (None, False):
            raise ReviewError("invalid_categories", gettext("The warning for %(label)s is on or off.") % {
                "label": label}, status=400)
        if kept:
            cleaned[category] = kept
    return cleaned


def viewing_preference_update(
    *, user: User, blur_level: int, reveal_seconds: int, grayscale_on_reveal: bool,
    per_category: dict[str, dict[str, Any]] | None = None,
) -> ViewingPreference:
    """A moderator may make viewing stricter than the organisation's settings, never weaker; and per harm category
    stricter still than their own (`per_category`; None keeps what is stored, as far as it is still stricter)."""
    if not settings.VEIL_MIN_BLUR_LEVEL <= blur_level <= 6:
        raise ReviewError("blur_too_weak", gettext("Blur can be set from %(veil_min_blur_level)s (the organisation's "
                                                   "minimum) to 6.") % {
                                                       "veil_min_blur_level": settings.VEIL_MIN_BLUR_LEVEL}, status=400)
    if not 1 <= reveal_seconds <= settings.VEIL_REVEAL_SECONDS:
        raise ReviewError("reveal_too_long", gettext(
            "A reveal can last from 1 to %(veil_reveal_seconds)s seconds (the organisation's maximum)."
        ) % {"veil_reveal_seconds": settings.VEIL_REVEAL_SECONDS}, status=400)
    prefs = viewing_preference_for(user=user)
    if per_category is None:  # keep the stored ones, less anything the new general settings make pointless
        per_category = {c: {k: v for k, v in values.items()
                            if not (k == "blur_level" and v <= blur_level)
                            and not (k == "reveal_seconds" and v >= reveal_seconds)}
                        for c, values in (prefs.per_category or {}).items()}
    categories = check_per_category(per_category=per_category, blur_level=blur_level, reveal_seconds=reveal_seconds)
    before = {"blur_level": prefs.blur_level, "reveal_seconds": prefs.reveal_seconds,
              "grayscale_on_reveal": prefs.grayscale_on_reveal, "per_category": prefs.per_category or {}}
    prefs.blur_level = blur_level
    prefs.reveal_seconds = reveal_seconds
    prefs.grayscale_on_reveal = grayscale_on_reveal
    prefs.per_category = categories
    prefs.save()
    audit_record(action=AuditEvent.Action.PREFERENCES_CHANGED, actor=user, before=before,
                 after={"blur_level": blur_level, "reveal_seconds": reveal_seconds,
                        "grayscale_on_reveal": grayscale_on_reveal, "per_category": categories})
    return prefs


def cluster_split(*, item: ContentItem, by: User, reason: str = "") -> ContentItem:
    """"Not the same picture": detach an item from its cluster, audited, never to be merged with it again.

    A carried-over decision on the item is voided and the item goes back to its queue for its own review.
    """
    from config.roles import Role, has_role
    from moderation.models import Cluster, SplitPair

    with transaction.atomic():
        item = ContentItem.objects.select_for_update().get(pk=item.pk)
        cluster = item.cluster
        if cluster is None:
            raise ReviewError("not_clustered", gettext("This item is not part of a group of copies."), status=409)
        holds_representative = cluster.representative_id is not None and ContentItem.objects.filter(
            pk=cluster.representative_id, cluster=cluster, claims__reviewer=by, claims__ended_at__isnull=True
        ).exists()
        if not (has_role(by, Role.TEAM_LEAD) or holds_representative):
            raise ReviewError("forbidden", gettext("Only a lead, or whoever is reviewing this picture, can split "
                                                   "copies."),
                              status=403)
        if cluster.representative_id == item.pk:
            raise ReviewError("is_representative", gettext("This is the copy being reviewed; split the other copies "
                                                           "from "
                              "it instead."), status=409)
        if item.status == ContentItem.Status.IN_REVIEW:
            raise ReviewError("in_review", gettext("Someone is reviewing this copy right now."), status=409)
        others = list(cluster.members.exclude(pk=item.pk).values_list("pk", flat=True))
        SplitPair.objects.bulk_create(
            [SplitPair(item_low_id=min(item.pk, o), item_high_id=max(item.pk, o), split_by=by, reason=reason[:500])
             for o in others],
            ignore_conflicts=True,
        )
        now = timezone.now()
        voided = list(
            Decision.objects.filter(item=item, is_final=True, voided_at__isnull=True).exclude(
                carried_over_from__isnull=True, hash_list__isnull=True
            ).values_list("pk", flat=True)
        )
        Decision.objects.filter(pk__in=voided).update(is_final=False, voided_at=now)
        item.cluster = Cluster.objects.create(representative=item)
        # A copy that waited, or was decided only by carry-over, now needs its own review. One decided in review
        # on its own keeps that decision.
        if item.status == ContentItem.Status.CLUSTERED or (item.status == ContentItem.Status.DECIDED and voided):
            item.status = ContentItem.Status.READY
        item.save(update_fields=["cluster", "status"])
        audit_record(action=AuditEvent.Action.SPLIT, actor=by, item=item, from_cluster=cluster.pk,
                     new_cluster=item.cluster_id, separated_from=others, voided_decisions=voided, reason=reason)
        queue_id = item.queue_id
        transaction.on_commit(lambda: broadcast_counts(queue_id))
    return item
