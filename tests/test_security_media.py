"""Issue 22, point 8 (pictures): a JPEG whose header claims more than JPEG allows per side is refused with a sentence
someone can act on, and an extremely wide or tall picture becomes a clear rendition a person can review (tiled),
not a 1600x1 line."""

from __future__ import annotations

import io

import numpy as np
import pytest
from django.core.cache import cache
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from intake import media
from intake.models import ContentItem
from tests.helpers.factories import make_queue
from tests.helpers.hma import client_for

COLOURS = [(220, 30, 30), (30, 200, 30), (30, 30, 220), (230, 220, 20), (200, 30, 200), (20, 210, 210),
           (250, 250, 250), (10, 10, 10)]


def jpeg_claiming(width: int, height: int) -> bytes:
    """A small valid JPEG whose frame header (SOF0) is rewritten to claim width x height."""
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (120, 30, 30)).save(buffer, "JPEG")
    data = bytearray(buffer.getvalue())
    sof = data.find(b"\xff\xc0")
    data[sof + 5:sof + 7] = height.to_bytes(2, "big")
    data[sof + 7:sof + 9] = width.to_bytes(2, "big")
    return bytes(data)


def strip(length: int, thickness: int, *, tall: bool = False) -> Image.Image:
    """A strip in len(COLOURS) equal bands along its length, so every part of it can be looked for."""
    image = Image.new("RGB", (length, thickness))
    band = length // len(COLOURS)
    for index, colour in enumerate(COLOURS):
        image.paste(colour, (index * band, 0, length if index == len(COLOURS) - 1 else (index + 1) * band, thickness))
    return image.transpose(Image.Transpose.TRANSPOSE) if tall else image


def encode(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, quality=95) if fmt == "JPEG" else image.save(buffer, fmt)
    return buffer.getvalue()


@pytest.mark.parametrize(("width", "height"), [(65535, 1), (1, 65535), (65501, 16)])
def test_a_jpeg_claiming_more_than_jpeg_allows_is_refused_with_an_actionable_sentence(width: int, height: int) -> None:
    data = jpeg_claiming(width, height)
    with pytest.raises(media.UnsafeImage) as refused:
        media.inspect_image(io.BytesIO(data), size=len(data), max_bytes=10**8, max_pixels=50_000_000, max_frames=9)
    assert refused.value.code == "dimensions_unsupported"
    assert f"{width}x{height}" in refused.value.detail and "65,500" in refused.value.detail
    assert "Export the picture again" in refused.value.detail
    assert "broken data stream" not in refused.value.detail


def test_a_corrupt_file_says_what_to_do() -> None:
    data = bytearray(encode(strip(400, 300), "PNG"))
    data[60:120] = b"\x00" * 60  # damage inside IHDR/IDAT
    with pytest.raises(media.UnsafeImage) as refused:
        media.inspect_image(io.BytesIO(bytes(data)), size=len(data), max_bytes=10**8, max_pixels=10**8,
                            max_frames=9)
    assert refused.value.code in ("corrupt", "truncated")
    if refused.value.code == "corrupt":
        assert "export it again, or send the original file" in refused.value.detail


@pytest.mark.parametrize(("fmt", "tall"), [("PNG", False), ("PNG", True), ("JPEG", False)])
def test_an_extremely_long_picture_is_tiled_into_a_reviewable_rendition(fmt: str, tall: bool) -> None:
    picture = strip(8000, 5 if fmt == "PNG" else 16, tall=tall)
    derived = media.make_derivatives(io.BytesIO(encode(picture, fmt)), display_max_side=1600, max_pixels=50_000_000)
    assert min(derived.width, derived.height) >= 96, (derived.width, derived.height)  # not 1600x1
    assert max(derived.width, derived.height) <= 1600
    pixels = np.asarray(derived.display_image.convert("RGB")).reshape(-1, 3).astype(int)
    for colour in COLOURS:  # every part of the strip is in the rendition
        distance = np.abs(pixels - np.array(colour)).sum(axis=1)
        assert (distance < 40).sum() > 200, colour
    preview = Image.open(io.BytesIO(derived.preview))
    assert min(preview.size) >= 96  # the blurred preview has the rendition's proportions


def test_ordinary_and_small_thin_pictures_keep_their_shape() -> None:
    for size in [(1600, 1200), (3000, 2000), (512, 64), (1600, 5)]:  # fits as it is: nothing is lost, nothing tiled
        derived = media.make_derivatives(io.BytesIO(encode(strip(*size), "PNG")), display_max_side=1600,
                                         max_pixels=50_000_000)
        expected = media._fit(size, 1600)
        assert (derived.width, derived.height) == expected, size


@pytest.mark.django_db
def test_through_the_api_the_item_is_refused_or_made_reviewable(requester, django_capture_on_commit_callbacks) -> None:
    cache.clear()
    make_queue(slug="reports").submitters.add(requester)
    client = client_for(requester)

    def post(data: bytes, name: str):
        return client.post("/api/v1/items/", {"file": SimpleUploadedFile(name, data), "queue": "reports"},
                           format="multipart")

    refused = post(jpeg_claiming(65535, 1), "huge_dims.jpg")
    assert refused.status_code == 400 and refused.json()["error"] == "dimensions_unsupported"
    with django_capture_on_commit_callbacks(execute=True):
        accepted = post(encode(strip(8000, 5), "PNG"), "banner.png")
    assert accepted.status_code == 201, accepted.content
    item = ContentItem.objects.get(pk=accepted.json()["id"])
    assert item.status == ContentItem.Status.READY and item.width and item.height
    assert min(item.width, item.height) >= 96
    cache.clear()
