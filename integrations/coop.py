"""Coop-style batch submission: `{"items": [{"id", "typeId", "data"}]}`, each item through `item_ingest`.

One bad item never costs the others: each is checked and ingested on its own and gets its own result. The same `id`
sent again by the same account for the same queue is answered with the item it made the first time (`duplicate`),
never a second item. Ids belong to the account that sent them: another requester's equal id is another item, and
a reply names only items of the caller's own.

Images travel in `data.images`, a list with exactly one entry: a base64 data URL (`data:image/png;base64,...`;
the declared type is ignored, the bytes decide) or, only when VEIL_FETCH_URL_PREFIXES allows it, an http(s) URL.
`data.category` and `data.severity` (0-3) are optional; any other key in `data` is ignored.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.files.base import ContentFile
from django.db import InterfaceError, OperationalError
from django.db.models import Q

from core import audit
from core.models import AuditEvent
from intake import media, services
from intake.models import Category, Severity
from integrations import outbound
from review.models import Queue

log = logging.getLogger(__name__)

_DATA_URL = re.compile(r"data:([\w.+-]+/[\w.+-]+)?(;[\w-]+=[\w.-]+)*;base64,", re.ASCII)


class ItemRefused(Exception):
    def __init__(self, code: str, detail: str) -> None:
        super().__init__(code, detail)
        self.code = code
        self.detail = detail


@dataclass
class ItemResult:
    id: Any
    type_id: Any
    status: str  # accepted, duplicate or refused
    item: int | None = None
    error: str = ""
    detail: str = ""

    def as_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"id": self.id, "typeId": self.type_id, "status": self.status}
        if self.item is not None:
            body["item"] = self.item
        if self.error:
            body["error"], body["detail"] = self.error, self.detail
        return body


@dataclass
class BatchResult:
    results: list[ItemResult] = field(default_factory=list)

    @property
    def accepted(self) -> int:
        return sum(1 for r in self.results if r.status != "refused")


def _queue_for(*, user: User, type_id: str, cache: dict[str, Queue | None]) -> Queue:
    if type_id not in cache:
        queues = Queue.objects.filter(is_active=True).filter(Q(coop_type_id=type_id) | Q(slug=type_id))
        # A queue that names this typeId wins over one whose slug happens to equal it.
        queue = sorted(queues, key=lambda q: q.coop_type_id != type_id)[0] if queues else None
        if queue is not None and not (user.is_superuser or queue.submitters.filter(pk=user.pk).exists()):
            queue = None
        cache[type_id] = queue
    found = cache[type_id]
    if found is None:
        raise ItemRefused("unknown_type", f"There is no open queue for typeId {type_id[:64]!r} that this account "
                          "may submit to.")
    return found


def _image_bytes(value: Any) -> bytes:
    if not isinstance(value, str) or not value:
        raise ItemRefused("bad_image", "Each entry of data.images must be a string: a base64 data URL.")
    if value.startswith("data:"):
        head = _DATA_URL.match(value[:200])
        if head is None:
            raise ItemRefused("bad_image", "An image data URL must be data:<type>;base64,<data>.")
        encoded = value[head.end():]
        limit = int(settings.VEIL_MAX_UPLOAD_BYTES)
        # Refused before decoding: base64 is 4 characters for every 3 bytes.
        if len(encoded) // 4 * 3 > limit + 3:
            raise ItemRefused("too_large", f"The image is larger than the {limit:,}-byte limit.")
        try:
            return base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise ItemRefused("bad_base64", "The image data URL is not valid base64.") from None
    if value.startswith(("http://", "https://")):
        try:
            return outbound.fetch_image(value)
        except outbound.OutboundRefused as exc:
            raise ItemRefused(exc.code, exc.detail) from None
    raise ItemRefused("bad_image", "An image must be a base64 data URL (data:image/png;base64,...) or, where this "
                      "server allows fetching, an http(s) URL.")


def _parse_data(data: Any) -> tuple[bytes, str, int]:
    if not isinstance(data, dict):
        raise ItemRefused("invalid_item", "data must be an object.")
    images = data.get("images")
    if not isinstance(images, list) or len(images) != 1:
        raise ItemRefused("one_image", "data.images must be a list holding exactly one image (Veil reviews one "
                          "image per item).")
    category = data.get("category", Category.UNSPECIFIED)
    if category not in Category.values:
        raise ItemRefused("invalid_category", f"data.category must be one of {', '.join(Category.values)}.")
    severity = data.get("severity", Severity.NONE)
    if not isinstance(severity, int) or isinstance(severity, bool) or severity not in Severity.values:
        raise ItemRefused("invalid_severity", "data.severity must be 0, 1, 2 or 3.")
    return _image_bytes(images[0]), str(category), int(severity)


def _submit_one(*, user: User, raw: Any, queues: dict[str, Queue | None]) -> ItemResult:
    external_id, type_id = (raw.get("id"), raw.get("typeId")) if isinstance(raw, dict) else (None, None)
    result = ItemResult(external_id, type_id, "refused")
    try:
        if not isinstance(raw, dict):
            raise ItemRefused("invalid_item", "Each item must be an object.")
        if not isinstance(external_id, str) or not external_id.strip() or len(external_id) > 200:
            raise ItemRefused("invalid_id", "id must be a non-empty string of at most 200 characters.")
        if not isinstance(type_id, str) or not type_id:
            raise ItemRefused("invalid_type", "typeId must be a non-empty string.")
        queue = _queue_for(user=user, type_id=type_id, cache=queues)
        if (earlier := services.submitted_item(submitter=user, queue=queue, external_id=external_id)) is not None:
            result.status, result.item = "duplicate", earlier.pk
            return result
        data, category, severity = _parse_data(raw.get("data"))
        # The database's constraint keeps one item per (submitter, queue, id) when two copies race each other.
        item = services.item_ingest(queue=queue, upload=ContentFile(data, name="coop"), submitted_by=user,
                                    external_id=external_id, category=category, severity=severity)
        result.status, result.item = "accepted", item.pk
    except services.DuplicateSubmission as exc:
        # Only ever the caller's own item: ids are looked up among what this account submitted.
        result.status, result.item = "duplicate", exc.item.pk
    except media.UnsafeImage as exc:
        result.error, result.detail = exc.code, exc.detail
    except ItemRefused as exc:
        result.error, result.detail = exc.code, exc.detail
    except (OperationalError, InterfaceError):
        raise  # the database is gone: a 503 for the whole batch; a retry is safe (taken-in ids answer duplicate)
    except Exception:
        # A fault of Veil's, not of the item: this item says so and the batch goes on, so the answer still tells
        # the caller what happened to every item (nothing was stored for this one: item_ingest cleans up).
        log.exception("coop item %r could not be taken in", str(external_id)[:200])
        result.error, result.detail = "internal_error", ("This item could not be taken in because of an error on "
                                                         "the server (it is logged); nothing was stored for it. "
                                                         "Sending it again is safe.")
    if result.status == "refused":
        audit.audit_record(action=AuditEvent.Action.SUBMISSION_REFUSED, actor=user, via="coop",
                              external_id=str(external_id)[:200], type_id=str(type_id)[:64], code=result.error,
                              detail=result.detail)
    return result


def coop_items_submit(*, user: User, items: list[Any]) -> BatchResult:
    """Ingest each item of a batch on its own; see the module docstring for the shape."""
    batch = BatchResult()
    queues: dict[str, Queue | None] = {}
    for raw in items:
        batch.results.append(_submit_one(user=user, raw=raw, queues=queues))
    return batch
