"""Matching for moving items (intake/motion.py): copies of a video or animation, and frames against pictures.

* A copy of a known moving item (the same file; or re-encoded, resized or trimmed) joins its cluster, so the
  decision carries over: the same bytes (SHA-256 or MD5), else vPDQ's comparison of the frame hashes (one a second,
  quality >= 50, distance <= 31), where at least `COPY_PERCENT` of the frames of the shorter side must be found in
  the other (a trimmed copy is all found in the original; the original only partly in the copy).
* Frames against pictures: each sampled frame's PDQ is compared with the PDQ of every still picture, and each still's
  PDQ with the frames of every moving item, so a still from a known video, or a known picture spliced into a video,
  is recognised: audited (frame_match) and shown to the reviewer, never clustered (a picture and a video are not
  one item to decide together).
* Frames against hash lists: every frame's PDQ is looked up like a picture's; the strongest list action wins.

Brute force over numpy arrays (one XOR and popcount per pair): fine for tens of thousands of items; the picture
index (intake.hashindex) is not used for frames, see README, "Moving pictures".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from intake import hashlists, motion
from intake.models import ContentItem, FrameHash, MediaKind, Motion

COPY_PERCENT = 80.0


@dataclass(frozen=True)
class MotionFound:
    item: ContentItem
    method: str
    distance: int
    explanation: str


def _hashes(item_id: int) -> list[tuple[str, int]]:
    return list(FrameHash.objects.filter(item_id=item_id).values_list("pdq", "quality"))


def find_motion_match(item: ContentItem, *, excluded: set[int]) -> MotionFound | None:
    usable = ContentItem.objects.filter(cluster__isnull=False).exclude(pk__in=excluded).exclude(kind=MediaKind.STILL)
    same = usable.filter(sha256=item.sha256).order_by("id").first()
    if same is not None:
        return MotionFound(same, "sha256", 0, "the same file, byte for byte")
    md5 = Motion.objects.filter(item=item).values_list("md5", flat=True).first()
    if md5:
        same = usable.filter(motion__md5=md5).order_by("id").first()
        if same is not None:
            return MotionFound(same, "video_md5", 0, "the same file (MD5)")
    mine = _hashes(item.pk)
    if not mine:
        return None
    # Candidates: moving items sharing at least one close frame hash (the vPDQ comparison then decides).
    best: MotionFound | None = None
    for other_id in _close_items(mine, exclude=excluded | {item.pk}):
        other = usable.filter(pk=other_id).first()
        if other is None:
            continue
        found = motion.vpdq_match(mine, _hashes(other_id), threshold=hashlists.PDQ_MATCH_THRESHOLD,
                                  min_quality=hashlists.PDQ_MIN_QUALITY)
        share = max(found.query_percent, found.compared_percent)
        if share >= COPY_PERCENT:
            score = round(100 - share)
            text = (f"vPDQ: {found.query_percent:.0f}% of this item's frames are in item #{other_id}, "
                    f"{found.compared_percent:.0f}% of its frames are in this one")
            if best is None or score < best.distance:
                best = MotionFound(other, "vpdq", score, text)
    return best


def _close_items(mine: list[tuple[str, int]], *, exclude: set[int]) -> list[int]:
    query = _array([h for h, q in mine if q >= hashlists.PDQ_MIN_QUALITY])
    if not len(query):
        return []
    rows = list(FrameHash.objects.exclude(item_id__in=exclude).filter(quality__gte=hashlists.PDQ_MIN_QUALITY)
                .values_list("item_id", "pdq"))
    if not rows:
        return []
    table = _array([pdq for _, pdq in rows])
    ids = np.array([item_id for item_id, _ in rows], dtype=np.int64)
    close = np.zeros(len(rows), dtype=bool)
    for row in query:  # one query frame at a time: memory stays at one row of the table
        close |= np.bitwise_count(table ^ row).sum(axis=1) <= hashlists.PDQ_MATCH_THRESHOLD
    return sorted({int(i) for i in ids[close]})


def _array(hexes: list[str]) -> np.ndarray:
    return np.array([motion._words(h) for h in hexes], dtype=np.uint64).reshape(-1, 4)


@dataclass(frozen=True)
class FrameMatch:
    other: int  # the other item
    seconds: float  # where in the moving item
    distance: int
    moving_item: int


def frames_vs_pictures(item: ContentItem) -> list[FrameMatch]:
    """A moving item's frames against still pictures; or a still's PDQ against the frames of moving items."""
    found: dict[int, FrameMatch] = {}
    if item.kind == MediaKind.STILL:
        if not item.pdq or (item.pdq_quality or 0) < hashlists.PDQ_MIN_QUALITY:
            return []
        query = _array([item.pdq])[0]
        rows = list(FrameHash.objects.filter(quality__gte=hashlists.PDQ_MIN_QUALITY).exclude(item_id=item.pk)
                    .values_list("item_id", "seconds", "pdq"))
        if not rows:
            return []
        distances = np.bitwise_count(_array([r[2] for r in rows]) ^ query).sum(axis=1)
        for (other, seconds, _), distance in zip(rows, distances, strict=True):
            if distance <= hashlists.PDQ_MATCH_THRESHOLD and (other not in found or distance < found[other].distance):
                found[other] = FrameMatch(other, float(seconds), int(distance), other)
        return sorted(found.values(), key=lambda m: (m.distance, m.other))
    frames = [(s, p) for s, p, q in FrameHash.objects.filter(item=item).values_list("seconds", "pdq", "quality")
              if q >= hashlists.PDQ_MIN_QUALITY]
    stills = list(ContentItem.objects.filter(kind=MediaKind.STILL, pdq_quality__gte=hashlists.PDQ_MIN_QUALITY)
                  .exclude(pdq="").exclude(pk=item.pk).values_list("id", "pdq"))
    if not frames or not stills:
        return []
    table = _array([p for _, p in stills])
    for seconds, pdq in frames:
        distances = np.bitwise_count(table ^ _array([pdq])[0]).sum(axis=1)
        for index in np.flatnonzero(distances <= hashlists.PDQ_MATCH_THRESHOLD):
            other, distance = stills[int(index)][0], int(distances[index])
            if other not in found or distance < found[other].distance:
                found[other] = FrameMatch(other, float(seconds), distance, item.pk)
    return sorted(found.values(), key=lambda m: (m.distance, m.other))


def frame_pdqs(item: ContentItem) -> list[str]:
    """The distinct usable frame hashes of a moving item (for hash-list lookups)."""
    seen: dict[str, None] = {}
    for pdq, quality in FrameHash.objects.filter(item=item).values_list("pdq", "quality"):
        if quality >= hashlists.PDQ_MIN_QUALITY:
            seen.setdefault(pdq, None)
    return list(seen)
