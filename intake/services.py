"""Writes for content items: ingest, media processing, reveals, decisions, viewing preferences, audit."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import logging
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import IO, TYPE_CHECKING

from django.conf import settings
from django.contrib.auth.models import User
from django.core.files.base import ContentFile, File
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext

from core import realtime
from core.audit import audit_record
from core.errors import ReviewError
from core.models import AuditEvent
from core.roles import Role, has_role
from intake import media, motion, neardup
from intake.models import Category, Cluster, ContentItem, Decision, FrameHash, MediaKind, Motion, Severity, SplitPair

if TYPE_CHECKING:
    from review.models import Queue  # an item arrives in a queue; intake never looks queues up

log = logging.getLogger(__name__)


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

    from intake.tasks import process_item

    try:
        process_item.delay(item_id)
    except BrokerUnavailable:
        # The broker (Redis) is down: the item is stored and waits in PROCESSING; items_requeue_processing (a beat
        # task) sends it again once the broker is back. The upload itself succeeded, so it is not an error here.
        log.warning("could not queue item %s for processing; it will be sent again later", item_id, exc_info=True)


def items_requeue_processing(*, older_than: timedelta = timedelta(minutes=10)) -> int:
    """Send items still processing after `older_than` to the media pipeline again (their task was never queued,
    or was lost). Safe beside a worker that is still on one: item_process is idempotent."""
    from intake.tasks import process_item

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
    from intake.matching import item_match

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
    realtime.queue_counts_changed(queue_ids=[queue_id])


def cluster_split(*, item: ContentItem, by: User, reason: str = "") -> ContentItem:
    """"Not the same picture": detach an item from its cluster, audited, never to be merged with it again.

    A carried-over decision on the item is voided and the item goes back to its queue for its own review.
    """

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
