"""A labelled near-duplicate evaluation set built only from images that ship inside installed Python packages.

Nothing is downloaded: pictures come from the files in scikit-image's own ``skimage/data`` folder (read directly,
so pooch never runs) and matplotlib's sample data when matplotlib happens to be installed; everything else is
generated. Every function is deterministic: the same call returns the same pixels.

Vocabulary
    original   a distinct picture; its ``group`` is its name. Two items with different groups must never merge.
    edit       a copy of an original changed by one of :data:`EDITS`; it keeps the original's group.
    negative   a distinct picture chosen to look like others (hard negatives). Some negatives are also originals
               (they get edits too); some are only negatives (faces at 25x25, flat greys, chessboards).

Edit definitions (the ``EDITS`` table; parameters drawn per (original, edit, variant) from a seeded generator):
    resized     scaled to 30-70 % (Lanczos)                    jpeg_q30    re-encoded as JPEG quality 30
    brightened  ImageEnhance.Brightness 1.25-1.4 (clips)       grayscale   converted to luma, back to RGB
    crop_5      5 % of the width and 5 % of the height removed, split at random between the two sides
    crop_10     the same with 10 % of each dimension (19 % of the area)
    rotated_3   rotated by +-3 degrees about the centre, corners filled black, same size
    mirrored    left-right flip
    framed      a solid border (white, black or a random colour) 4-10 % of the shorter side wide
    captioned   a white or black band 12-20 % of the height with a line of text, added above or below
"""

from __future__ import annotations

import functools
import io
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFont

Edit = Callable[[Image.Image, np.random.Generator], Image.Image]


@dataclass(frozen=True)
class Item:
    name: str  # unique, e.g. "astronaut", "astronaut~crop_10#1"
    group: str  # the original it shows; different groups are distinct pictures
    edit: str  # "original" or a key of EDITS
    image: Image.Image  # RGB


# --- sources -----------------------------------------------------------------------------------------------------


def skimage_dir() -> Path:
    import skimage

    return Path(skimage.__file__).parent / "data"


def _load(filename: str) -> Image.Image:
    with Image.open(skimage_dir() / filename) as file:
        file.load()
        if file.mode in ("RGBA", "LA", "P"):
            rgba = file.convert("RGBA")
            flat = Image.new("RGB", rgba.size, (255, 255, 255))
            flat.paste(rgba, mask=rgba.getchannel("A"))
            return flat
        return file.convert("RGB")


# Photos and scans used as originals (each gets every edit). chessboard_RGB.png is the same picture as
# chessboard_GRAY.png and skimage's cat() is chelsea, so neither is listed twice.
SKIMAGE_PHOTOS = (
    "astronaut.png", "camera.png", "coffee.png", "chelsea.png", "rocket.jpg", "motorcycle_left.png",
    "motorcycle_right.png", "coins.png", "moon.png", "horse.png", "page.png", "text.png", "retina.jpg", "cell.png",
    "clock_motion.png", "color.png", "ihc.png", "logo.png", "phantom.png", "microaneurysms.png",
)
TEXTURES = ("brick.png", "grass.png", "gravel.png")


def _stem(filename: str) -> str:
    return filename.rsplit(".", 1)[0]


def _matplotlib_samples() -> list[tuple[str, Image.Image]]:
    try:
        import matplotlib.cbook as cbook
    except ImportError:
        return []
    out = []
    for name in ("grace_hopper.jpg",):
        try:
            with cbook.get_sample_data(name) as fh:
                out.append((f"mpl_{_stem(name)}", Image.open(fh).convert("RGB")))
        except (OSError, ValueError):
            continue
    return out


def texture_crops() -> list[tuple[str, Image.Image]]:
    """The four quadrants of brick, grass and gravel: same texture, different regions (hard negatives)."""
    out = []
    for filename in TEXTURES:
        img = _load(filename)
        w, h = img.size
        for qi, (x, y) in enumerate(itertools.product((0, w // 2), (0, h // 2))):
            out.append((f"{_stem(filename)}_q{qi}", img.crop((x, y, x + w // 2, y + h // 2))))
    return out


def hubble_tiles() -> list[tuple[str, Image.Image]]:
    """A 3x3 grid of non-overlapping tiles of the Hubble deep field: star fields that all look alike."""
    img = _load("hubble_deep_field.jpg")
    w, h = img.size
    tw, th = w // 3, h // 3
    return [
        (f"hubble_{r}{c}", img.crop((c * tw, r * th, (c + 1) * tw, (r + 1) * th))) for r in range(3) for c in range(3)
    ]


def lfw_faces(limit: int = 100) -> list[tuple[str, Image.Image]]:
    """Faces from skimage's lfw_subset (25x25 grey, aligned): different photos of different people."""
    faces = np.load(skimage_dir() / "lfw_subset.npy")[:100]
    return [
        (f"lfw_{i:03d}", Image.fromarray((faces[i] * 255).round().astype(np.uint8)).convert("RGB"))
        for i in range(min(limit, len(faces)))
    ]


def chessboards() -> list[tuple[str, Image.Image]]:
    """Chessboard-like patterns: skimage's 8x8 board and generated boards of other cell counts and shapes.

    None is a flip or rotation of another (an 8x8 board mirrored IS its colour-inverted twin, so that pair is
    deliberately absent).
    """
    out = [("chessboard", _load("chessboard_GRAY.png"))]
    for cells_x, cells_y, size in ((6, 6, 240), (10, 10, 250), (12, 12, 240), (16, 16, 256), (8, 6, 320), (4, 4, 200)):
        ys, xs = np.mgrid[0:size * cells_y // cells_x, 0:size]
        board = ((xs * cells_x // size + ys * cells_x // size) % 2 * 255).astype(np.uint8)
        out.append((f"board_{cells_x}x{cells_y}", Image.fromarray(board).convert("RGB")))
    ys, xs = np.mgrid[0:240, 0:240]
    stripes = ((xs // 20) % 2 * 255).astype(np.uint8)
    out.append(("stripes_12", Image.fromarray(stripes).convert("RGB")))
    return out


def flat_images() -> list[tuple[str, Image.Image]]:
    """Near-uniform pictures: flat greys 8 levels apart, and faint gradients / faint noise on grey."""
    out = [(f"flat_{v}", Image.new("RGB", (320, 240), (v, v, v))) for v in range(96, 168, 8)]
    rng = np.random.default_rng(7)
    for i, v in enumerate((110, 140)):
        ramp = np.tile(np.linspace(v - 6, v + 6, 320), (240, 1))
        out.append((f"gradient_{i}", Image.fromarray(ramp.astype(np.uint8)).convert("RGB")))
        noise = np.clip(v + rng.normal(0, 3, (240, 320)), 0, 255)
        out.append((f"noise_{i}", Image.fromarray(noise.astype(np.uint8)).convert("RGB")))
    return out


def synthetic_photo(seed: int, width: int = 320, height: int = 240) -> Image.Image:
    """A distinct generated picture: gradient background, random shapes and lines, often a patch of noise texture
    and a line of text. Used for the 100,000 verification distractors (about 1 ms at 160x120)."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = np.cos(angle) * xs / width + np.sin(angle) * ys / height
    base = np.stack([ramp * rng.uniform(-120, 120) + rng.uniform(40, 200) for _ in range(3)], axis=-1)
    if rng.uniform() < 0.5:  # a textured patch: coarse random noise, enlarged
        pw, ph = int(rng.integers(width // 4, width // 2)), int(rng.integers(height // 4, height // 2))
        px, py = int(rng.integers(0, width - pw)), int(rng.integers(0, height - ph))
        cell = int(rng.integers(2, 6))
        noise = rng.normal(0, rng.uniform(20, 60), (ph // cell + 1, pw // cell + 1, 1))
        base[py : py + ph, px : px + pw] += np.kron(noise, np.ones((cell, cell, 1)))[:ph, :pw]
    img = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(4, 10))):
        x0, y0 = rng.uniform(-0.1, 0.9) * width, rng.uniform(-0.1, 0.9) * height
        x1, y1 = x0 + rng.uniform(0.08, 0.5) * width, y0 + rng.uniform(0.08, 0.5) * height
        fill = tuple(int(v) for v in rng.integers(0, 256, 3))
        kind = rng.integers(0, 3)
        if kind == 0:
            draw.ellipse((x0, y0, x1, y1), fill=fill)
        elif kind == 1:
            draw.rectangle((x0, y0, x1, y1), fill=fill)
        else:
            draw.line((x0, y0, x1, y1), fill=fill, width=int(rng.integers(2, 1 + max(3, width // 30))))
    if rng.uniform() < 0.3:
        text = " ".join(CAPTIONS[int(i)] for i in rng.integers(0, len(CAPTIONS), 2))
        ink = tuple(int(v) for v in rng.integers(0, 256, 3))
        draw.text((rng.uniform(0, 0.3) * width, rng.uniform(0, 0.8) * height), text, fill=ink,
                  font=_font(max(8, height // 10)))
    return img


def originals() -> list[tuple[str, Image.Image]]:
    """Every distinct picture that gets edits: photos, texture quadrants, Hubble tiles, matplotlib samples."""
    photos = [(_stem(f), _load(f)) for f in SKIMAGE_PHOTOS]
    return photos + texture_crops() + hubble_tiles() + _matplotlib_samples()


def negatives_only() -> list[tuple[str, Image.Image]]:
    """Distinct pictures that only serve as hard negatives (no edits): faces, boards, flat images."""
    return lfw_faces() + chessboards() + flat_images()


# --- edits -------------------------------------------------------------------------------------------------------


def resized(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    scale = rng.uniform(0.3, 0.7)
    return img.resize((max(8, round(img.width * scale)), max(8, round(img.height * scale))), Image.Resampling.LANCZOS)


def jpeg_q30(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    buffer = io.BytesIO()
    img.save(buffer, "JPEG", quality=30)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


def brightened(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    return ImageEnhance.Brightness(img).enhance(rng.uniform(1.25, 1.4))


def grayscale(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    return img.convert("L").convert("RGB")


def crop(img: Image.Image, rng: np.random.Generator, fraction: float) -> Image.Image:
    w, h = img.size
    cut_x, cut_y = round(w * fraction), round(h * fraction)
    left, top = round(cut_x * rng.uniform()), round(cut_y * rng.uniform())
    return img.crop((left, top, w - (cut_x - left), h - (cut_y - top)))


def rotated(img: Image.Image, rng: np.random.Generator, degrees: float = 3.0) -> Image.Image:
    sign = 1 if rng.uniform() < 0.5 else -1
    return img.rotate(sign * degrees, resample=Image.Resampling.BICUBIC, expand=False, fillcolor=(0, 0, 0))


def mirrored(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    return img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)


def framed(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    width = max(2, round(min(img.size) * rng.uniform(0.04, 0.10)))
    choice = rng.integers(0, 3)
    colour = ((255, 255, 255), (0, 0, 0), tuple(int(v) for v in rng.integers(0, 256, 3)))[choice]
    out = Image.new("RGB", (img.width + 2 * width, img.height + 2 * width), colour)
    out.paste(img, (width, width))
    return out


CAPTIONS = ("when the code finally works", "nobody:", "me at 3am", "this is fine", "LOOK AT THIS", "wait for it")


@functools.cache
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def captioned(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    band = max(8, round(img.height * rng.uniform(0.12, 0.20)))
    dark = rng.uniform() < 0.5
    background, ink = ((0, 0, 0), (255, 255, 255)) if dark else ((255, 255, 255), (0, 0, 0))
    out = Image.new("RGB", (img.width, img.height + band), background)
    on_top = rng.uniform() < 0.5
    out.paste(img, (0, band if on_top else 0))
    text = CAPTIONS[int(rng.integers(0, len(CAPTIONS)))]
    draw = ImageDraw.Draw(out)
    font = _font(max(6, round(band * 0.55)))
    y = (0 if on_top else img.height) + band * 0.2
    draw.text((img.width * 0.05, y), text, fill=ink, font=font)
    return out


EDITS: dict[str, Edit] = {
    "resized": resized,
    "jpeg_q30": jpeg_q30,
    "brightened": brightened,
    "grayscale": grayscale,
    "crop_5": functools.partial(crop, fraction=0.05),
    "crop_10": functools.partial(crop, fraction=0.10),
    "rotated_3": rotated,
    "mirrored": mirrored,
    "framed": framed,
    "captioned": captioned,
}


def edit(img: Image.Image, kind: str, seed: int) -> Image.Image:
    return EDITS[kind](img, np.random.default_rng(seed)).convert("RGB")


def _seed(*parts: str | int) -> int:
    # Stable across runs and Python versions (str hash is salted, so it is not used).
    return int.from_bytes(("/".join(map(str, parts))).encode()[:8].ljust(8, b"\0"), "little") ^ sum(
        (i + 1) * ord(c) for i, c in enumerate("/".join(map(str, parts)))
    )


def items(
    variants: int = 2, edits: tuple[str, ...] | None = None, only: tuple[str, ...] | None = None
) -> Iterator[Item]:
    """Originals, ``variants`` edited copies per original and edit, then the negatives-only pictures."""
    kinds = edits if edits is not None else tuple(EDITS)
    for name, img in originals():
        if only is not None and name not in only:
            continue
        yield Item(name, name, "original", img)
        for kind in kinds:
            for v in range(variants):
                yield Item(f"{name}~{kind}#{v}", name, kind, edit(img, kind, _seed(name, kind, v)))
    for name, img in negatives_only():
        if only is not None and name not in only:
            continue
        yield Item(name, name, "original", img)
