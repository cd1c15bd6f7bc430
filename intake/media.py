"""Inspection and safe rendering of untrusted uploaded images.

A pure library (no Django): the ingest service calls :func:`inspect_image` in the request before anything is stored,
and the Celery worker calls :func:`make_derivatives` later. Both turn every failure, whatever Pillow raised, into
:class:`UnsafeImage`, so a hostile file can refuse itself but never crash a request or kill a worker.

Refusal codes are stable and meant for machines; details are sentences that may be shown to the uploader.
Two codes overlap by design: ``too_many_pixels`` is the caller's policy (``max_pixels``), while
``decompression_bomb`` is Pillow's own safety net (``Image.MAX_IMAGE_PIXELS``, never changed here). Pillow's net runs
inside ``Image.open`` before we see the size, so a header beyond it (about 89.5 megapixels by default, e.g. a PNG
claiming 20000x20000) is reported as ``decompression_bomb`` even when it is also over ``max_pixels``.
"""

from __future__ import annotations

import functools
import io
import math
import re
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import IO, Final

import imagehash
import numpy as np
import pillow_heif
from PIL import Image, ImageCms, ImageFilter, ImageOps, UnidentifiedImageError

ALLOWED_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "HEIF")
_MIME: Final = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp", "GIF": "image/gif",
                "HEIF": "image/heif"}
# Phone photos (HEIC/HEIF stills) through pillow-heif's Pillow plugin; its libheif comes inside the wheel.
_HEIF_BRANDS: Final = (b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1")
pillow_heif.register_heif_opener()

_SNIFF_BYTES: Final = 512
# The preview is rebuilt from a thumbnail this small, so it can never carry more than this many pixels of detail.
_PREVIEW_SOURCE_SIDE: Final = 16
_NEUTRAL_GREY: Final = (128, 128, 128)
_DISPLAY_QUALITY: Final = 85
_PREVIEW_QUALITY: Final = 75
_U64_MASK: Final = (1 << 64) - 1
# The JPEG walk: inside entropy-coded data a 0xFF byte is followed by 0x00 (a stuffed byte) or a restart marker;
# anything else ends the segment. Restart markers and TEM stand alone; every other marker carries a length.
_JPEG_SEGMENT_END: Final = re.compile(rb"\xff(?![\x00\xd0-\xd7])")
_JPEG_STANDALONE: Final = frozenset(range(0xD0, 0xD8))
_I64_MIN: Final = -(1 << 63)
# libjpeg's JPEG_MAX_DIMENSION: a JPEG header claiming more per side is refused by every decoder.
_JPEG_MAX_SIDE: Final = 65500
# A picture whose display rendition would be thinner than this (an 8000x5 strip fitted into 1600 px is 1600x1) is
# tiled instead: cut into pieces along its length, stacked in order with a thin grey gap, then fitted (and enlarged
# up to _TILED_MAX_ZOOM times if it is still small), so a reviewer sees all of it at a size a person can judge.
_MIN_REVIEWABLE_SIDE: Final = 96
_TILE_GAP: Final = 2
_TILED_MIN_SIDE: Final = 800
_TILED_MAX_ZOOM: Final = 8


class UnsafeImage(Exception):
    """A refused upload. `code` is a short machine code, `detail` a human sentence naming the problem."""

    code: str
    detail: str

    def __init__(self, code: str, detail: str) -> None:
        # Both go to Exception.args so the exception pickles (Celery, multiprocessing) and unpickles intact.
        super().__init__(code, detail)
        self.code = code
        self.detail = detail

    def __str__(self) -> str:
        return f"{self.code}: {self.detail}"


class DecodeBusy(Exception):
    """The process's decode budget stayed full for the whole wait: try again shortly (503 in a request, a retry in
    the worker). Not an UnsafeImage: nothing is wrong with the file."""


class DecodeBudget:
    """Bounds the memory that decoded pictures take in one process, whatever the number of requests or tasks.

    A decode holds `cost` bytes (its raster; see `raster_cost`) while it runs; one that would take the total over
    `budget_bytes` waits until others finish, for at most `wait_seconds`, then raises DecodeBusy. A picture larger
    than the whole budget decodes alone. Django configures the process's budget from VEIL_DECODE_BUDGET_MIB
    (intake.apps); the default here is only for using this module on its own.
    """

    def __init__(self, budget_bytes: int = 512 * 1024 * 1024, wait_seconds: float = 30.0) -> None:
        self.budget_bytes = budget_bytes
        self.wait_seconds = wait_seconds
        self._cond = threading.Condition()
        self._in_use = 0
        self.peak_in_use = 0

    @property
    def in_use(self) -> int:
        return self._in_use

    def _take(self, cost: int) -> int:
        cost = max(0, min(cost, self.budget_bytes))
        deadline = time.monotonic() + self.wait_seconds
        with self._cond:
            while self._in_use and self._in_use + cost > self.budget_bytes:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise DecodeBusy("The server is busy decoding other large pictures. Try again in a minute.")
                self._cond.wait(remaining)
            self._in_use += cost
            self.peak_in_use = max(self.peak_in_use, self._in_use)
        return cost

    def _give_back(self, cost: int) -> None:
        with self._cond:
            self._in_use -= cost
            self._cond.notify_all()

    @contextmanager
    def hold(self, cost: int) -> Iterator[None]:
        taken = self._take(cost)
        try:
            yield
        finally:
            self._give_back(taken)

    @contextmanager
    def scope(self) -> Iterator[DecodeScope]:
        """Entered before the picture is opened, so the budget is given back only after the picture (and its
        raster) is closed: `with DECODES.scope() as budget, Image.open(fp) as img: budget.take(cost); img.load()`."""
        scope = DecodeScope(self)
        try:
            yield scope
        finally:
            self._give_back(scope.taken)


class DecodeScope:
    def __init__(self, budget: DecodeBudget) -> None:
        self.budget = budget
        self.taken = 0

    def take(self, cost: int) -> None:
        self.taken += self.budget._take(cost)


# Bytes a decode holds per pixel: the decoded raster (up to 4 bytes a pixel, RGBA) and the one conversion copy that
# can exist beside it (palette or 16-bit to RGB(A), colour-managed to sRGB) before the original is dropped.
_DECODE_BYTES_PER_PIXEL: Final = 8
DECODES = DecodeBudget()


def raster_cost(width: int, height: int) -> int:
    return width * height * _DECODE_BYTES_PER_PIXEL


@dataclass(frozen=True)
class ImageInfo:
    format: str  # one of ALLOWED_FORMATS, decided by magic bytes
    mime: str
    width: int  # as stored, before EXIF orientation
    height: int
    frames: int  # 1 for still images


@dataclass(frozen=True)
class Derivatives:
    preview: bytes  # JPEG, mode L, blurred beyond recovery
    display: bytes  # JPEG, RGB, longest side <= display_max_side
    display_mime: str
    width: int  # of the display rendition, after EXIF orientation
    height: int
    phash: int  # signed 64-bit
    dhash: int  # signed 64-bit
    # The display rendition as pixels, so the fingerprint step needs no second decode of the JPEG.
    display_image: Image.Image = field(repr=False, compare=False)


def inspect_image(fp: IO[bytes], *, size: int, max_bytes: int, max_pixels: int, max_frames: int) -> ImageInfo:
    """Decide whether an upload may be stored. Raises UnsafeImage; leaves `fp` at offset 0 either way."""
    if size <= 0:
        raise UnsafeImage("empty_file", "The file is empty (0 bytes).")
    if size > max_bytes:
        raise UnsafeImage("too_large", f"The file is {_human_bytes(size)}; the limit is {_human_bytes(max_bytes)}.")
    try:
        fmt = _sniff(fp)
        with DECODES.scope() as budget, _pillow_errors(fp, fmt), Image.open(fp, formats=(fmt,)) as img:
            width, height = img.size
            _check_pixels(width, height, max_pixels)
            if fmt == "JPEG":
                _check_jpeg_sides(width, height)
            # A JPEG's extra MPO pictures (stereo pairs, thumbnails) are never shown, so they are not frames here.
            # GIF, WebP and APNG frame counts come from frame headers; no frame's pixels are decoded for it.
            # A HEIF's further images (bursts, depth maps, thumbnails) are not frames of an animation either.
            frames = 1 if fmt in ("JPEG", "HEIF") else int(getattr(img, "n_frames", 1))
            if frames > max_frames:
                raise UnsafeImage("too_many_frames", f"The image has {frames} frames; the limit is {max_frames}.")
            if fmt != "JPEG":
                budget.take(raster_cost(width, height))
                img.load()  # first frame only
        if fmt == "JPEG":
            with _pillow_errors(fp, fmt):
                _check_jpeg(fp, width, height)
        if fmt == "PNG":
            # The decoder stops at the last IDAT; verify() walks the remaining chunks and their CRCs to IEND,
            # which catches a file cut off after its pixel data.
            with _pillow_errors(fp, fmt), Image.open(fp, formats=(fmt,)) as img:
                img.verify()
        return ImageInfo(format=fmt, mime=_MIME[fmt], width=width, height=height, frames=frames)
    finally:
        fp.seek(0)


def _check_jpeg(fp: IO[bytes], width: int, height: int) -> None:
    """A JPEG's integrity, in a few milliseconds, without decoding its pixels (the worker decodes them, once).

    Two steps: a walk over the file's markers from SOI to EOI, which refuses a file that ends early; and libjpeg
    itself run over the file's skeleton (every marker segment, every table and scan header, in their order, with
    the entropy-coded data left out), which refuses what libjpeg refuses at the level of markers and tables (a
    scan naming undefined tables, a second frame header, an unknown marker, impossible sampling...).
    Entropy-decoding every block here as well refuses no damaged file that this does not: tests/test_media.py
    sweeps random damage through both. Damage inside the entropy-coded data that libjpeg paints over (with a
    warning) is refused by neither.
    """
    fp.seek(0)
    skeleton = _jpeg_skeleton(fp.read())
    if skeleton is None:
        raise UnsafeImage("truncated", "The JPEG file is truncated: its data ends early.")
    header_only = io.BytesIO(skeleton)
    with _pillow_errors(header_only, "JPEG"), Image.open(header_only, formats=("JPEG",)) as img:
        img.draft("L", (max(1, width // 8), max(1, height // 8)))
        img.load()


def _jpeg_skeleton(data: bytes) -> bytes | None:
    """The JPEG up to its first EOI with the entropy-coded data of every scan removed; None if the data ends first.

    Follows libjpeg's reading: stray bytes between segments are skipped, an MPO's further pictures and any trailer
    after the EOI are not read, and (only) where restart markers are in use, an invalid marker inside a scan is
    skipped the way libjpeg resynchronises past it.
    """
    size = len(data)
    pieces: list[bytes] = []
    keep_from = 0
    pos = 2  # after SOI, which _sniff saw
    restarts = False
    while True:
        pos = data.find(b"\xff", pos)
        if pos < 0:
            return None
        while pos < size and data[pos] == 0xFF:  # fill bytes
            pos += 1
        if pos >= size:
            return None
        marker = data[pos]
        pos += 1
        if marker == 0xD9:
            pieces.append(data[keep_from:pos])
            return b"".join(pieces)
        if marker < 0xC0 or marker in _JPEG_STANDALONE or marker == 0xD8:
            # No length follows: a stuffed byte, TEM or a restart marker out of place (libjpeg skips these), an
            # invalid marker or a second SOI (libjpeg refuses these). The skeleton keeps them for libjpeg to judge.
            continue
        if pos + 2 > size:
            return None
        length = int.from_bytes(data[pos : pos + 2], "big")
        if marker == 0xDD and length >= 4 and pos + 4 <= size:
            restarts = int.from_bytes(data[pos + 2 : pos + 4], "big") > 0
        pos += length
        if pos > size:
            return None
        if marker != 0xDA:
            continue
        pieces.append(data[keep_from:pos])  # everything up to and including this scan's header
        while True:  # the entropy-coded data ends at the first 0xFF not followed by 0x00 or a restart marker
            end = _JPEG_SEGMENT_END.search(data, pos)
            if end is None:
                return None
            after = end.end()
            while after < size and data[after] == 0xFF:
                after += 1
            if after >= size:
                return None
            if not (restarts and 0x02 <= data[after] < 0xC0):
                break
            pos = after + 1
        keep_from = pos = end.start()


def make_derivatives(
    fp: IO[bytes], *, display_max_side: int = 1600, preview_max_side: int = 480, max_pixels: int
) -> Derivatives:
    """Render the blurred preview, the clear display rendition and perceptual hashes from the first frame.

    Re-checks what inspect_image checked (the stored file may not be the one inspected) and raises UnsafeImage
    for the same failure classes. Leaves `fp` at offset 0.
    """
    if display_max_side < 1 or preview_max_side < 1:
        raise ValueError("display_max_side and preview_max_side must be positive")
    try:
        fmt = _sniff(fp)
        with DECODES.scope() as budget, _pillow_errors(fp, fmt), Image.open(fp, formats=(fmt,)) as img:
            _check_pixels(*img.size, max_pixels)
            tile = _needs_tiling(img.size, display_max_side)
            if fmt == "JPEG":
                _check_jpeg_sides(*img.size)
                if not tile:
                    # Let libjpeg scale by 1/2, 1/4 or 1/8 while decoding; draft never goes below the requested
                    # size, so asking for the final fitted size keeps full quality for the resize below.
                    img.draft("RGB", _fit(img.size, display_max_side))
            budget.take(raster_cost(*img.size))  # after draft: a JPEG decodes at its reduced size
            img.load()  # first frame only: the console never animates
            # Orientation first: every geometric step below (thumbnail size, preview, hashes) must see the
            # picture the way a person would.
            ImageOps.exif_transpose(img, in_place=True)
            rgb = _to_rgb(img)
            display = (_tiled_display(rgb, display_max_side) if tile
                       else _bare(rgb, _fit(rgb.size, display_max_side)))
            del rgb
            # The preview and the hashes look at 16 px (preview) and 32x32 / 9x8 px (pHash / dHash) of the grey
            # picture; they start from it box-averaged to 256+ px on its short side, which gives the same pHash and
            # dHash to within a bit for a tenth of the cost (imagehash's Lanczos from 1600 px took 20 ms).
            small = display.convert("L").reduce(max(1, min(display.size) // 256))
            preview = _blurred_preview(small, display.size, preview_max_side)
            phash = _hash_to_int(imagehash.phash(small, hash_size=8))
            dhash = _hash_to_int(imagehash.dhash(small, hash_size=8))
            return Derivatives(
                preview=_encode_jpeg(preview, _PREVIEW_QUALITY),
                # Huffman optimisation would make the display rendition ~10 % smaller (a 1600 px photo: 215 KB
                # instead of 238 KB) for 7 ms more per picture, 4 % of the pipeline; a reviewer would not notice.
                display=_encode_jpeg(display, _DISPLAY_QUALITY, optimize=False),
                display_mime="image/jpeg",
                width=display.width,
                height=display.height,
                phash=to_signed64(phash),
                dhash=to_signed64(dhash),
                display_image=display,
            )
    finally:
        fp.seek(0)


def to_signed64(value: int) -> int:
    """Map a 64-bit value (unsigned or already signed) to the signed range PostgreSQL's bigint holds."""
    value = to_unsigned64(value)
    return value - (1 << 64) if value >> 63 else value


def to_unsigned64(value: int) -> int:
    """Map a 64-bit value (signed or already unsigned) to 0 .. 2**64-1."""
    if not _I64_MIN <= value <= _U64_MASK:
        raise ValueError(f"{value} does not fit in 64 bits")
    return value & _U64_MASK


def hamming(a: int, b: int) -> int:
    """Number of differing bits between two 64-bit hashes, each stored signed or unsigned."""
    return (to_unsigned64(a) ^ to_unsigned64(b)).bit_count()


# --- sniffing and error translation ---------------------------------------------------------------------------


def _sniff(fp: IO[bytes]) -> str:
    fp.seek(0)
    head = fp.read(_SNIFF_BYTES)
    fp.seek(0)
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    if head[4:8] == b"ftyp" and head[8:12] in _HEIF_BRANDS:
        return "HEIF"
    if _looks_like_svg(head):
        raise UnsafeImage(
            "svg_refused", "SVG and other XML documents are refused: they can carry scripts and external references."
        )
    raise UnsafeImage(
        "unsupported_format",
        f"The file is not an image in an accepted format ({', '.join(ALLOWED_FORMATS)}); "
        "the type is decided by the file's content, not its name.",
    )


def _looks_like_svg(head: bytes) -> bool:
    text = None
    for bom, codec in ((b"\xef\xbb\xbf", "utf-8"), (b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be")):
        if head.startswith(bom):
            text = head[len(bom) :].decode(codec, "ignore")
            break
    if text is None:
        text = head.decode("latin-1")
    text = text.lstrip().lower()
    if text.startswith("<!--"):
        return "<svg" in text
    return text.startswith(("<?xml", "<svg", "<!doctype svg"))


@contextmanager
def _pillow_errors(fp: IO[bytes], fmt: str) -> Iterator[None]:
    """Translate anything Pillow raises into UnsafeImage, with its bomb warning promoted to an error.

    catch_warnings restores the filters on exit, so nothing leaks to the rest of the process (it is not
    thread-isolated before Python 3.14, but the max_pixels check does not depend on it).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            yield
        except UnsafeImage:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise UnsafeImage("decompression_bomb", f"Refused as a likely decompression bomb: {exc}") from exc
        except Exception as exc:  # a hostile file can make any decoder raise almost anything
            if isinstance(exc, EOFError) or "truncat" in str(exc).lower() or _missing_end(fp, fmt):
                raise UnsafeImage("truncated", f"The {fmt} file is truncated: its data ends early.") from exc
            reason = "it is not a valid file" if isinstance(exc, UnidentifiedImageError) else _clip(str(exc))
            raise UnsafeImage("corrupt", f"The {fmt} data is corrupt and could not be decoded ({reason}). Open the "
                              "picture in an image program and export it again, or send the original file.") from exc


def _missing_end(fp: IO[bytes], fmt: str) -> bool:
    """After a decoder error: does the file lack the structure its format ends with (i.e. was it cut short)?"""
    try:
        length = fp.seek(0, io.SEEK_END)
        if fmt == "WEBP":
            fp.seek(4)
            return int.from_bytes(fp.read(4), "little") + 8 > length
        fp.seek(max(0, length - 64))
        tail = fp.read()
    except (OSError, ValueError):
        return False
    if fmt == "PNG":
        return b"IEND" not in tail
    if fmt == "GIF":
        return not tail.endswith(b";")
    if fmt == "HEIF":
        return False  # a box structure with no end marker: libheif says itself when data is missing
    return b"\xff\xd9" not in tail


def _check_jpeg_sides(width: int, height: int) -> None:
    if max(width, height) > _JPEG_MAX_SIDE:
        raise UnsafeImage(
            "dimensions_unsupported",
            f"The JPEG header says the picture is {width}x{height} pixels, but JPEG allows at most "
            f"{_JPEG_MAX_SIDE:,} pixels per side, so no decoder can open it: the file is damaged or was not made by "
            "a standard encoder. Export the picture again (at a normal size, or as PNG) and send that.",
        )


def _check_pixels(width: int, height: int, max_pixels: int) -> None:
    if width * height > max_pixels:
        raise UnsafeImage(
            "too_many_pixels",
            f"The image is {width}x{height} ({width * height:,} pixels); the limit is {max_pixels:,} pixels.",
        )


def _clip(text: str, limit: int = 160) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _human_bytes(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MiB ({n:,} bytes)" if n >= 1024 * 1024 else f"{n:,} bytes"


# --- rendering ------------------------------------------------------------------------------------------------


def _fit(size: tuple[int, int], max_side: int, *, upscale: bool = False) -> tuple[int, int]:
    width, height = size
    scale = max_side / max(width, height)
    if scale >= 1 and not upscale:
        return width, height
    return max(1, round(width * scale)), max(1, round(height * scale))


def _needs_tiling(size: tuple[int, int], max_side: int) -> bool:
    """Whether fitting the picture into `max_side` would shrink it too thin to review (a long strip). A picture
    that fits as it is stays as it is, however thin: nothing of it is lost."""
    return max(size) > max_side and min(_fit(size, max_side)) < _MIN_REVIEWABLE_SIDE and max(size) > 4 * min(size)


def _tiled_display(img: Image.Image, max_side: int) -> Image.Image:
    """A long strip as a reviewable picture: cut along its length into about sqrt(length/width) pieces, stacked in
    reading order (rows for a wide strip, columns for a tall one) with a thin grey gap between them, then fitted into
    `max_side`, or enlarged (whole multiples, sharp) while it is smaller than _TILED_MIN_SIDE."""
    wide = img if img.width >= img.height else img.transpose(Image.Transpose.TRANSPOSE)
    length, thickness = wide.size
    pieces = max(2, math.ceil(math.sqrt(length / thickness)))
    piece = math.ceil(length / pieces)
    pieces = math.ceil(length / piece)
    mosaic = Image.new("RGB", (piece, pieces * thickness + (pieces - 1) * _TILE_GAP), _NEUTRAL_GREY)
    for index in range(pieces):
        mosaic.paste(wide.crop((index * piece, 0, min(length, (index + 1) * piece), thickness)),
                     (0, index * (thickness + _TILE_GAP)))
    if wide is not img:
        mosaic = mosaic.transpose(Image.Transpose.TRANSPOSE)
    zoom = min(_TILED_MAX_ZOOM, max(1, math.ceil(_TILED_MIN_SIDE / max(mosaic.size))))
    if zoom > 1:
        mosaic = mosaic.resize((mosaic.width * zoom, mosaic.height * zoom), Image.Resampling.NEAREST)
    return _bare(mosaic, _fit(mosaic.size, max_side))


def _to_rgb(img: Image.Image) -> Image.Image:
    """Any mode a JPEG/PNG/GIF/WebP can decode to -> 8-bit sRGB, transparency flattened onto neutral grey."""
    icc = img.info.get("icc_profile")
    if img.mode.startswith("I"):
        img = _to_eight_bit(img)
    elif img.mode == "1":
        img = img.convert("L")
    if img.mode in ("P", "PA") or (img.mode in ("L", "RGB") and "transparency" in img.info):
        img = img.convert("RGBA")  # palette or colour-key transparency becomes a real alpha channel
    if img.mode in ("LA", "La", "RGBa"):
        img = img.convert("RGBA")
    if img.mode == "RGBA":
        flat = Image.new("RGB", img.size, _NEUTRAL_GREY)
        flat.paste(img, mask=img.getchannel("A"))
        img = flat
    if isinstance(icc, bytes) and icc:
        converted = _icc_to_srgb(img, icc)
        if converted is not None:
            return converted
    return img if img.mode == "RGB" else img.convert("RGB")  # no copy: a 50-megapixel raster is 200 MB


def _to_eight_bit(img: Image.Image) -> Image.Image:
    # Pillow's own convert("L") clips 16-bit samples at 255, turning a normal 16-bit PNG almost entirely white;
    # keep the high byte instead. Mode "I" is 32-bit signed, but from these formats it only carries 16-bit samples.
    samples = np.asarray(img)
    if samples.dtype.kind == "i":
        samples = np.clip(samples, 0, 65535)
    return Image.fromarray((samples >> 8).astype(np.uint8))


def _icc_to_srgb(img: Image.Image, icc: bytes) -> Image.Image | None:
    """Apply the embedded profile before it is stripped (CMYK, Display P3, Adobe RGB...); None if unusable."""
    try:
        converted = ImageCms.profileToProfile(
            img, ImageCms.ImageCmsProfile(io.BytesIO(icc)), _srgb_profile(), outputMode="RGB"
        )
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        return None  # a broken or mismatched profile is not worth refusing the image over: fall back to naive
    return converted


@functools.cache
def _srgb_profile() -> ImageCms.ImageCmsProfile:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


def _bare(img: Image.Image, size: tuple[int, int] | None = None) -> Image.Image:
    """A new image of the pixels alone (resized to `size` if given), with no comment, XMP, EXIF or ICC profile
    that could ride along into the saved derivatives (Pillow's JPEG writer re-emits info["comment"] on its own).

    Resize and copy give a new image whose only inherited state is a copy of the info dict, which is emptied.
    The display rendition is at most 1.25x smaller than what libjpeg decoded at a reduced scale, so the Hamming
    filter (antialiased, with a third of Lanczos's taps) loses nothing a reviewer could see and costs half as much.
    """
    if size is None or size == img.size:
        fresh = img.copy()
    else:
        fresh = img.resize(size, Image.Resampling.HAMMING, reducing_gap=2.0)
    fresh.info = {}
    return fresh


def _blurred_preview(grey: Image.Image, shape: tuple[int, int], max_side: int) -> Image.Image:
    """The blurred preview of `grey`, a reduced copy of a picture of size `shape` (which sets the proportions)."""
    tiny = grey.resize(_fit(shape, _PREVIEW_SOURCE_SIDE), Image.Resampling.BOX)
    size = _fit(shape, max_side, upscale=True)
    # Bicubic upscaling leaves faint creases every source pixel; a blur about half a source pixel wide smooths
    # them away so the preview shows colour fields only, with nothing edge-like to focus on.
    radius = max(1.0, max(size) / max(tiny.size) / 2)
    return _bare(tiny.resize(size, Image.Resampling.BICUBIC).filter(ImageFilter.GaussianBlur(radius)))


def _encode_jpeg(img: Image.Image, quality: int, *, optimize: bool = True) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, "JPEG", quality=quality, optimize=optimize)
    return buffer.getvalue()


def _hash_to_int(value: imagehash.ImageHash) -> int:
    return int(str(value), 16)
