"""Hash lists in the database: import (all or nothing) and export in the formats teams share."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from django.contrib.auth.models import User
from django.db import transaction
from django.utils.translation import gettext

from core.audit import audit_record
from core.errors import ReviewError
from core.models import AuditEvent
from intake import hashlists
from intake.models import HashList, HashListEntry, VideoSignal

LIST_NAME = re.compile(r"^[A-Z0-9_]+$")  # HMA's bank-name rule, so lists can be exchanged with HMA unchanged


@dataclass(frozen=True)
class ImportResult:
    hash_list: HashList
    added: int
    already_present: int
    summary: str


def hash_list_import(
    *, hash_list: HashList, data: bytes, actor: User | None, format: str | None = None, skip_unsupported: bool = False
) -> ImportResult:
    """Parse a whole file first; any bad line refuses the file with per-line errors and nothing is stored."""
    text = hashlists.decode(data)
    parsed = hashlists.parse(text, format=format, skip_unsupported=skip_unsupported)
    with transaction.atomic():
        existing = set(
            HashListEntry.objects.filter(hash_list=hash_list).values_list("signal_type", "signal")
        )
        new, bodies = [], []
        for entry in parsed:
            stored = stored_signal(entry.signal_type, entry.signal)
            if (entry.signal_type, stored) in existing:
                continue
            new.append(HashListEntry(hash_list=hash_list, signal_type=entry.signal_type, signal=stored,
                                     category=entry.category[:200], tags=" ".join(entry.tags)[:500],
                                     collab=entry.collab[:200]))
            bodies.append(entry.signal if entry.signal_type == "vpdq" else None)
        HashListEntry.objects.bulk_create(new, batch_size=5000)
        VideoSignal.objects.bulk_create([VideoSignal(entry=row, body=body) for row, body in zip(new, bodies,
                                                                                               strict=True)
                                         if body is not None], batch_size=1000)
        audit_record(action=AuditEvent.Action.HASH_LIST_IMPORTED, actor=actor, hash_list=hash_list.name,
                     format=parsed.format, added=len(new), already_present=len(parsed) - len(new),
                     summary=parsed.summary())
    return ImportResult(hash_list, len(new), len(parsed) - len(new), parsed.summary())


def stored_signal(signal_type: str, signal: str) -> str:
    """What HashListEntry.signal holds: the hash itself, or for a vpdq signal (a list of frame hashes, kept whole in
    VideoSignal) its SHA-256, which keeps entries unique per list."""
    return hashlib.sha256(signal.encode()).hexdigest() if signal_type == "vpdq" else signal


def hash_list_export(*, hash_list: HashList, format: str) -> str:
    rows = HashListEntry.objects.filter(hash_list=hash_list).select_related("video").order_by("id")
    entries = (
        hashlists.HashEntry(
            signal_type=e.signal_type, signal=e.video.body if e.signal_type == "vpdq" else e.signal,
            category=e.category, tags=tuple(e.tags.split()), collab=e.collab,
        )
        for e in rows.iterator(chunk_size=5000)
    )
    if format == "te_csv":
        return hashlists.dump_te_csv(entries)
    if format == "te_simple":
        return hashlists.dump_te_simple(entries)
    if format == "veil_phash_csv":
        return hashlists.dump_veil_phash_csv(e for e in entries if e.signal_type == "phash")
    raise ReviewError("unknown_format", gettext("Unknown format %(format)s: use te_csv, te_simple or "
                                                "veil_phash_csv.") % {"format": repr(format)},
                      status=400)
