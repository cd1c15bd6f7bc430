"""Shared by the matching tests: a picture as JPEG bytes, and an item ingested and processed from a picture."""

from __future__ import annotations

import io

from PIL import Image

from intake.models import ContentItem
from intake.services import item_ingest, item_process
from review.models import Queue
from tests.helpers.factories import upload


def jpeg(image: Image.Image, quality: int = 90) -> bytes:
    out = io.BytesIO()
    image.convert("RGB").save(out, "JPEG", quality=quality)
    return out.getvalue()


def ingest(queue: Queue, image: Image.Image, *, external_id: str = "", data: bytes | None = None) -> ContentItem:
    item = item_ingest(queue=queue, upload=upload(data or jpeg(image), "x.jpg", "image/jpeg"), submitted_by=None,
                       external_id=external_id)
    item_process(item_id=item.pk)
    item.refresh_from_db()
    return item
