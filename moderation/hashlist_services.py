"""Hash lists in the database: import (all or nothing) and export in the formats teams share."""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.contrib.auth.models import User
from django.db import transaction
from django.utils.translation import gettext

from moderation import hashlists
from moderation.models import AuditEvent, HashList, HashListEntry
from moderation.services import ReviewError, audit_record

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
        new = [
            HashListEntry(
                hash_list=hash_list,
                signal_type=entry.signal_type,
                signal=entry.signal,
                category=entry.category[:200],
                tags=" ".join(entry.tags)[:500],
                collab=entry.collab[:200],
            )
            for entry in parsed
            if entry.key not in existing
        ]
        HashListEntry.objects.bulk_create(new, batch_size=5000)
        audit_record(action=AuditEvent.Action.HASH_LIST_IMPORTED, actor=actor, hash_list=hash_list.name,
                     format=parsed.format, added=len(new), already_present=len(parsed) - len(new),
                     summary=parsed.summary())
    return ImportResult(hash_list, len(new), len(parsed) - len(new), parsed.summary())


def hash_list_export(*, hash_list: HashList, format: str) -> str:
    entries = (
        hashlists.HashEntry(
            signal_type=e.signal_type, signal=e.signal, category=e.category,
            tags=tuple(e.tags.split()), collab=e.collab,
        )
        for e in HashListEntry.objects.filter(hash_list=hash_list).order_by("id").iterator(chunk_size=5000)
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
