"""Reads behind the HMA-compatible endpoints: hash a picture the way ingest does, look a signal up in the lists.

Matching is intake.matching.hash_list_hits, the same search ingest uses (PDQ: distance <= 31; Veil pHash:
distance <= VEIL_LIST_PHASH_RADIUS). A looked-up PDQ has no quality score, so, as in HMA, none is required of it.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import IO

from django.conf import settings
from django.utils.translation import gettext

from core.errors import ReviewError
from intake import hashlists, media, motion, neardup
from intake.matching import ListHit, hash_list_hits, md5_list_hits, vpdq_list_hits
from intake.services import motion_limits

BANK_NAME = re.compile(r"^[A-Z0-9_]+$")
CONTENT_TYPES = ("photo", "video")


@dataclass(frozen=True)
class BankMatch:
    bank: str
    bank_content_id: int
    distance: int


def signal_parse(*, signal_type: str | None, signal: str | None) -> tuple[str, str]:
    """(signal_type, normalised signal) or a 400 naming what is wrong."""
    if not signal_type:
        raise ReviewError("signal_type_required", gettext("signal_type is required (pdq, phash, video_md5 or vpdq)."),
                          status=400)
    if signal is None or signal == "":
        raise ReviewError("signal_required", gettext("signal is required."), status=400)
    if signal_type not in hashlists.SIGNAL_TYPES:
        raise ReviewError("unknown_signal_type", gettext("No such SignalType %(signal_type)s: use pdq, phash, "
                                                         "video_md5 or vpdq.") % {
            "signal_type": repr(signal_type[:40])},
                          status=400)
    try:
        return signal_type, hashlists.normalise_signal(signal_type, signal)
    except ValueError as exc:
        raise ReviewError("invalid_signal", gettext("invalid signal: %(exc)s.") % {"exc": exc}, status=400) from None


def signal_lookup(*, signal_type: str, signal: str, banks: set[str] | None = None) -> list[BankMatch]:
    """Every list entry within the match distance, from lists with HMA-style bank names, closest first."""
    if signal_type == "pdq":
        hits = hash_list_hits(pdq=signal, pdq_quality=100, phash=None)
    elif signal_type in ("video_md5", "vpdq"):
        hits = video_signal_hits(signal_type=signal_type, signal=signal)
    else:
        hits = hash_list_hits(pdq="", pdq_quality=0, phash=hashlists.phash_to_int(signal))
    found = [
        BankMatch(hit.entry.hash_list.name, hit.entry.pk, hit.distance)
        for hit in hits
        if hit.signal_type == signal_type and BANK_NAME.match(hit.entry.hash_list.name)
        and (banks is None or hit.entry.hash_list.name in banks)
    ]
    return sorted(found, key=lambda m: (m.distance, m.bank, m.bank_content_id))


def video_signal_hits(*, signal_type: str, signal: str) -> list[ListHit]:
    """video_md5: the entries with that MD5. vpdq: the entries whose frames match (matching.vpdq_list_hits)."""
    if signal_type == "video_md5":
        return md5_list_hits(signal)
    return vpdq_list_hits([(pdq, quality) for pdq, quality, _ in hashlists.vpdq_frames(signal)])


def video_signals(fp: IO[bytes], *, size: int) -> dict[str, str]:
    """The video_md5 and vpdq signals of an uploaded video, through the same checks as ingest (raises
    media.UnsafeImage)."""

    limits = motion_limits()
    if not motion.is_video(fp):
        raise media.UnsafeImage("unsupported_format", "The file is not a video in an accepted format (MP4, MOV or "
                                "WebM); the type is decided by the file's content, not its name.")
    info = motion.probe_video(fp, size=size, limits=limits)
    deadline = time.monotonic() + max(5, int(settings.VEIL_TASK_TIME_LIMIT_SECONDS) - 10)
    hashes = motion.video_hashes(fp, info=info, limits=limits, deadline=deadline)
    return {"video_md5": motion.md5_of(fp),
            "vpdq": hashlists.to_vpdq((h.pdq, h.quality, h.seconds) for h in hashes)}


def image_pdq(fp: IO[bytes], *, size: int) -> str:
    """The PDQ hash ingest would store for this file, through the same checks (magic bytes, size, pixels,
    frames). Raises media.UnsafeImage."""
    media.inspect_image(fp, size=size, max_bytes=settings.VEIL_MAX_UPLOAD_BYTES, max_pixels=settings.VEIL_MAX_PIXELS,
                        max_frames=settings.VEIL_MAX_FRAMES)
    derived = media.make_derivatives(fp, display_max_side=settings.VEIL_DISPLAY_MAX_SIDE,
                                     max_pixels=settings.VEIL_MAX_PIXELS)
    return neardup.fingerprint(derived.display_image).pdq
