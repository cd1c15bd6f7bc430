"""Near-duplicate image matching: fingerprints, index keys and pixel-level verification.

A pure library (no Django): the matching worker calls :func:`fingerprint` on each display rendition, puts
``Fingerprint.keys`` into its :class:`intake.hashindex.HashIndex`, looks candidates up with :func:`query_keys`
and keeps only those :func:`verify` accepts. ``manage.py cluster_images`` runs the same engine over a folder.

The pipeline, and why each stage exists
---------------------------------------
1. **Normalise.** Box-reduce to about 256 px (fast, antialiased), take luma (so colour and grayscale copies agree)
   and trim uniform margins (so a solid frame, letterboxing or a plain border does not move the content).
   **Bands and chrome.** When flat rows or columns with sparse text or icons surround the picture (a caption or
   meme band, a letterbox with a title, the status bar, header and action rows of an app screenshot), a second
   *view* of what is left without them is fingerprinted too (keys and thumbnails); a band must contain at least
   one uniform line, so a photograph's own flat sky is not removed. Keys carry their view in their window number
   (view * VIEW_STRIDE + window).
2. **Window keys (candidate generation).** A 64-bit pHash (32x32 area-averaged grid, 8x8 lowest DCT frequencies,
   bits above the median) of 17 windows of each view: the whole picture, its centre 80 % (ignores the
   black corners of a rotation and a border that survived trimming), a 3x3 grid of 90 % windows (a crop of up to
   10 % per side puts the cropped copy within 2.5 % of one of them), the top and bottom 86 % (a caption band
   of 12-20 % turns the original into one of those) and the four 60 % corners (stickers or text laid over part of
   the picture usually leave one of them uncovered). Both sides of a comparison use all windows, so it does not
   matter whether the cropped copy or the original arrived first.
   Each key is *mirror-canonical*: flipping a picture left-right flips the sign of exactly the DCT coefficients
   with an odd horizontal frequency, so the key is computed from whichever orientation makes the left-right
   gradient coefficient positive. A mirrored copy gets the *same* keys, which halves the query keys compared
   with hashing both orientations. When that coefficient is too small to trust (a nearly symmetric window)
   the key of the other orientation is added as well.
3. **Verification.** A candidate found through any key pair within ``index_radius`` bits is only a hypothesis
   ("window i of the new picture shows window j of the stored one, maybe mirrored"). It is checked on the small
   thumbnails kept in ``Fingerprint.data`` (grey ~64x64, colour 12x12). A similarity map (scale, rotation,
   shift) plus gain and offset is refined from the hypothesis by robust Gauss-Newton (ESM, Huber-weighted, at
   half resolution); a copy that needs no geometry (resized, re-encoded, brightened, grey, mirrored) is first
   measured as it is. The aligned pair must then pass every test of :class:`Thresholds`:
   - geometry: each picture covers most of the other (``min_overlap``: crops and captions yes, a chessboard of
     12x12 cells inside one of 10x10 no), a small rotation, a plausible scale;
   - colour, when both pictures have some: the aligned colour fields agree (grey copies are exempt);
   - regions: in almost every block of a 6x6 grid with contrast, the grey levels correlate (a shape only one
     picture has fails here even when it is smooth);
   - detail: the high-pass images correlate and almost every block with fine detail agrees. This is what tells
     a stereo pair (parallax moves near and far things differently; pHash differs by only 4-8 bits) or the
     next tile of the same texture from a copy. Pictures with too little detail need a near-perfect global
     correlation instead;
   - occlusion: when the structure tests fail, blocks made mostly of pixels far (OUTLIER_LEVELS) from the other
     picture's, after a gain and offset refitted without them, are set aside as covered (a sticker, text, a band)
     and the same tests run on the rest, if few were set aside (``max_occluded_blocks``). Colours are always
     compared without the OCCLUDED_COLOUR share of colour pixels that differ most.
   Besides the key pairs, a band laid over a picture (the frame unchanged) gets one more start: the two frames
   matched as they are, each view's box placed in its frame.
4. **Low-information pictures** (near-uniform: flat greys, faint gradients or noise) carry no index keys and
   only verify against a thumbnail that is the same to within a few grey levels: a flat picture brightened is
   indistinguishable from a different flat picture, and a false merge is the worse error.

Everything runs on <= 256 px arrays: :func:`fingerprint` takes 3-5 ms for a 1600x1200 picture, :func:`verify`
0.6-1 ms for a copy that needs no alignment and 1-3 ms for one that does (one core, numpy).
"""

from __future__ import annotations

import functools
import struct
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pdqhash
from PIL import Image

from intake.hashindex import HashIndex

FloatArray = npt.NDArray[np.float64]

VERSION: Final = 1
WORK_SIDE: Final = 256  # the normalised working picture is box-reduced to about this longest side
THUMB_AREA: Final = 64 * 64  # verification thumbnail: about this many pixels (a 4:3 picture gets 74x55)...
THUMB_MAX_SIDE: Final = 160  # ...with at most this longest side
CHROMA_AREA: Final = 12 * 12  # colour (Cb, Cr) thumbnail: about this many pixels
HASH_GRID: Final = 32  # pHash: a window is area-averaged to 32x32 and the 8x8 lowest frequencies are kept
DCT_KEEP: Final = 8
TRIM_STD: Final = 4.0  # a margin row/column with a standard deviation at most this (grey levels) is trimmed...
TRIM_MAX: Final = 0.30  # ...up to this fraction of the picture per side
MIRROR_MARGIN: Final = 0.15  # orientation of a window is "ambiguous" below this share of its odd-frequency RMS
LOW_CONTRAST: Final = 4.0  # thumbnails with a grey-level standard deviation below this are "low information"
QUICK_BITS: Final = 4  # same-window key pairs this close are first measured without aligning
COARSE_STEPS: Final = 5  # Gauss-Newton steps at half resolution (copies converge in 1-4)
BLOCKS: Final = 6  # verification grid: BLOCKS x BLOCKS blocks over the overlap of the aligned pictures
BLOCK_TEXTURE: Final = 2.0  # a block is textured if its high-pass standard deviation is at least this (grey levels)
REGION_CONTRAST: Final = 3.0  # a block has contrast if its grey-level standard deviation is at least this
OUTLIER_LEVELS: Final = 32.0  # a pixel this far (grey levels) from the other picture's is "occluded"...
OCCLUDED_SHARE: Final = 0.2  # ...and a block with this share of such pixels is set aside
OCCLUDED_COLOUR: Final = 0.2  # colour agreement of occluded copies leaves out this share of the colour thumbnail
FLAT_SHARE: Final = 0.55  # a row/column is "flat" (chrome, a caption band) if this share is within ~12 grey levels
CHROME_MAX: Final = 0.45  # bands and chrome removed from each side: at most this fraction of the picture...
CHROME_MIN_AREA: Final = 0.2  # ...and at least this share of the area must remain


def _grid(scale: float, steps: int) -> list[tuple[float, float, float, float]]:
    offsets = [round(i * (1 - scale) / (steps - 1), 6) for i in range(steps)]
    return [(x, y, round(x + scale, 6), round(y + scale, 6)) for y in offsets for x in offsets]


# Windows as (x0, y0, x1, y1) fractions of the trimmed picture. The set is closed under left-right mirroring,
# which the mirror-canonical keys rely on. Index 0 is always the whole picture.
WINDOWS: Final[tuple[tuple[float, float, float, float], ...]] = (
    (0.0, 0.0, 1.0, 1.0),
    (0.1, 0.1, 0.9, 0.9),
    *_grid(0.9, 3),
    (0.0, 0.0, 1.0, 0.86),
    (0.0, 0.14, 1.0, 1.0),
    *_grid(0.6, 2),
)
WINDOW_NAMES: Final = (
    "whole", "centre 80%", *(f"90% {v}{h}" for v in ("top", "middle", "bottom") for h in ("-left", "", "-right")),
    "top 86%", "bottom 86%", *(f"60% {v}-{h}" for v in ("top", "bottom") for h in ("left", "right")),
)


def window_name(window: int) -> str:
    """People's name of a key's window (view * VIEW_STRIDE + window index)."""
    view, index = divmod(window, VIEW_STRIDE)
    return WINDOW_NAMES[index] + (" without bands/chrome" if view else "")


@functools.cache
def _mirror_of_window() -> tuple[int, ...]:
    out = []
    for x0, y0, x1, y1 in WINDOWS:
        target = (round(1 - x1, 6), y0, round(1 - x0, 6), y1)
        out.append(next(i for i, w in enumerate(WINDOWS) if np.allclose(w, target)))
    return tuple(out)


@dataclass(frozen=True)
class Thresholds:
    """Every tunable of the engine, with its documented default (docs/benchmarks.md shows what they give).

    Index:
      index_radius            Hamming radius (bits of 64) for the candidate lookup on window keys. 8 lets the
                              index probe each of its 3 chunks within radius 2 (fast) and still finds ~97 % of the
                              edited copies; verification, not this radius, decides what merges.
    Geometry of the alignment (query and candidate thumbnails):
      min_overlap             each picture must cover at least this share of the other once aligned; a 10 % crop
                              per side leaves 81 %, a 20 % caption band 83 %, a 10x10 chessboard inside a 12x12 one
                              only 69 %.
      max_rotation            degrees of rotation the alignment may find (the edits cover a few degrees).
      max_scale_change        the content of the two thumbnails may differ in scale by at most this factor.
    Colour (compared only when both pictures have colour, so grey copies still match):
      chroma_min_strength     RMS Cb/Cr distance from grey (levels) above which a picture counts as colourful.
      min_chroma_similarity   cosine of the two aligned colour fields; copies score >= 0.95, different pictures of
                              similar layout ~0.4.
    Structure (grey levels, after the best gain and offset):
      region_correlation      a 1/36 block of the overlap with contrast in either picture "agrees" when the grey
                              levels correlate at least this much...
      min_region_agreement    ...and this share of such blocks must agree (shapes that only one picture has fail).
      min_correlation         global correlation of the aligned thumbnails.
      min_detail_correlation  correlation of their high-pass (fine detail) images.
      block_correlation       a block with fine detail in either picture "agrees" when its detail correlates this
                              much...
      min_block_agreement     ...and this share of them must agree. Detail is what tells a stereo pair or a
                              neighbouring tile of the same texture from a copy.
      min_texture_blocks      with fewer detailed blocks a picture is "smooth" (a colour wheel, a blurred
                              photo) and needs smooth_min_correlation instead of the two detail tests.
      smooth_min_correlation  see above.
    Occlusion (stickers, text, bands laid over the picture):
      max_occluded_blocks     when the structure tests fail, blocks of the 6x6 grid mostly made of pixels more than
                              OUTLIER_LEVELS apart are set aside and the same tests run on the rest, if at most
                              this many were set aside (9 = a quarter of the grid: 15 % covered, straddling blocks).
    Low information (thumbnail grey-level standard deviation below LOW_CONTRAST, decided when fingerprinting):
      low_info_max_diff       such pictures have no index keys and only match a thumbnail within this mean
                              absolute grey-level difference: a brightened flat grey is indistinguishable from a
                              different flat grey.
    """

    index_radius: int = 8
    min_overlap: float = 0.75
    max_rotation: float = 6.0
    max_scale_change: float = 1.6
    chroma_min_strength: float = 6.0
    min_chroma_similarity: float = 0.80
    region_correlation: float = 0.50
    min_region_agreement: float = 0.75
    min_correlation: float = 0.70
    min_detail_correlation: float = 0.55
    block_correlation: float = 0.50
    min_block_agreement: float = 0.70
    min_texture_blocks: int = 8
    smooth_min_correlation: float = 0.99
    low_info_max_diff: float = 2.0
    max_occluded_blocks: int = 9

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None) -> Thresholds:
        """Build from a settings dict; unknown names raise so a typo in settings is not silently ignored."""
        values = dict(values or {})
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown near-duplicate threshold(s): {', '.join(sorted(unknown))}")
        return cls(**values)


# --- fingerprints --------------------------------------------------------------------------------------------------

_ENTRY = struct.Struct("<QBB")  # key (unsigned 64), window index, mirrored flag
# version 1: version, thumb width, thumb height, chroma width, chroma height, content width, content height, entries
_HEAD = struct.Struct("<BBBBBHHB")
# version 2: version, views, entries, working width and height; then per view its shapes and box, then the
# entries, then zlib(pixels)
PAYLOAD_VERSION: Final = 2
_HEAD2 = struct.Struct("<BBHHH")
_VIEW = struct.Struct("<BBBBHHHHHH")  # thumb w, h, chroma w, h, content w, h, box left, top, right, bottom


@dataclass(frozen=True)
class Fingerprint:
    """What the engine keeps per picture. ``to_bytes`` is about 3-4.5 KB.

    keys         signed 64-bit window keys to store in the index (one DB row each); empty for low-information
                 pictures, which are never found through the index.
    pdq          PDQ hash of the whole (untrimmed) picture, 64 lowercase hex characters, for interoperability
                 with industry hash lists; pdq_quality is PDQ's 0-100 quality score.
    data         verification payload: every window key with its window and orientation, the grey (~64x64) and
                 colour (12x12 Cb/Cr) thumbnails of the trimmed picture (zlib) and its size.
    """

    keys: tuple[int, ...]
    pdq: str
    pdq_quality: int
    data: bytes

    def to_bytes(self) -> bytes:
        pdq = bytes.fromhex(self.pdq)
        head = struct.pack("<B32sBB", VERSION, pdq, self.pdq_quality, len(self.keys))
        keys = struct.pack(f"<{len(self.keys)}q", *self.keys)
        return head + keys + struct.pack("<I", len(self.data)) + self.data

    @classmethod
    def from_bytes(cls, blob: bytes) -> Fingerprint:
        """Inverse of :meth:`to_bytes`; raises ValueError on another version or a damaged blob."""
        try:
            version, pdq, quality, count = struct.unpack_from("<B32sBB", blob, 0)
            if version != VERSION:
                raise ValueError(f"unsupported fingerprint version {version}")
            offset = 35
            keys = struct.unpack_from(f"<{count}q", blob, offset)
            offset += 8 * count
            (length,) = struct.unpack_from("<I", blob, offset)
            offset += 4
        except struct.error as exc:
            raise ValueError(f"truncated fingerprint: {exc}") from exc
        data = bytes(blob[offset : offset + length])
        if len(data) != length:
            raise ValueError("truncated fingerprint")
        return cls(keys=tuple(keys), pdq=pdq.hex(), pdq_quality=quality, data=data)

    @functools.cached_property
    def payload(self) -> Payload:
        return Payload.parse(self.data)


@dataclass(frozen=True)
class View:
    """One normalisation of the picture: the trimmed picture (view 0) or, when the picture has bands or app chrome
    around it, what is left without them (view 1)."""

    thumb: FloatArray  # grey thumbnail, about THUMB_AREA pixels
    content_size: tuple[int, int]  # size in display pixels (detail is limited by it)
    chroma: FloatArray  # (h, w, 2) Cb and Cr minus 128, about CHROMA_AREA pixels
    box: tuple[int, int, int, int] = (0, 0, 0, 0)  # (left, top, right, bottom) in working pixels, for explanations


VIEW_STRIDE: Final = 32  # a key's window number is view * VIEW_STRIDE + window index


@dataclass(frozen=True)
class Payload:
    hashes: npt.NDArray[np.uint64]  # every window key, unsigned, mirror-canonical (plus ambiguous alternates)
    windows: npt.NDArray[np.intp]  # view * VIEW_STRIDE + window index of each key
    mirrored: npt.NDArray[np.bool_]  # True if the key was computed on the mirrored window
    views: tuple[View, ...]
    work_size: tuple[int, int] = (0, 0)  # the working picture the view boxes are in ((0, 0): not recorded, v1)

    @property
    def thumb(self) -> FloatArray:
        return self.views[0].thumb

    @property
    def content_size(self) -> tuple[int, int]:
        return self.views[0].content_size

    @property
    def chroma(self) -> FloatArray:
        return self.views[0].chroma

    @classmethod
    def parse(cls, data: bytes) -> Payload:
        if data[:1] == bytes([1]):  # version 1: one view
            version, tw, th, kw, kh, cw, ch, count = _HEAD.unpack_from(data, 0)
            offset = _HEAD.size
            shapes = [(tw, th, kw, kh, cw, ch, 0, 0, 0, 0)]
            work_size = [0, 0]
        else:
            version, nviews, count, *work_size = _HEAD2.unpack_from(data, 0)
            if version != PAYLOAD_VERSION:
                raise ValueError(f"unsupported fingerprint payload version {version}")
            offset = _HEAD2.size
            shapes = []
            for _ in range(nviews):
                shapes.append(_VIEW.unpack_from(data, offset))
                offset += _VIEW.size
        raw = np.frombuffer(data, dtype=np.dtype([("h", "<u8"), ("w", "u1"), ("m", "u1")]), count=count,
                            offset=offset)
        offset += count * _ENTRY.size
        pixels = np.frombuffer(zlib.decompress(data[offset:]), dtype=np.uint8)
        views = []
        at = 0
        for tw, th, kw, kh, cw, ch, *box in shapes:
            thumb = pixels[at : at + th * tw].reshape(th, tw)
            at += th * tw
            chroma = pixels[at : at + kh * kw * 2].reshape(kh, kw, 2).astype(np.float64) - 128.0
            at += kh * kw * 2
            left, top, right, bottom = box
            views.append(View(thumb.astype(np.float64), (cw, ch), chroma, (left, top, right, bottom)))
        return cls(
            hashes=raw["h"].astype(np.uint64),
            windows=raw["w"].astype(np.intp),
            mirrored=raw["m"].astype(bool),
            views=tuple(views),
            work_size=(int(work_size[0]), int(work_size[1])),
        )

    @property
    def low_information(self) -> bool:
        return len(self.hashes) == 0


def _dct_matrix(rows: int) -> FloatArray:
    u = np.arange(rows)[:, None]
    x = np.arange(HASH_GRID)[None, :]
    return np.asarray(np.sqrt(2.0 / HASH_GRID) * np.cos(np.pi * (2 * x + 1) * u / (2 * HASH_GRID)))


# Rows (vertical frequencies) 0-8, columns (horizontal frequencies) 0-7: the 8x8 lowest frequencies, except that
# the DC term, whose bit would always be 1 (it is always above the median), is replaced by vertical frequency 8.
# That keeps all 64 bits informative, and frequency (8, 0) is even horizontally, so mirroring leaves it alone.
_DCT_V: Final = _dct_matrix(DCT_KEEP + 1)
_DCT_H: Final = _dct_matrix(DCT_KEEP)
_ODD_SIGN: Final = np.where(np.arange(DCT_KEEP) % 2 == 1, -1.0, 1.0)[None, None, :]
_BIT_WEIGHTS: Final = np.left_shift(np.uint64(1), np.arange(63, -1, -1, dtype=np.uint64))


def _phash(coefficients: FloatArray) -> npt.NDArray[np.uint64]:
    """pHash bits of (n, 8, 8) DCT blocks: 1 where a coefficient is above the block's median, row-major, MSB first."""
    flat = coefficients.reshape(len(coefficients), -1)
    bits = flat > np.median(flat, axis=1, keepdims=True)
    return np.asarray((bits.astype(np.uint64) * _BIT_WEIGHTS).sum(axis=1, dtype=np.uint64))


def _working(image: Image.Image) -> Image.Image:
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    factor = max(1, max(rgb.size) // WORK_SIDE)
    return rgb.reduce(factor) if factor > 1 else rgb


def _trim_box(grey: FloatArray) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) after removing uniform margins of one colour on each side (frames, letterboxes)."""
    h, w = grey.shape

    def margin(lines: FloatArray, means: FloatArray, limit: int) -> int:
        uniform = (lines <= TRIM_STD) & (np.abs(means - means[0]) <= 2 * TRIM_STD)
        count = int(np.argmin(uniform)) if not uniform.all() else len(uniform)
        return min(count, limit)

    row_std, row_mean = grey.std(axis=1), grey.mean(axis=1)
    col_std, col_mean = grey.std(axis=0), grey.mean(axis=0)
    if (row_std <= TRIM_STD).all() or (col_std <= TRIM_STD).all():
        return 0, 0, w, h  # nothing but margin: keep the picture as it is
    top = margin(row_std, row_mean, int(h * TRIM_MAX))
    bottom = margin(row_std[::-1], row_mean[::-1], int(h * TRIM_MAX))
    left = margin(col_std, col_mean, int(w * TRIM_MAX))
    right = margin(col_std[::-1], col_mean[::-1], int(w * TRIM_MAX))
    if h - top - bottom < 8 or w - left - right < 8:
        return 0, 0, w, h
    return left, top, w - right, h - bottom


def _to_signed(value: int) -> int:
    return value - (1 << 64) if value >> 63 else value


def _chrome_box(grey: FloatArray, box: tuple[int, int, int, int]) -> tuple[int, int, int, int] | None:
    """The box inside ``box`` without bands of flat colour carrying sparse text or icons at its edges: caption and
    meme bands, letterboxing with a title, the status bar, header and action rows of an app screenshot.

    A line (row or column) is "flat" when at least FLAT_SHARE of its pixels lie within a few grey levels of its
    most common level; a band is a run of flat lines from an edge, interrupted by no more than a few non-flat ones
    (a line of text is mostly background). Returns None when nothing is removed or too little would remain."""
    left, top, right, bottom = box
    inner = grey[top:bottom, left:right]
    h, w = inner.shape
    levels = np.clip(inner / 8, 0, 31).astype(np.intp)

    def lines_info(lines: npt.NDArray[np.intp], values: FloatArray) -> tuple[list[int], list[bool], list[bool]]:
        """Per line: its most common level (bins of 8 grey levels), whether it is flat at that level, uniform."""
        n, length = lines.shape
        counts = np.bincount((lines + 32 * np.arange(n)[:, None]).ravel(), minlength=32 * n).reshape(n, 32)
        near = counts.copy()
        near[:, 1:] += counts[:, :-1]
        near[:, :-1] += counts[:, 1:]
        mode = near.argmax(axis=1)
        is_flat = near[np.arange(n), mode] >= FLAT_SHARE * length
        uniform = values.std(axis=1) <= TRIM_STD
        return mode.tolist(), is_flat.tolist(), uniform.tolist()

    def band(info: tuple[list[int], list[bool], list[bool]], limit: int) -> int:
        # Chrome is flat at the level of the last uniform line (or of the outermost line): a picture whose own rows
        # are flat at another level (a grey moon under white chrome) is not eaten into.
        mode, is_flat, uniform = info
        gap = max(2, len(mode) // 40)
        run = 0
        level: int | None = None
        seen_uniform = False  # a band with no uniform line at all is the picture's own flat area, not chrome
        for k in range(min(limit, len(mode))):
            if uniform[k] or (level is None and is_flat[k]):
                level = mode[k]
                seen_uniform = seen_uniform or uniform[k]
            if is_flat[k] and level is not None and abs(mode[k] - level) <= 1:
                run = 0
            else:
                run += 1
                if run >= gap:
                    return max(0, k - gap + 1) if seen_uniform else 0
        return limit if seen_uniform else 0

    def both_ends(lines: npt.NDArray[np.intp], values: FloatArray, limit: int) -> tuple[int, int]:
        mode, is_flat, uniform = lines_info(lines, values)
        return band((mode, is_flat, uniform), limit), band((mode[::-1], is_flat[::-1], uniform[::-1]), limit)

    cut_top, cut_bottom = both_ends(levels, inner, int(h * CHROME_MAX))
    body = slice(cut_top, h - cut_bottom)
    if h - cut_top - cut_bottom < 8:
        return None
    cut_left, cut_right = both_ends(np.ascontiguousarray(levels[body].T), np.ascontiguousarray(inner[body].T),
                                    int(w * CHROME_MAX))
    out = (left + cut_left, top + cut_top, right - cut_right, bottom - cut_bottom)
    width, height = out[2] - out[0], out[3] - out[1]
    if width < 16 or height < 16 or width * height < CHROME_MIN_AREA * w * h:
        return None
    if max(cut_left + cut_right, 0) < 0.03 * w and cut_top + cut_bottom < 0.03 * h:
        return None  # nothing worth a second view
    return out


def _view_data(plane: Image.Image, work: Image.Image, box: tuple[int, int, int, int], scale: tuple[float, float]
               ) -> tuple[FloatArray, npt.NDArray[np.uint8], npt.NDArray[np.uint8], tuple[int, int]]:
    """Window DCT coefficients, grey thumbnail, colour thumbnail and display size of one view (a box of the
    working picture)."""
    left, top, right, bottom = box
    width, height = right - left, bottom - top
    content_size = (max(1, round(width * scale[0])), max(1, round(height * scale[1])))
    grids = np.stack([
        np.asarray(
            plane.resize((HASH_GRID, HASH_GRID), Image.Resampling.BOX,
                         box=(left + x0 * width, top + y0 * height, left + x1 * width, top + y1 * height)),
            dtype=np.float64,
        )
        for x0, y0, x1, y1 in WINDOWS
    ])
    spectrum = _DCT_V @ grids @ _DCT_H.T  # (windows, 9, 8)
    coefficients = spectrum[:, :DCT_KEEP, :].copy()
    coefficients[:, 0, 0] = spectrum[:, DCT_KEEP, 0]
    side = min(np.sqrt(THUMB_AREA / (width * height)), THUMB_MAX_SIDE / max(width, height))
    thumb_size = (max(1, round(width * side)), max(1, round(height * side)))
    thumb = plane.resize(thumb_size, Image.Resampling.BOX, box=box)
    thumb_u8 = np.clip(np.asarray(thumb, dtype=np.float64).round(), 0, 255).astype(np.uint8)
    side = np.sqrt(CHROMA_AREA / (width * height))
    chroma_size = (max(1, min(255, round(width * side))), max(1, min(255, round(height * side))))
    ycc = work.convert("YCbCr").resize(chroma_size, Image.Resampling.BOX, box=box)
    chroma_u8 = np.ascontiguousarray(np.asarray(ycc, dtype=np.uint8)[:, :, 1:])
    return coefficients, thumb_u8, chroma_u8, content_size


def _window_keys(coefficients: FloatArray) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.intp],
                                                    npt.NDArray[np.bool_]]:
    lr = coefficients[:, 0, 1]  # left-right gradient: changes sign under a left-right flip
    odd_rms = np.sqrt((coefficients[:, :, 1::2] ** 2).mean(axis=(1, 2))) + 1e-9
    flip = lr < 0
    as_is, flipped = _phash(coefficients), _phash(coefficients * _ODD_SIGN)
    canonical = np.where(flip, flipped, as_is)
    ambiguous = np.abs(lr) < MIRROR_MARGIN * odd_rms
    hashes = np.concatenate([canonical, np.where(flip, as_is, flipped)[ambiguous]])
    windows = np.concatenate([np.arange(len(WINDOWS)), np.flatnonzero(ambiguous)])
    mirrored = np.concatenate([flip, ~flip[ambiguous]])
    return hashes, windows, mirrored


def fingerprint(image: Image.Image) -> Fingerprint:
    """Fingerprint a display rendition (any mode; EXIF orientation already applied)."""
    work = _working(image)
    pdq_bits, pdq_quality = pdqhash.compute(np.asarray(work))
    pdq = int("".join("1" if b else "0" for b in pdq_bits), 2).to_bytes(32, "big").hex()

    grey = work.convert("L")
    pixels = np.asarray(grey, dtype=np.float32)
    grey64 = pixels.astype(np.float64)
    box = _trim_box(grey64)
    scale = (image.width / work.width, image.height / work.height)
    plane = Image.fromarray(pixels, "F")
    boxes = [box]
    chrome = _chrome_box(grey64, box)
    if chrome is not None:
        boxes.append(chrome)
    views = [_view_data(plane, work, b, scale) for b in boxes]

    all_hashes, all_windows, all_mirrored = [], [], []
    if float(views[0][1].std()) >= LOW_CONTRAST:
        for v, (coefficients, thumb_u8, _, _) in enumerate(views):
            if v and float(thumb_u8.std()) < LOW_CONTRAST:
                continue
            hashes, windows, mirrored = _window_keys(coefficients)
            all_hashes.append(hashes)
            all_windows.append(windows + v * VIEW_STRIDE)
            all_mirrored.append(mirrored)
    hashes = np.concatenate(all_hashes) if all_hashes else np.zeros(0, dtype=np.uint64)
    windows = np.concatenate(all_windows) if all_windows else np.zeros(0, dtype=np.intp)
    mirrored = np.concatenate(all_mirrored) if all_mirrored else np.zeros(0, dtype=bool)

    head = _HEAD2.pack(PAYLOAD_VERSION, len(views), len(hashes), work.width, work.height) + b"".join(
        _VIEW.pack(thumb.shape[1], thumb.shape[0], chroma.shape[1], chroma.shape[0], min(size[0], 65535),
                   min(size[1], 65535), *b)
        for (_, thumb, chroma, size), b in zip(views, boxes, strict=True)
    )
    entries = np.zeros(len(hashes), dtype=np.dtype([("h", "<u8"), ("w", "u1"), ("m", "u1")]))
    entries["h"], entries["w"], entries["m"] = hashes, windows, mirrored
    pixels_blob = b"".join(thumb.tobytes() + chroma.tobytes() for _, thumb, chroma, _ in views)
    data = head + entries.tobytes() + zlib.compress(pixels_blob, 6)
    keys = tuple(dict.fromkeys(_to_signed(int(h)) for h in hashes))
    return Fingerprint(keys=keys, pdq=pdq, pdq_quality=int(pdq_quality), data=data)


def query_keys(fp: Fingerprint) -> tuple[int, ...]:
    """Keys to look up for a new picture. Window keys are mirror-canonical, so they serve mirrored copies too."""
    return fp.keys


# --- the engine as one object ---------------------------------------------------------------------------------------


class Matcher:
    """The engine as one object: keys in a :class:`HashIndex`, fingerprints in memory (or loaded on demand).

    This is what the matching worker and ``cluster_images`` run: ``match`` is the whole lookup, index candidates
    then :func:`verify` on each. With ``load`` (e.g. a database fetch of ``Fingerprint.from_bytes``) only the index
    is kept in memory and candidates' fingerprints are loaded when needed (about 4 KB per picture otherwise).
    """

    def __init__(self, thresholds: Thresholds | None = None, index: HashIndex | None = None,
                 load: Callable[[int], Fingerprint | None] | None = None) -> None:
        self.thresholds = thresholds or Thresholds()
        self.index = index if index is not None else HashIndex()
        self.load = load
        self.fingerprints: dict[int, Fingerprint] = {}

    def __len__(self) -> int:
        return len(self.fingerprints)

    def add(self, item_id: int, fp: Fingerprint) -> None:
        self.remove(item_id)
        if self.load is None:
            self.fingerprints[item_id] = fp
        if fp.keys:
            self.index.add(item_id, fp.keys)

    def remove(self, item_id: int) -> None:
        self.fingerprints.pop(item_id, None)
        self.index.remove(item_id)

    def candidates(self, fp: Fingerprint) -> list[tuple[int, int]]:
        """Index stage only: (item_id, best key distance) within ``index_radius``, closest first."""
        keys = query_keys(fp)
        return self.index.search(keys, self.thresholds.index_radius) if keys else []

    def match(self, fp: Fingerprint, exclude: int | None = None) -> list[tuple[int, Match]]:
        """Verified matches of ``fp`` among the stored pictures, closest first."""
        out = []
        for item_id, _ in self.candidates(fp):
            if item_id == exclude:
                continue
            stored = self.fingerprints.get(item_id) if self.load is None else self.load(item_id)
            if stored is None:
                continue
            found = verify(fp, stored, self.thresholds)
            if found is not None:
                out.append((item_id, found))
        return out


# --- verification --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Match:
    """Why two pictures were judged the same, after verification.

    distance  Hamming distance (bits of 64) between the whole-picture keys when they are within the index radius,
              else between the window keys that led to the match.
    method    "identical" (same thumbnail), "phash" (whole pictures close), "crop" (the match needed a window: a
              crop, a caption band, a frame or a rotation), each with "-mirrored" when one is a mirror image.
    detail    a sentence for people: which windows, the alignment found and the scores that passed.
    """

    distance: int
    method: str
    detail: str


@dataclass(frozen=True)
class _Hypothesis:
    distance: int  # Hamming distance of the key pair
    window_query: int
    window_candidate: int
    mirrored: bool


def verify(query: Fingerprint, candidate: Fingerprint, thresholds: Thresholds = Thresholds()) -> Match | None:
    """Return a Match if ``candidate`` shows the same picture as ``query`` (edited or not), else None.

    Candidates normally come from the index, i.e. share a key within ``thresholds.index_radius``; a pair with no
    such key pair is rejected without looking at pixels.
    """
    q, c = query.payload, candidate.payload
    if q.low_information or c.low_information:
        return _verify_low_information(q, c, thresholds)
    for hypothesis, aligned in _attempts(q, c, thresholds):
        if _judge(aligned, thresholds):
            return _describe(q, c, hypothesis, aligned, thresholds)
    return None


def _describe(q: Payload, c: Payload, h: _Hypothesis, al: _Alignment, t: Thresholds) -> Match:
    # Name the match after the whole pictures when their keys are close, else after the windows that led to it.
    whole_q, whole_c = q.windows == 0, c.windows == 0
    whole = np.bitwise_count(q.hashes[whole_q][:, None] ^ c.hashes[whole_c][None, :])
    flips = q.mirrored[whole_q][:, None] ^ c.mirrored[whole_c][None, :]
    same = whole[flips == h.mirrored]
    suffix = "-mirrored" if h.mirrored else ""
    if len(same) and int(same.min()) <= t.index_radius:
        distance, method = int(same.min()), "phash" + suffix
    else:
        distance, method = h.distance, "crop" + suffix
    if distance == 0 and q.thumb.shape == c.thumb.shape and float(np.abs(q.thumb - c.thumb).max()) <= 1:
        method = "identical"
    detail = (
        f"{window_name(h.window_query)} ~ {window_name(h.window_candidate)}{' mirrored' if h.mirrored else ''} "
        f"at {h.distance} bits; aligned at scale {al.scale:.2f}, rotation {al.rotation:+.1f} deg, overlap "
        f"{al.overlap_query:.0%}/{al.overlap_candidate:.0%}; correlation {al.correlation:.2f}, detail "
        f"{al.detail_correlation:.2f}, {_agreeing(al, t)}/{len(al.block_correlations)} textured blocks agree"
    )
    return Match(distance=distance, method=method, detail=detail)


def _attempts(q: Payload, c: Payload, thresholds: Thresholds, limit: int = 3, quick: bool = True) -> Iterator[
        tuple[_Hypothesis, _Alignment]]:
    """Alignments started from the closest key pairs, at most ``limit`` distinct starting points. ``quick`` skips
    measuring alignments that the geometry or the colours already rule out."""
    distances = np.bitwise_count(q.hashes[:, None] ^ c.hashes[None, :])
    pairs = np.argwhere(distances <= thresholds.index_radius)
    if len(pairs) == 0:
        return
    order = np.lexsort((pairs[:, 1], pairs[:, 0], distances[pairs[:, 0], pairs[:, 1]]))
    # Per pair of views (the trimmed picture, or the picture without its bands/chrome): matched thumbnails,
    # templates, and the candidate's thumbnail as it is and mirrored, at full and half resolution.
    thumbs: dict[tuple[int, int], tuple[FloatArray, FloatArray]] = {}
    fines: dict[tuple[int, int], _Template] = {}
    coarses: dict[tuple[int, int], _Template] = {}
    targets: dict[tuple[int, int, bool], FloatArray] = {}
    halves: dict[tuple[int, int, bool], FloatArray] = {}
    tried: list[tuple[int, int, bool, FloatArray]] = []
    for i, j in pairs[order]:
        mirrored = bool(q.mirrored[i] ^ c.mirrored[j])
        view_q, window_q = divmod(int(q.windows[i]), VIEW_STRIDE)
        view_c, window_c = divmod(int(c.windows[j]), VIEW_STRIDE)
        views = (view_q, view_c)
        if views not in thumbs:
            thumbs[views] = _matched_thumbs(q.views[view_q], c.views[view_c])
            fines[views] = _Template(thumbs[views][0])
        thumb_q, thumb_c = thumbs[views]
        fine = fines[views]
        key = (view_q, view_c, mirrored)
        if key not in targets:
            targets[key] = np.ascontiguousarray(thumb_c[:, ::-1]) if mirrored else thumb_c
        target = targets[key]
        if mirrored:
            window_c = _mirror_of_window()[window_c]
        start = _window_map(thumb_q.shape, target.shape, window_q, window_c)
        if any((vq, vc, m) == key and np.abs(start - st).max() < 1.5 for vq, vc, m, st in tried):
            continue  # the same starting point as an alignment already tried
        tried.append((view_q, view_c, mirrored, start))
        hypothesis = _Hypothesis(int(distances[i, j]), int(q.windows[i]), int(c.windows[j]), mirrored)
        pair = (q.views[view_q], c.views[view_c])
        if quick and hypothesis.distance <= QUICK_BITS and hypothesis.window_query == hypothesis.window_candidate:
            # Same window, nearly the same key: a resized, re-encoded, recoloured or mirrored copy is already aligned
            # by the starting map, so measure it as it is first (the same judge applies to any map).
            measured = _measure_with_colour(*pair, fine, target, start, thumb_q.shape, mirrored)
            if measured is not None:
                yield hypothesis, measured
        if views not in coarses:
            coarses[views] = _Template(_halve(thumb_q))
        coarse = coarses[views]
        if key not in halves:
            halves[key] = _halve(target)
        target_half = halves[key]
        half = _refine(coarse, target_half, _rescale_map(start, 0.5), iterations=COARSE_STEPS)
        if half is not None and (not quick or _plausible(half, coarse.grid, target_half.shape, thresholds)):
            # Half resolution pins the map down to about a tenth of a (full-size) pixel; the structure is then
            # measured at full thumbnail resolution.
            aligned = _measure_with_colour(*pair, fine, target, _rescale_map(half, 2.0), thumb_q.shape, mirrored,
                                           thresholds if quick else None)
            if aligned is not None:
                yield hypothesis, aligned
        if len(tried) >= limit:
            break
    # A band laid over the picture (not added around it) leaves the frame as it was: the part of one picture
    # without its bands is then where the same part of the other picture's frame is. One more start, per pair of
    # different views, when both frames are known.
    if len(q.views) + len(c.views) < 3 or not all(q.work_size) or not all(c.work_size):
        return
    for view_q, view_c in ((1, 0), (0, 1), (1, 1)):
        if view_q >= len(q.views) or view_c >= len(c.views):
            continue
        views = (view_q, view_c)
        if views not in thumbs:
            thumbs[views] = _matched_thumbs(q.views[view_q], c.views[view_c])
            fines[views] = _Template(thumbs[views][0])
            coarses[views] = _Template(_halve(thumbs[views][0]))
        thumb_q, thumb_c = thumbs[views]
        start = _frame_map(q.views[view_q], thumb_q.shape, q.work_size, c.views[view_c], thumb_c.shape, c.work_size)
        if any((vq, vc, m) == (view_q, view_c, False) and np.abs(start - st).max() < 1.5 for vq, vc, m, st in tried):
            continue
        tried.append((view_q, view_c, False, start))
        half = _refine(coarses[views], _halve(thumb_c), _rescale_map(start, 0.5), iterations=COARSE_STEPS)
        if half is not None and (not quick or _plausible(half, coarses[views].grid, _halve(thumb_c).shape,
                                                         thresholds)):
            aligned = _measure_with_colour(q.views[view_q], c.views[view_c], fines[views], thumb_c,
                                           _rescale_map(half, 2.0), thumb_q.shape, False, thresholds if quick else None)
            if aligned is not None:
                closest = int(distances.min())
                yield _Hypothesis(closest, view_q * VIEW_STRIDE, view_c * VIEW_STRIDE, False), aligned


def _frame_map(view_q: View, shape_q: tuple[int, ...], work_q: tuple[int, int], view_c: View,
               shape_c: tuple[int, ...], work_c: tuple[int, int]) -> FloatArray:
    """Similarity map (query thumbnail pixel -> candidate thumbnail pixel) assuming both working pictures show the
    same frame: each view's box is placed in its frame, and the frames are matched by their size."""
    axes = []
    for k in (0, 1):  # x, y
        q0, q1 = view_q.box[k], view_q.box[k + 2]
        c0, c1 = view_c.box[k], view_c.box[k + 2]
        step_q = (q1 - q0) / shape_q[1 - k]  # working pixels per thumbnail pixel
        step_c = (c1 - c0) / shape_c[1 - k]
        ratio = work_c[k] / work_q[k]
        scale = step_q * ratio / step_c
        # x_c = ((q0 + (x + 0.5) * step_q) * ratio - c0) / step_c - 0.5
        axes.append((scale, ((q0 + 0.5 * step_q) * ratio - c0) / step_c - 0.5))
    scale = float(np.sqrt(axes[0][0] * axes[1][0]))
    return np.array([[scale, 0.0, axes[0][1]], [0.0, scale, axes[1][1]]])


def _measure_with_colour(
    q: View, c: View, fine: _Template, target: FloatArray, matrix: FloatArray, shape_q: tuple[int, ...],
    mirrored: bool, screen: Thresholds | None = None,
) -> _Alignment | None:
    """Measure an alignment, colour included; with ``screen``, skip the grey-level measures when the colours
    already rule the pair out."""
    chroma = _chroma_agreement(q, c, matrix, shape_q, target.shape, mirrored)
    if screen is not None and chroma[1] >= screen.chroma_min_strength and chroma[2] < screen.min_chroma_similarity:
        return None
    return _measure(fine, target, matrix, chroma)


def _plausible(matrix: FloatArray, grid: _Grid, shape: tuple[int, ...], t: Thresholds) -> bool:
    """Cheap geometric screen of a half-resolution alignment (scale, rotation, overlap on a coarse grid)."""
    a, b = matrix[0, 0], matrix[1, 0]
    scale = float(np.hypot(a, b))
    if abs(np.degrees(np.arctan2(b, a))) > t.max_rotation or not 1 / t.max_scale_change <= scale <= t.max_scale_change:
        return False
    u = a * grid.x - b * grid.y + matrix[0, 2]
    v = b * grid.x + a * grid.y + matrix[1, 2]
    inside = int(((u >= -0.5) & (u <= shape[1] - 0.5) & (v >= -0.5) & (v <= shape[0] - 0.5)).sum())
    margin = 0.05  # the coarse estimate is a little rough
    return inside >= (t.min_overlap - margin) * len(grid.x) and inside * scale * scale >= (
        t.min_overlap - margin) * shape[0] * shape[1]


def _verify_low_information(q: Payload, c: Payload, thresholds: Thresholds) -> Match | None:
    if q.thumb.shape != c.thumb.shape:
        return None
    diff = float(np.abs(q.thumb - c.thumb).mean())
    if diff > thresholds.low_info_max_diff:
        return None
    return Match(distance=0, method="identical",
                 detail=f"near-uniform pictures whose thumbnails differ by {diff:.1f} grey levels on average")


# --- alignment internals -------------------------------------------------------------------------------------------


def _window_map(shape_q: tuple[int, ...], shape_c: tuple[int, ...], window_q: int, window_c: int) -> FloatArray:
    """Similarity map (query pixel -> candidate pixel) taking window_q of the query onto window_c of the candidate:
    the window centres correspond and the scale is the geometric mean of the two axes' scales."""
    hq, wq = shape_q
    hc, wc = shape_c
    qx0, qy0, qx1, qy1 = WINDOWS[window_q]
    cx0, cy0, cx1, cy1 = WINDOWS[window_c]
    scale = float(np.sqrt((cx1 - cx0) * wc / ((qx1 - qx0) * wq) * (cy1 - cy0) * hc / ((qy1 - qy0) * hq)))
    # pixel k covers [k, k+1): a fraction f of the width is at pixel coordinate f * w - 0.5
    tx = (cx0 + cx1) / 2 * wc - 0.5 - scale * ((qx0 + qx1) / 2 * wq - 0.5)
    ty = (cy0 + cy1) / 2 * hc - 0.5 - scale * ((qy0 + qy1) / 2 * hq - 0.5)
    return np.array([[scale, 0.0, tx], [0.0, scale, ty]])


def _rescale_map(matrix: FloatArray, factor: float) -> FloatArray:
    """The same map after scaling both pictures by ``factor`` (x' = factor * (x + 0.5) - 0.5 on each side)."""
    out = matrix.copy()
    offset = 0.5 / factor - 0.5
    out[:, 2] = factor * (matrix[:, 0] * offset + matrix[:, 1] * offset + matrix[:, 2] + 0.5) - 0.5
    return out


def _matched_thumbs(q: View, c: View) -> tuple[FloatArray, FloatArray]:
    """Both thumbnails at the detail the blurrier one really has: a thumbnail enlarged from a small picture must
    not be compared with a sharp one at full thumbnail resolution."""
    def sharpness(p: View) -> float:
        return min(1.0, p.content_size[0] / int(p.thumb.shape[1]), p.content_size[1] / int(p.thumb.shape[0]))

    factor = min(sharpness(q), sharpness(c))
    if factor >= 0.85:
        return q.thumb, c.thumb
    out = []
    for thumb in (q.thumb, c.thumb):
        h, w = thumb.shape
        size = (max(8, round(w * factor)), max(8, round(h * factor)))
        img = Image.fromarray(thumb.astype(np.float32), "F").resize(size, Image.Resampling.BOX)
        out.append(np.asarray(img, dtype=np.float64))
    return out[0], out[1]


def _halve(a: FloatArray) -> FloatArray:
    h, w = a.shape[0] // 2 * 2, a.shape[1] // 2 * 2
    return np.asarray((a[0:h:2, 0:w:2] + a[1:h:2, 0:w:2] + a[0:h:2, 1:w:2] + a[1:h:2, 1:w:2]) * 0.25)


def _gradient(a: FloatArray) -> tuple[FloatArray, FloatArray]:
    """(d/dx, d/dy): central differences inside, one-sided at the border."""
    gx = np.empty_like(a)
    gy = np.empty_like(a)
    gx[:, 1:-1] = (a[:, 2:] - a[:, :-2]) * 0.5
    gx[:, 0] = a[:, 1] - a[:, 0]
    gx[:, -1] = a[:, -1] - a[:, -2]
    gy[1:-1] = (a[2:] - a[:-2]) * 0.5
    gy[0] = a[1] - a[0]
    gy[-1] = a[-1] - a[-2]
    return gx, gy


@dataclass(frozen=True)
class _Grid:
    """Per thumbnail shape: pixel and normalised coordinates, computed once."""

    shape: tuple[int, int]
    x: FloatArray
    y: FloatArray
    xn: FloatArray
    yn: FloatArray
    to_norm: FloatArray  # 3x3: normalised coordinates -> pixel coordinates
    norm: float


@functools.lru_cache(maxsize=512)
def _grid_for(h: int, w: int) -> _Grid:
    ys, xs = np.divmod(np.arange(h * w, dtype=np.intp), w)
    cx, cy, norm = (w - 1) / 2, (h - 1) / 2, max(h, w) / 2
    return _Grid(
        shape=(h, w), x=xs.astype(np.float64), y=ys.astype(np.float64), xn=(xs - cx) / norm, yn=(ys - cy) / norm,
        to_norm=np.array([[norm, 0, cx], [0, norm, cy], [0, 0, 1.0]]), norm=norm,
    )


class _Template:
    """The query thumbnail at one level, with what alignment steps and measures need from it (computed once)."""

    def __init__(self, pixels: FloatArray) -> None:
        self.pixels = pixels
        self.grid = _grid_for(*pixels.shape)
        self.values = pixels.ravel()

    @functools.cached_property
    def gradients(self) -> tuple[FloatArray, FloatArray]:
        gx, gy = _gradient(self.pixels)
        return gx.ravel() * self.grid.norm, gy.ravel() * self.grid.norm  # per unit of normalised coordinate

    @functools.cached_property
    def detail(self) -> FloatArray:
        return np.asarray((self.pixels - _box3(self.pixels)).ravel())


def _sample(image: FloatArray, u: FloatArray, v: FloatArray) -> FloatArray:
    """Bilinear samples of a picture at (u, v), clamped to it: one channel of :func:`_sample_channels`."""
    return np.asarray(_sample_channels(image[:, :, None], u, v)[:, 0])


def _sample_channels(image: FloatArray, u: FloatArray, v: FloatArray) -> FloatArray:
    """:func:`_sample` of every channel of an (h, w, k) picture at once: (len(u), k)."""
    h, w, k = image.shape
    u = np.clip(u, 0.0, w - 1.001)
    v = np.clip(v, 0.0, h - 1.001)
    x0 = u.astype(np.intp)
    y0 = v.astype(np.intp)
    fx = (u - x0)[:, None]
    fy = (v - y0)[:, None]
    flat = image.reshape(h * w, k)
    i = y0 * w + x0
    # np.take along the rows: the same values as flat[i], in about half the time for one or two channels.
    top = np.take(flat, i, axis=0)
    top += (np.take(flat, i + 1, axis=0) - top) * fx
    bottom = np.take(flat, i + w, axis=0)
    bottom += (np.take(flat, i + w + 1, axis=0) - bottom) * fx
    return np.asarray(top + (bottom - top) * fy)


def _sample_upright(image: FloatArray, u: FloatArray, v: FloatArray) -> FloatArray:
    """:func:`_sample` on the grid of columns ``u`` x rows ``v`` (a map without rotation), as a (len(v), len(u))
    picture: the same arithmetic on whole rows."""
    h, w = image.shape
    u = np.clip(u, 0.0, w - 1.001)
    v = np.clip(v, 0.0, h - 1.001)
    x0 = u.astype(np.intp)
    y0 = v.astype(np.intp)
    fx = (u - x0)[None, :]
    fy = (v - y0)[:, None]
    upper, lower = image[y0], image[y0 + 1]
    top = upper[:, x0]
    top += (upper[:, x0 + 1] - top) * fx
    bottom = lower[:, x0]
    bottom += (lower[:, x0 + 1] - bottom) * fx
    return np.asarray(top + (bottom - top) * fy)


def _refine(template: _Template, image: FloatArray, matrix: FloatArray, iterations: int,
            tolerance: float = 0.003) -> FloatArray | None:
    """Refine a similarity map M so that image(M x) ~ gain * template(x) + offset (ESM Gauss-Newton).

    The Jacobian averages the template's and the warped image's gradients (efficient second-order
    minimisation), which converges in 1-4 steps where plain Lucas-Kanade needs about 10. Gain and offset are
    refitted at every step (weighted least squares) and residuals are Huber-weighted, so a caption band, the black
    corners of a rotation or saturated areas do not pull the fit. Returns the refined 2x3 map, or None when the
    overlap vanishes or the best fit inverts or flattens the picture.
    """
    g = template.grid
    h, w = g.shape
    hi, wi = image.shape
    values = template.values
    m = np.vstack([matrix, [0, 0, 1]]) @ g.to_norm
    weights = np.ones_like(values)
    jacobian = np.empty((len(values), 4))
    for _ in range(iterations):
        u = m[0, 0] * g.xn + m[0, 1] * g.yn + m[0, 2]
        v = m[1, 0] * g.xn + m[1, 1] * g.yn + m[1, 2]
        valid = (u >= 0) & (u <= wi - 1) & (v >= 0) & (v <= hi - 1)
        weights *= valid
        total = weights.sum()
        if valid.sum() < 24 or total <= 1e-9:
            return None
        warped = _sample(image, u, v)
        mean_t, mean_w = weights @ values / total, weights @ warped / total
        dt = values - mean_t
        variance = weights @ (dt * dt)
        dw = warped - mean_w
        covariance = weights @ (dt * dw)
        gain = covariance / variance if variance > 1e-9 else 0.0
        if gain <= 0.05:
            return None
        normalised = (warped - mean_w) * (1 / gain) + mean_t
        error = normalised - values
        wgx, wgy = _gradient(normalised.reshape(h, w))
        tgx, tgy = template.gradients
        jx = (tgx + wgx.ravel() * g.norm) * 0.5
        jy = (tgy + wgy.ravel() * g.norm) * 0.5
        jacobian[:, 0] = jx * g.xn + jy * g.yn
        jacobian[:, 1] = jy * g.xn - jx * g.yn
        jacobian[:, 2] = jx
        jacobian[:, 3] = jy
        magnitude = np.abs(error)
        sigma = 1.2533 * float(magnitude @ valid) / float(valid.sum()) + 0.5  # mean |e| -> Gaussian sigma
        weights = np.minimum(1.0, 1.5 * sigma / np.maximum(magnitude, 1e-9)) * valid
        weighted = jacobian * weights[:, None]
        da, db, dtx, dty = -np.linalg.solve(weighted.T @ jacobian + np.eye(4) * 1e-6, weighted.T @ error)
        m = m @ np.array([[1 + da, -db, dtx], [db, 1 + da, dty], [0, 0, 1.0]])
        if max(abs(dtx), abs(dty)) < tolerance and max(abs(da), abs(db)) < tolerance / 2:
            break
    return np.asarray((m @ np.linalg.inv(g.to_norm))[:2])


@dataclass(frozen=True)
class _Alignment:
    matrix: FloatArray  # 2x3, query thumbnail pixel -> candidate thumbnail pixel (candidate mirrored if flagged)
    overlap_query: float  # share of the query covered by the candidate
    overlap_candidate: float  # share of the candidate covered by the query
    scale: float
    rotation: float  # degrees
    correlation: float
    detail_correlation: float
    block_correlations: FloatArray  # detail correlation of each block that is textured in either picture
    region_correlations: FloatArray  # grey-level correlation of each block with contrast in either picture
    chroma_similarity: float = 1.0  # cosine of the two aligned colour fields (Cb, Cr about grey)
    chroma_strength: float = 0.0  # RMS colourfulness of the less colourful picture in the overlap (grey levels)
    clear_chroma_similarity: float = 1.0  # chroma_similarity without the colour pixels that differ most
    measure_occlusion: Callable[[], _Occlusion] | None = field(default=None, repr=False, compare=False)

    @functools.cached_property
    def occlusion(self) -> _Occlusion:
        """The structure measures without the blocks something covers, measured on first use."""
        return self.measure_occlusion() if self.measure_occlusion is not None else _Occlusion()


@dataclass(frozen=True)
class _Occlusion:
    blocks: int = 0  # blocks mostly covered by something only one picture has (stickers, text, a band)
    correlation: float = 0.0  # the same measures as _Alignment's without the occluded blocks
    detail_correlation: float = 0.0
    block_correlations: FloatArray = field(default_factory=lambda: np.zeros(0))
    region_correlations: FloatArray = field(default_factory=lambda: np.zeros(0))


def _box3(a: FloatArray) -> FloatArray:
    """3x3 mean, edges replicated."""
    rows = a.copy()
    rows[1:] += a[:-1]
    rows[:-1] += a[1:]
    rows[0] += a[0]
    rows[-1] += a[-1]
    out = rows.copy()
    out[:, 1:] += rows[:, :-1]
    out[:, :-1] += rows[:, 1:]
    out[:, 0] += rows[:, 0]
    out[:, -1] += rows[:, -1]
    return out * (1 / 9)


def _correlation(a: FloatArray, b: FloatArray) -> float:
    a = a - a.mean()
    b = b - b.mean()
    denominator = float(np.sqrt((a @ a) * (b @ b)))
    return float(a @ b / denominator) if denominator > 1e-9 else 0.0


def _correlations(stats: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Per row of (count, sum a, sum b, sum a*a, sum b*b, sum a*b): correlation of a and b, variance of a and of b.

    Where either variance is zero (or the row is empty) the correlation is 0: rounding would otherwise leave a
    covariance of either sign over a zero denominator, an infinite "correlation" of random sign."""
    total, a1, a2, a11, a22, a12 = stats.T
    with np.errstate(invalid="ignore", divide="ignore"):
        var1, var2 = a11 / total - (a1 / total) ** 2, a22 / total - (a2 / total) ** 2
        product = var1 * var2
        positive = product > 0  # False for NaN too (an empty row)
        corr = np.where(positive, (a12 / total - a1 * a2 / total / total) / np.sqrt(np.where(positive, product, 1.0)),
                        0.0)
        return corr, var1, var2


@functools.lru_cache(maxsize=2048)
def _block_grid(h: int, w: int, top: int, bottom: int, left: int, right: int) -> tuple[
        FloatArray, FloatArray, npt.NDArray[np.intp]]:
    """The BLOCKS x BLOCKS grid over rows top..bottom and columns left..right (inclusive) of an h x w picture, pixels
    outside it joining the nearest block: one-hot row (BLOCKS, h) and column (w, BLOCKS) memberships, so that the
    per-block sums of a stack of pictures are two matrix products, and the flat block label of each pixel."""
    row_block = np.clip((np.arange(h) - top) * BLOCKS // (bottom + 1 - top), 0, BLOCKS - 1)
    col_block = np.clip((np.arange(w) - left) * BLOCKS // (right + 1 - left), 0, BLOCKS - 1)
    rows = (row_block[None, :] == np.arange(BLOCKS)[:, None]).astype(np.float64)
    cols = (col_block[:, None] == np.arange(BLOCKS)[None, :]).astype(np.float64)
    return rows, cols, (row_block[:, None] * BLOCKS + col_block[None, :]).ravel()


def _measure(template: _Template, image: FloatArray, matrix: FloatArray, chroma: tuple[float, float, float] = (
        1.0, 0.0, 1.0)) -> _Alignment:
    g = template.grid
    h, w = g.shape
    hi, wi = image.shape
    a, b = matrix[0, 0], matrix[1, 0]
    upright = matrix[0, 1] == 0 and b == 0  # no rotation (a copy measured as it is): rows and columns separate
    if upright:
        u = a * g.x[:w] + matrix[0, 2]
        v = matrix[1, 1] * g.y[::w] + matrix[1, 2]
        inside = ((v >= -0.5) & (v <= hi - 0.5))[:, None] & ((u >= -0.5) & (u <= wi - 0.5))[None, :]
        inside_flat = inside.ravel()
    else:
        u = a * g.x + matrix[0, 1] * g.y + matrix[0, 2]
        v = b * g.x + matrix[1, 1] * g.y + matrix[1, 2]
        inside_flat = (u >= -0.5) & (u <= wi - 0.5) & (v >= -0.5) & (v <= hi - 0.5)
        inside = inside_flat.reshape(h, w)
    count = int(inside_flat.sum())
    scale = float(np.hypot(a, b))
    overlap_query = count / (h * w)
    overlap_candidate = min(1.0, count * scale * scale / (hi * wi))
    similarity, strength, clear_similarity = chroma
    if count < 4 * BLOCKS * BLOCKS:
        empty = np.zeros(0)
        return _Alignment(matrix, overlap_query, overlap_candidate, scale, 0.0, 0.0, 0.0, empty, empty, similarity,
                          strength, clear_similarity)
    warped = _sample_upright(image, u, v) if upright else _sample(image, u, v).reshape(h, w)
    # Fine detail away from the overlap's edge (a 3x3 filter there would see the clamped border).
    core = np.zeros_like(inside)
    core[1:-1, 1:-1] = inside[:-2, 1:-1] & inside[2:, 1:-1] & inside[1:-1, :-2] & inside[1:-1, 2:] & inside[1:-1, 1:-1]
    # A BLOCKS x BLOCKS grid over the overlap's bounding box (not the whole query, which may extend beyond it).
    rows, cols = np.flatnonzero(inside.any(axis=1)), np.flatnonzero(inside.any(axis=0))
    row_onehot, col_onehot, labels = _block_grid(h, w, int(rows[0]), int(rows[-1]), int(cols[0]), int(cols[-1]))
    # Per block, in two matrix products: sums over the overlap of the grey levels (t = query, s = candidate) and,
    # away from its edge, of their detail (x, y), with squares and cross products.
    t, s = template.values, warped.ravel()
    x, y = template.detail, (warped - _box3(warped)).ravel()
    i, c = inside_flat.astype(np.float64), core.ravel().astype(np.float64)
    columns = np.empty((12, h * w))
    columns[0] = i
    ti = np.multiply(t, i, out=columns[1])
    si = np.multiply(s, i, out=columns[2])
    np.multiply(ti, t, out=columns[3])
    np.multiply(si, s, out=columns[4])
    np.multiply(ti, s, out=columns[5])
    columns[6] = c
    xc = np.multiply(x, c, out=columns[7])
    yc = np.multiply(y, c, out=columns[8])
    np.multiply(xc, x, out=columns[9])
    np.multiply(yc, y, out=columns[10])
    np.multiply(xc, y, out=columns[11])
    cells = BLOCKS * BLOCKS
    sums = (row_onehot @ (columns.reshape(12 * h, w) @ col_onehot).reshape(12, h, BLOCKS)).reshape(12, cells).T
    totals = sums.sum(axis=0)
    # Correlations in one go: the whole overlap and each block, grey levels (first 6 sums) then detail (last 6).
    stats = np.concatenate([totals[None, :6], sums[:, :6], totals[None, 6:], sums[:, 6:]])
    corr, var1, var2 = _correlations(stats)
    whole, local_corr = corr[0], corr[1 : cells + 1]
    detail, block_corr = corr[cells + 1], corr[cells + 2 :]
    var_t, var_local_t, var_local_s = var1[0], var1[1 : cells + 1], var2[1 : cells + 1]
    vx, vy = var1[cells + 2 :], var2[cells + 2 :]
    m, n = sums[:, 0], sums[:, 6]
    gain = 0.0
    if var_t > 1e-9:
        gain = float((totals[5] / totals[0] - totals[1] * totals[2] / totals[0] ** 2) / var_t)
    textured = (n >= 0.5 * n.max()) & ((vx >= BLOCK_TEXTURE**2) | (vy >= BLOCK_TEXTURE**2))
    with np.errstate(invalid="ignore", divide="ignore"):
        # contrast in query grey levels: the candidate's is divided by the global gain between the two
        contrast = np.sqrt(np.maximum(np.maximum(var_local_t, var_local_s / max(gain, 0.05) ** 2), 0))
    contrasted = (m >= 0.5 * m.max()) & (contrast >= REGION_CONTRAST)

    def occlusion() -> _Occlusion:
        # Pixels that differ wildly from the other picture's (after gain and offset) are something laid over one of
        # them (a sticker, text, a band). Blocks mostly made of such pixels are set aside, and the same tests are
        # run on the rest, as long as few blocks are set aside (see Thresholds.max_occluded_blocks). Gain and
        # offset are refitted without the worst pixels first: a white band over a fifth of the picture would
        # otherwise skew the fit so much that everything looks occluded. Only measured when the structure tests
        # fail (most copies pass without it).
        fit_gain = max(gain, 0.05)
        offset = totals[2] / totals[0] - fit_gain * totals[1] / totals[0]
        residual = np.abs((s - offset) / fit_gain - t)
        fit = inside_flat & (residual <= max(8.0, 3.0 * _median(residual[inside_flat])))
        if fit.sum() >= 16:
            tf, sf = t[fit], s[fit]
            variance = float(tf.var())
            if variance > 1e-9:
                fit_gain = max(float(((tf - tf.mean()) * (sf - sf.mean())).mean()) / variance, 0.05)
                offset = float(sf.mean()) - fit_gain * float(tf.mean())
                residual = np.abs((s - offset) / fit_gain - t)
        outlier = (residual > OUTLIER_LEVELS) * i
        share = np.bincount(labels, weights=outlier, minlength=cells) / np.maximum(m, 1)
        occluded = (m >= 0.5 * m.max()) & (share >= OCCLUDED_SHARE)
        clear = sums[~occluded].sum(axis=0)
        clear_corr, _, _ = _correlations(clear.reshape(2, 6))
        return _Occlusion(
            blocks=int(occluded.sum()),
            correlation=float(clear_corr[0]),
            detail_correlation=float(clear_corr[1]) if clear[6] > 16 else 0.0,
            block_correlations=np.asarray(block_corr[textured & ~occluded]),
            region_correlations=np.asarray(local_corr[contrasted & ~occluded]),
        )

    return _Alignment(
        matrix=matrix,
        overlap_query=overlap_query,
        overlap_candidate=overlap_candidate,
        scale=scale,
        rotation=float(np.degrees(np.arctan2(b, a))),
        correlation=float(whole),
        detail_correlation=float(detail) if totals[6] > 16 else 0.0,
        block_correlations=np.asarray(block_corr[textured]),
        region_correlations=np.asarray(local_corr[contrasted]),
        chroma_similarity=similarity,
        chroma_strength=strength,
        clear_chroma_similarity=clear_similarity,
        measure_occlusion=occlusion,
    )


def _median(values: FloatArray) -> float:
    """np.median of a non-empty 1-D array, without its checks (the same value)."""
    n = len(values)
    half = n // 2
    if n % 2:
        return float(np.partition(values, half)[half])
    part = np.partition(values, (half - 1, half))
    return float((part[half - 1] + part[half]) / 2)


def _chroma_agreement(q: View, c: View, matrix: FloatArray, shape_q: tuple[int, ...], shape_c: tuple[int, ...],
                      mirrored: bool) -> tuple[float, float, float]:
    """(cosine similarity, colourfulness of the greyer picture, cosine similarity without the OCCLUDED_COLOUR share
    of pixels that differ most) of the two colour thumbnails, aligned by the luma map.

    A grey copy of a colour picture has no colour to compare, which the second number reveals.
    """
    kq, kc = q.chroma, c.chroma[:, ::-1] if mirrored else c.chroma
    hq, wq = kq.shape[:2]
    hc, wc = kc.shape[:2]
    x, y = _chroma_grid(hq, wq, shape_q[0], shape_q[1])
    u = (matrix[0, 0] * x + matrix[0, 1] * y + matrix[0, 2] + 0.5) / shape_c[1] * wc - 0.5
    v = (matrix[1, 0] * x + matrix[1, 1] * y + matrix[1, 2] + 0.5) / shape_c[0] * hc - 0.5
    inside = (u >= -0.5) & (u <= wc - 0.5) & (v >= -0.5) & (v <= hc - 0.5)
    if inside.sum() < 4 or wc < 2 or hc < 2:
        return 1.0, 0.0, 1.0
    a = kq.reshape(-1, 2)[inside]
    b = _sample_channels(kc, u[inside], v[inside])
    strength = float(min(np.sqrt((a * a).sum(axis=1).mean()), np.sqrt((b * b).sum(axis=1).mean())))
    denominator = float(np.sqrt((a * a).sum() * (b * b).sum()))
    similarity = float((a * b).sum() / denominator) if denominator > 1e-9 else 1.0
    # The same without the colour pixels that differ most (where a sticker or band may cover one picture).
    distance = ((a - b) ** 2).sum(axis=1)
    keep = distance <= _quantile(distance, 1 - OCCLUDED_COLOUR)
    a, b = a[keep], b[keep]
    denominator = float(np.sqrt((a * a).sum() * (b * b).sum()))
    clear = float((a * b).sum() / denominator) if denominator > 1e-9 else 1.0
    return similarity, strength, max(similarity, clear)


@functools.lru_cache(maxsize=1024)
def _chroma_grid(hq: int, wq: int, height: int, width: int) -> tuple[FloatArray, FloatArray]:
    """Where each pixel of an hq x wq colour thumbnail is on its height x width grey thumbnail (x, y, flat)."""
    gy, gx = np.divmod(np.arange(hq * wq), wq)
    # query colour pixel -> query luma pixel (-> candidate luma pixel -> candidate colour pixel, by the caller)
    return (gx + 0.5) / wq * width - 0.5, (gy + 0.5) / hq * height - 0.5


def _quantile(values: FloatArray, q: float) -> float:
    """np.quantile(values, q) (linear method) of a non-empty 1-D array, without its checks: the same value."""
    position = q * (len(values) - 1)
    below = int(np.floor(position))
    above = min(below + 1, len(values) - 1)
    part = np.partition(values, (below, above))
    a, b = float(part[below]), float(part[above])
    gamma = position - below
    return b - (b - a) * (1 - gamma) if gamma >= 0.5 else a + (b - a) * gamma


def _agreeing(al: _Alignment, t: Thresholds) -> int:
    return int((al.block_correlations >= t.block_correlation).sum())


def _judge(al: _Alignment, t: Thresholds) -> bool:
    if min(al.overlap_query, al.overlap_candidate) < t.min_overlap:
        return False
    if abs(al.rotation) > t.max_rotation or not 1 / t.max_scale_change <= al.scale <= t.max_scale_change:
        return False
    # Colours are compared without the share of colour pixels that differ most (a sticker or band laid over one
    # picture may change the colour of part of it without changing its grey levels much).
    if al.chroma_strength >= t.chroma_min_strength and al.clear_chroma_similarity < t.min_chroma_similarity:
        return False
    if _structure_agrees(al.correlation, al.detail_correlation, al.block_correlations, al.region_correlations, t):
        return True
    # Something laid over one picture: judge what is left uncovered, if little is covered.
    occlusion = al.occlusion
    return 0 < occlusion.blocks <= t.max_occluded_blocks and _structure_agrees(
        occlusion.correlation, occlusion.detail_correlation, occlusion.block_correlations,
        occlusion.region_correlations, t)


def _structure_agrees(correlation: float, detail_correlation: float, blocks: FloatArray, regions: FloatArray,
                      t: Thresholds) -> bool:
    if len(regions) and (regions >= t.region_correlation).sum() < t.min_region_agreement * len(regions):
        return False
    textured = len(blocks)
    if textured < t.min_texture_blocks:
        return correlation >= t.smooth_min_correlation
    return (
        correlation >= t.min_correlation
        and detail_correlation >= t.min_detail_correlation
        and int((blocks >= t.block_correlation).sum()) >= t.min_block_agreement * textured
    )


def _failures(al: _Alignment, t: Thresholds) -> list[str]:
    """Which tests of :func:`_judge` an alignment fails, in words (empty when it passes)."""
    out = []
    overlap = min(al.overlap_query, al.overlap_candidate)
    if overlap < t.min_overlap:
        out.append(f"overlap {overlap:.0%} < {t.min_overlap:.0%}")
    if abs(al.rotation) > t.max_rotation:
        out.append(f"rotation {al.rotation:+.1f} deg beyond {t.max_rotation:g}")
    if not 1 / t.max_scale_change <= al.scale <= t.max_scale_change:
        out.append(f"scale {al.scale:.2f} beyond {t.max_scale_change:g}x")
    if out or _judge(al, t):
        return out
    if al.chroma_strength >= t.chroma_min_strength and al.clear_chroma_similarity < t.min_chroma_similarity:
        out.append(f"colours differ (similarity {al.clear_chroma_similarity:.2f} < {t.min_chroma_similarity:.2f})")
    regions = al.region_correlations
    agreeing_regions = int((regions >= t.region_correlation).sum())
    if len(regions) and agreeing_regions < t.min_region_agreement * len(regions):
        out.append(f"shapes differ ({agreeing_regions}/{len(regions)} regions agree, need "
                   f"{t.min_region_agreement:.0%})")
    textured = len(al.block_correlations)
    if textured < t.min_texture_blocks and al.correlation < t.smooth_min_correlation:
        out.append(f"smooth pictures, correlation {al.correlation:.3f} < {t.smooth_min_correlation}")
    elif textured >= t.min_texture_blocks:
        if al.correlation < t.min_correlation:
            out.append(f"correlation {al.correlation:.2f} < {t.min_correlation}")
        if al.detail_correlation < t.min_detail_correlation:
            out.append(f"fine detail correlation {al.detail_correlation:.2f} < {t.min_detail_correlation}")
        if _agreeing(al, t) < t.min_block_agreement * textured:
            out.append(f"fine detail differs ({_agreeing(al, t)}/{textured} textured blocks agree, need "
                       f"{t.min_block_agreement:.0%})")
    if al.occlusion.blocks > t.max_occluded_blocks:
        out.append(f"{al.occlusion.blocks} blocks look covered (at most {t.max_occluded_blocks} may be set aside)")
    elif al.occlusion.blocks:
        out.append(f"without the {al.occlusion.blocks} covered block(s) it still fails")
    return out or ["the tests fail together"]


def explain(query: Fingerprint, candidate: Fingerprint, thresholds: Thresholds = Thresholds()) -> list[str]:
    """Why ``candidate`` does or does not match ``query``, in sentences: the index stage, then every alignment
    verification tried and the tests it failed. :func:`verify` decides; this only describes."""
    q, c = query.payload, candidate.payload
    lines = []
    for name, p in (("first", q), ("second", c)):
        boxes = "; ".join(f"view {k}: box {v.box}" for k, v in enumerate(p.views))
        lines.append(f"{name} picture: {len(p.hashes)} window keys, {len(p.views)} view(s) ({boxes})"
                     + (" - near-uniform, never found through the index" if p.low_information else ""))
    if q.low_information or c.low_information:
        found = _verify_low_information(q, c, thresholds)
        lines.append(found.detail if found else "near-uniform pictures whose thumbnails differ: not the same")
        return lines
    distances = np.bitwise_count(q.hashes[:, None] ^ c.hashes[None, :])
    i, j = np.unravel_index(int(distances.argmin()), distances.shape)
    closest = int(distances[i, j])
    lines.append(f"closest keys: {window_name(int(q.windows[i]))} ~ {window_name(int(c.windows[j]))} at {closest} "
                 f"bits; the index finds pairs within {thresholds.index_radius} bits"
                 + ("" if closest <= thresholds.index_radius else ": NOT a candidate, so never compared"))
    if closest > thresholds.index_radius:
        return lines
    for h, al in _attempts(q, c, thresholds, quick=False):
        verdict = _failures(al, thresholds)
        lines.append(
            f"alignment from {window_name(h.window_query)} ~ {window_name(h.window_candidate)}"
            f"{' mirrored' if h.mirrored else ''} ({h.distance} bits): scale {al.scale:.2f}, rotation "
            f"{al.rotation:+.1f} deg, overlap {al.overlap_query:.0%}/{al.overlap_candidate:.0%}, correlation "
            f"{al.correlation:.2f}, detail {al.detail_correlation:.2f}, {_agreeing(al, thresholds)}/"
            f"{len(al.block_correlations)} textured blocks agree, {al.occlusion.blocks} covered: "
            + ("PASSES" if not verdict else "fails: " + "; ".join(verdict)))
    found = verify(query, candidate, thresholds)
    lines.append(f"verdict: the same picture ({found.method}: {found.detail})" if found
                 else "verdict: not the same picture")
    return lines
