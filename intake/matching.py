"""Near-duplicate matching at ingest: nobody sees the same picture twice, and a decision carries over.

The database is the source of truth (HashKey rows, fingerprints on items). Each process keeps an in-memory
multi-index over the keys, brought up to date from the database before every lookup. Matching runs under one
lock (a PostgreSQL advisory lock; SQLite's IMMEDIATE transactions serialise writers already), so two copies of
a picture arriving at the same moment, on different workers, still end in one cluster.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

import numpy as np
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q

from core.audit import audit_record
from core.models import AuditEvent
from intake import hashlists, motion, neardup
from intake.hashindex import HashIndex
from intake.models import (
    Cluster,
    ContentItem,
    Decision,
    FrameHash,
    HashKey,
    HashList,
    HashListEntry,
    MatchEvidence,
    MediaKind,
    Motion,
    SplitPair,
    VideoSignal,
)
from intake.motion_match import find_motion_match, frame_pdqs, frames_vs_pictures
from intake.services import broadcast_counts
from intake.signals import decision_recorded

log = logging.getLogger(__name__)

# Any constant works; it only has to be the same in every process of one deployment.
_ADVISORY_LOCK_ID = 0x5E11_0001


def thresholds() -> neardup.Thresholds:
    return neardup.Thresholds.from_mapping(getattr(settings, "VEIL_NEARDUP_THRESHOLDS", None))


class _ProcessIndex:
    """The in-memory index of this process and how far into HashKey it has read."""

    def __init__(self) -> None:
        self.index = HashIndex()
        self.watermark = 0
        self.lock = threading.Lock()

    def sync(self) -> HashIndex:
        # Called under the matching lock, so every committed HashKey row is visible and none is in flight:
        # reading by increasing id misses nothing.
        with self.lock:
            rows = HashKey.objects.filter(id__gt=self.watermark).order_by("id").values_list("id", "item_id", "key")
            batch = list(rows.iterator(chunk_size=50_000))
            if batch:
                array = np.asarray(batch, dtype=np.int64)
                self.index.add_many(array[:, 1], array[:, 2])
                self.watermark = int(array[-1, 0])
            return self.index

    def reset(self) -> None:
        with self.lock:
            self.index = HashIndex()
            self.watermark = 0


_process_index = _ProcessIndex()


def reset_caches() -> None:
    """Forget the in-memory index and hash-list arrays (tests roll back rows; a database restored from backup)."""
    _process_index.reset()
    _list_cache.reset()


def _matching_lock() -> None:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_ADVISORY_LOCK_ID])


@dataclass(frozen=True)
class Found:
    item: ContentItem
    method: str
    distance: int
    explanation: str


def _split_partners(item_id: int) -> set[int]:
    pairs = SplitPair.objects.filter(Q(item_low=item_id) | Q(item_high=item_id)).values_list("item_low", "item_high")
    return {a if b == item_id else b for a, b in pairs}


def find_match(item: ContentItem, fp: neardup.Fingerprint) -> Found | None:
    """The earlier item this one is a copy of: same bytes first, then a verified perceptual match."""
    excluded = _split_partners(item.pk) | {item.pk}
    usable = ContentItem.objects.filter(cluster__isnull=False).exclude(pk__in=excluded)
    same_bytes = usable.filter(sha256=item.sha256).order_by("id").first()
    if same_bytes is not None:
        return Found(same_bytes, "sha256", 0, "the same file, byte for byte")
    limits = thresholds()
    candidates = _process_index.sync().search(neardup.query_keys(fp), limits.index_radius)
    if not candidates:
        return None
    ids = [item_id for item_id, _ in sorted(candidates, key=lambda c: c[1])[:50] if item_id not in excluded]
    best: Found | None = None
    for candidate in usable.filter(pk__in=ids).only("id", "fingerprint", "cluster_id", "queue_id", "status"):
        if not candidate.fingerprint:
            continue
        verdict = neardup.verify(fp, neardup.Fingerprint.from_bytes(bytes(candidate.fingerprint)), limits)
        if verdict is not None and (best is None or verdict.distance < best.distance):
            best = Found(candidate, verdict.method, verdict.distance, verdict.detail)
    return best


def _final_decision(cluster: Cluster) -> Decision | None:
    return (
        Decision.objects.filter(item__cluster=cluster, is_final=True, voided_at__isnull=True)
        .select_related("item", "policy")
        .order_by("created_at", "id")
        .first()
    )


def carry_over(item: ContentItem, source: Decision, *, why: str) -> Decision:
    # The policy is kept only where it belongs to the item's own queue; the reason says where it came from.
    policy = source.policy if source.policy is not None and source.policy.queue_id == item.queue_id else None
    decision = Decision.objects.create(
        item=item,
        reviewer=None,
        action=source.action,
        policy=policy,
        reason=f"Carried over from item #{source.item_id}: {why}. Original reason: {source.reason}".strip(),
        is_final=True,
        carried_over_from=source,
    )
    item.status = ContentItem.Status.DECIDED
    audit_record(action=AuditEvent.Action.CARRIED_OVER, item=item, decision=decision.pk, source=source.pk,
                 source_item=source.item_id, action_taken=source.action, why=why)
    decision_recorded.send(sender=Decision, decision=decision)
    return decision


def _waiting_member(cluster: Cluster, *, exclude: int) -> bool:
    waiting = (ContentItem.Status.READY, ContentItem.Status.IN_REVIEW, ContentItem.Status.ESCALATED)
    return cluster.members.filter(status__in=waiting).exclude(pk=exclude).exists()


def item_match(*, item_id: int) -> ContentItem | None:
    """Place a freshly derived item: new picture -> its queue; copy of a decided picture -> that decision;
    copy of a picture waiting for review -> waits with it. Idempotent (only PROCESSING items are placed)."""
    with transaction.atomic():
        _matching_lock()
        item = ContentItem.objects.select_for_update().filter(pk=item_id).first()
        if item is None or item.status != ContentItem.Status.PROCESSING or not item.fingerprint:
            return item
        fp = neardup.Fingerprint.from_bytes(bytes(item.fingerprint))
        moving = item.kind != MediaKind.STILL
        if moving:
            # A video or an animation is matched by its frames, against other moving items only: its first frame
            # alone must not make it "the same picture" as a still (intake.motion_match).

            found: Found | None = None
            hit = find_motion_match(item, excluded=_split_partners(item.pk) | {item.pk})
            if hit is not None:
                found = Found(hit.item, hit.method, hit.distance, hit.explanation)
        else:
            found = find_match(item, fp)
            HashKey.objects.bulk_create([HashKey(item=item, key=key) for key in fp.keys])
        item.status = ContentItem.Status.READY
        if found is None:
            item.cluster = Cluster.objects.create(representative=item)
        else:
            cluster = found.item.cluster
            assert cluster is not None  # find_match only returns clustered items
            item.cluster = cluster
            MatchEvidence.objects.create(item=item, matched_item=found.item, method=found.method,
                                         distance=found.distance, explanation=found.explanation[:300])
            why = f"matched item #{found.item.pk} at distance {found.distance}, by {found.method}"
            audit_record(action=AuditEvent.Action.MATCHED, item=item, matched_item=found.item.pk,
                         distance=found.distance, method=found.method, explanation=found.explanation)
            final = _final_decision(cluster)
            if final is not None:
                carry_over(item, final, why=why)
            elif _waiting_member(cluster, exclude=item.pk):
                item.status = ContentItem.Status.CLUSTERED
            else:
                cluster.representative = item
                cluster.save(update_fields=["representative"])
        if item.status != ContentItem.Status.DECIDED:
            _apply_hash_lists(item, fp)
        _frame_matches(item)
        item.save()
        if item.status == ContentItem.Status.READY:
            audit_record(action=AuditEvent.Action.READY, item=item)
        queue_id = item.queue_id

        transaction.on_commit(lambda: broadcast_counts(queue_id))
    return item


# --- hash lists ---------------------------------------------------------------------------------------------


class _ListCache:
    """PDQ and pHash entries of all lists as arrays, rebuilt when the entries change."""

    def __init__(self) -> None:
        self.version: tuple[int, int] | None = None
        self.pdq = np.zeros((0, 4), dtype=np.uint64)
        self.pdq_ids = np.zeros(0, dtype=np.int64)
        self.phash = np.zeros(0, dtype=np.uint64)
        self.phash_ids = np.zeros(0, dtype=np.int64)
        self.lock = threading.Lock()

    def reset(self) -> None:
        with self.lock:
            self.version = None

    def current(self) -> _ListCache:
        from django.db.models import Count, Max

        stats = HashListEntry.objects.aggregate(n=Count("id"), top=Max("id"))
        version = (int(stats["n"] or 0), int(stats["top"] or 0))
        with self.lock:
            if version != self.version:
                pdq_rows = list(HashListEntry.objects.filter(signal_type="pdq").values_list("id", "signal"))
                ph_rows = list(HashListEntry.objects.filter(signal_type="phash").values_list("id", "signal"))
                self.pdq = np.array([_pdq_words(s) for _, s in pdq_rows], dtype=np.uint64).reshape(-1, 4)
                self.pdq_ids = np.array([i for i, _ in pdq_rows], dtype=np.int64)
                self.phash = np.array([int(s, 16) for _, s in ph_rows], dtype=np.uint64)
                self.phash_ids = np.array([i for i, _ in ph_rows], dtype=np.int64)
                self.version = version
        return self


def _pdq_words(hex64: str) -> list[int]:
    return [int(hex64[i : i + 16], 16) for i in range(0, 64, 16)]


_list_cache = _ListCache()


@dataclass(frozen=True)
class ListHit:
    entry: HashListEntry
    distance: int
    signal_type: str


def hash_list_hits(*, pdq: str, pdq_quality: int, phash: int | None) -> list[ListHit]:
    cache = _list_cache.current()
    hits: list[tuple[int, int, str]] = []
    if pdq and pdq_quality >= hashlists.PDQ_MIN_QUALITY and len(cache.pdq_ids):
        query = np.array(_pdq_words(pdq), dtype=np.uint64)
        distances = np.bitwise_count(cache.pdq ^ query).sum(axis=1)
        for index in np.flatnonzero(distances <= hashlists.PDQ_MATCH_THRESHOLD):
            hits.append((int(cache.pdq_ids[index]), int(distances[index]), "pdq"))
    if phash is not None and len(cache.phash_ids):
        query64 = np.uint64(phash & 0xFFFF_FFFF_FFFF_FFFF)
        distances = np.bitwise_count(cache.phash ^ query64)
        for index in np.flatnonzero(distances <= settings.VEIL_LIST_PHASH_RADIUS):
            hits.append((int(cache.phash_ids[index]), int(distances[index]), "phash"))
    if not hits:
        return []
    entries = HashListEntry.objects.select_related("hash_list", "hash_list__target_queue").in_bulk(
        [entry_id for entry_id, _, _ in hits]
    )
    return [ListHit(entries[i], d, t) for i, d, t in hits if i in entries]


def _frame_matches(item: ContentItem) -> None:
    """A still from a known video, or a known picture spliced into a video: audited on the new item (the console
    shows it), never clustered."""
    for match in frames_vs_pictures(item)[:20]:
        audit_record(action=AuditEvent.Action.FRAME_MATCH, item=item, other_item=match.other,
                     moving_item=match.moving_item, seconds=round(match.seconds, 2), distance=match.distance,
                     signal_type="pdq")


def _motion_list_hits(item: ContentItem) -> list[ListHit]:
    """Every usable frame hash of a moving item looked up like a picture's PDQ, plus its file MD5 and frame
    hashes as video signals (video_md5, vpdq entries)."""

    best: dict[int, ListHit] = {}
    for pdq in frame_pdqs(item):
        for hit in hash_list_hits(pdq=pdq, pdq_quality=100, phash=None):
            if hit.entry.pk not in best or hit.distance < best[hit.entry.pk].distance:
                best[hit.entry.pk] = hit
    for hit in video_list_hits(item):
        best.setdefault(hit.entry.pk, hit)
    return list(best.values())


def video_list_hits(item: ContentItem) -> list[ListHit]:
    """video_md5 entries equal to the file's MD5; vpdq entries whose frames match the item's."""

    md5 = Motion.objects.filter(item=item).values_list("md5", flat=True).first()
    frames = list(FrameHash.objects.filter(item=item).values_list("pdq", "quality"))
    return (md5_list_hits(md5) if md5 else []) + (vpdq_list_hits(frames) if frames else [])


# vPDQ (python-threatexchange): a video matches when this share of the query's usable frames is found in it.
VPDQ_MATCH_PERCENT = 80.0


def md5_list_hits(md5: str) -> list[ListHit]:
    rows = HashListEntry.objects.filter(signal_type="video_md5", signal=md5).select_related(
        "hash_list", "hash_list__target_queue")
    return [ListHit(entry, 0, "video_md5") for entry in rows]


def vpdq_list_hits(frames: list[tuple[str, int]]) -> list[ListHit]:
    """vpdq entries matching these frame hashes: at least VPDQ_MATCH_PERCENT of the query's frames of quality >= 50
    within PDQ distance 31 of one of the entry's; the distance reported is 100 minus that share. Brute force."""

    hits = []
    for video in VideoSignal.objects.select_related("entry__hash_list", "entry__hash_list__target_queue"):
        found = motion.vpdq_match(frames, video.frames(), threshold=hashlists.PDQ_MATCH_THRESHOLD,
                                  min_quality=hashlists.PDQ_MIN_QUALITY)
        if found.query_percent >= VPDQ_MATCH_PERCENT:
            hits.append(ListHit(video.entry, round(100 - found.query_percent), "vpdq"))
    return hits


def _apply_hash_lists(item: ContentItem, fp: neardup.Fingerprint) -> None:
    if item.kind != MediaKind.STILL:
        hits = _motion_list_hits(item)
    else:
        hits = hash_list_hits(pdq=fp.pdq, pdq_quality=fp.pdq_quality, phash=item.phash)
    # Strongest action first: remove, then route, then flag.
    order = {HashList.Action.REMOVE: 0, HashList.Action.ROUTE: 1, HashList.Action.FLAG: 2}
    for hit in sorted(hits, key=lambda h: (order[HashList.Action(h.entry.hash_list.action)], h.distance)):
        hash_list = hit.entry.hash_list
        audit_record(action=AuditEvent.Action.HASH_LIST_MATCH, item=item, hash_list=hash_list.name,
                     entry=hit.entry.pk, signal_type=hit.signal_type, distance=hit.distance,
                     list_action=hash_list.action)
        if hash_list.severity is not None and hash_list.severity > item.severity:
            item.severity = hash_list.severity
        if hash_list.action == HashList.Action.REMOVE and item.status != ContentItem.Status.DECIDED:
            decision = Decision.objects.create(
                item=item, reviewer=None, action=Decision.Action.REMOVE, is_final=True, hash_list=hash_list,
                reason=f"Matched hash list {hash_list.name} ({hash_list.label}) by {hit.signal_type} at distance "
                f"{hit.distance}.",
            )
            decision_recorded.send(sender=Decision, decision=decision)
            item.status = ContentItem.Status.DECIDED
            return
        target = hash_list.target_queue_id
        if hash_list.action == HashList.Action.ROUTE and target is not None and target != item.queue_id:
            item.queue_id = target
            return
