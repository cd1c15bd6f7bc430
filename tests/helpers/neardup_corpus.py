"""A near-duplicate evaluation that cannot be tuned to: seeded random edits over a wider corpus, split in two.

Used by ``benchmarks.neardup_heldout`` (the full evaluation) and ``tests/test_neardup_heldout.py`` (a small
size in CI). Nothing is downloaded: real pictures are the photographs that ship inside scikit-image (and
non-overlapping sub-pictures of the larger ones); synthetic photographs are generated (a 1/f colour field, which
has the amplitude spectrum of natural scenes, with soft-edged objects, lighting and grain).

The split. Every picture belongs to the **tuning** part or the **held-out** part by a hash of its name (real
pictures) or of its seed (synthetic ones, drawn from disjoint seed ranges). Edit parameters are drawn from
``numpy.random.default_rng((part_seed, picture, edit, variant))``, and the held-out part's seed is an argument:
a report can draw a fresh held-out set that nobody has seen (``--heldout-seed``). Engine thresholds are only
ever adjusted by looking at the tuning part.

Edit classes (:data:`EDIT_CLASSES`), each with randomised parameters:
    resized        30-80 % of the size                        jpeg           re-encoded at quality 20-60
    tone           brightness 0.7-1.4 and contrast 0.7-1.3    grayscale      luma only
    crop           2-10 % removed per dimension, split at random between the two sides
    rotated        +-0.5-3 degrees, corners black             mirrored       left-right flip
    caption_band   a band of 5-20 % of the result with a line of text at any edge, added outside the
                   picture or laid over it; white, black or a random colour
    meme_text      outlined text laid over the top and/or bottom of the picture (up to 15 % of it)
    stickers       1-3 opaque stickers (discs, stars, rounded labels with text) covering 3-15 % of the picture
    border         a solid border, even or uneven, 2-15 % of each dimension in all
    letterbox      padded to another aspect ratio with bars, at most 15 % of the result per axis
    screenshot     the picture inside phone app chrome (status bar, header, action row, caption), re-encoded
    crop_mirror    crop (2-10 %) then mirror                  band_jpeg      caption band then quality 25-50
"""

from __future__ import annotations

import functools
import hashlib
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageFont

from tests.helpers import evalset

Edit = Callable[[Image.Image, np.random.Generator], Image.Image]

PARTS = ("tuning", "heldout")
WORDS = ("when", "the", "code", "finally", "works", "nobody", "me", "at", "3am", "this", "is", "fine", "LOOK",
         "wait", "for", "it", "my", "face", "when", "POV", "you", "Monday", "again", "literally", "same", "lol")


@dataclass(frozen=True)
class Picture:
    name: str
    part: str  # "tuning" or "heldout"
    kind: str  # "real" or "synthetic"
    image: Image.Image


@dataclass(frozen=True)
class Copy:
    picture: str  # name of the original
    edit: str
    variant: int
    image: Image.Image


# --- corpus --------------------------------------------------------------------------------------------------------


def _part_of(name: str) -> str:
    return PARTS[hashlib.sha256(name.encode()).digest()[0] % 2]


# The larger photographs also give non-overlapping sub-pictures (left/right or top/bottom halves, at least 200 px):
# real photographic content, distinct pictures (two halves never show the same thing).
REAL = ("astronaut.png", "camera.png", "coffee.png", "chelsea.png", "rocket.jpg", "motorcycle_left.png",
        "coins.png", "moon.png", "horse.png", "page.png", "text.png", "retina.jpg", "cell.png", "clock_motion.png",
        "color.png", "ihc.png", "logo.png", "phantom.png", "microaneurysms.png", "hubble_deep_field.jpg",
        "brick.png", "grass.png", "gravel.png")
HALVED = ("astronaut.png", "coffee.png", "rocket.jpg", "retina.jpg", "hubble_deep_field.jpg", "ihc.png",
          "chelsea.png", "camera.png")


@functools.cache
def real_pictures() -> tuple[Picture, ...]:
    out = []
    for filename in REAL:
        stem = filename.rsplit(".", 1)[0]
        img = evalset._load(filename)
        if filename in HALVED:
            w, h = img.size
            wide = w >= h
            halves = ((0, 0, w // 2, h), (w - w // 2, 0, w, h)) if wide else ((0, 0, w, h // 2), (0, h - h // 2, w, h))
            for k, box in enumerate(halves):
                name = f"{stem}_half{k}"
                out.append(Picture(name, _part_of(name), "real", img.crop(box)))
        else:
            out.append(Picture(stem, _part_of(stem), "real", img))
    return tuple(out)


def synthetic_scene(seed: int, width: int = 400, height: int = 300) -> Image.Image:
    """A generated photograph-like picture: a 1/f^b colour field (natural images' spectrum), a horizon-like
    lighting gradient, 3-12 soft-edged objects with their own texture, then a little blur and grain."""
    rng = np.random.default_rng(seed)
    fy = np.fft.fftfreq(height)[:, None]
    fx = np.fft.rfftfreq(width)[None, :]
    radius = np.sqrt(fx * fx + fy * fy)
    radius[0, 0] = 1.0
    beta = rng.uniform(1.6, 2.4)
    channels = []
    mix = rng.normal(0, 1, (3, 3)) * 0.4 + np.eye(3)
    fields = []
    for _ in range(3):
        spectrum = (rng.normal(size=radius.shape) + 1j * rng.normal(size=radius.shape)) / radius ** (beta / 2)
        spectrum[0, 0] = 0
        field = np.fft.irfft2(spectrum, s=(height, width))
        fields.append(field / (field.std() + 1e-9))
    stacked = np.stack(fields, axis=-1) @ mix.T
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    angle = rng.uniform(0, 2 * np.pi)
    light = np.cos(angle) * xs / width + np.sin(angle) * ys / height
    for c in range(3):
        channels.append(rng.uniform(70, 180) + stacked[:, :, c] * rng.uniform(18, 45) + light * rng.uniform(-60, 60))
    base = np.stack(channels, axis=-1)
    for _ in range(int(rng.integers(3, 13))):
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        rx, ry = rng.uniform(0.04, 0.3) * width, rng.uniform(0.04, 0.3) * height
        theta = rng.uniform(0, np.pi)
        power = rng.choice([2.0, 2.0, 4.0, 8.0])  # ellipses and rounded boxes
        softness = rng.uniform(0.02, 0.2)
        colour = rng.uniform(0, 255, 3)
        texture_gain = rng.uniform(0, 25)
        # Only the object's bounding box is painted: outside it alpha is 0 and base stays exactly as it was
        # (|u|, |v| <= 1 wherever alpha > 0). Same picture as painting everywhere, several times faster.
        reach_x = rx * abs(np.cos(theta)) + ry * abs(np.sin(theta)) + 1
        reach_y = rx * abs(np.sin(theta)) + ry * abs(np.cos(theta)) + 1
        x0, x1 = max(0, int(cx - reach_x)), min(width, int(cx + reach_x) + 1)
        y0, y1 = max(0, int(cy - reach_y)), min(height, int(cy + reach_y) + 1)
        if x0 >= x1 or y0 >= y1:
            continue
        box = (slice(y0, y1), slice(x0, x1))
        dx, dy = xs[box] - cx, ys[box] - cy
        u = (dx * np.cos(theta) + dy * np.sin(theta)) / rx
        v = (-dx * np.sin(theta) + dy * np.cos(theta)) / ry
        inside = np.abs(u) ** power + np.abs(v) ** power
        alpha = np.clip((1 - inside) / softness, 0, 1)[:, :, None]
        shade = (1 - 0.35 * (u + v)[:, :, None]) * colour
        texture = stacked[box][:, :, :1] * texture_gain
        base[box] = base[box] * (1 - alpha) + (shade + texture) * alpha
    img = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8))
    img = img.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.2)))
    grain = rng.normal(0, rng.uniform(1, 4), (height, width, 1))
    return Image.fromarray(np.clip(np.asarray(img, dtype=np.float64) + grain, 0, 255).astype(np.uint8))


SYNTHETIC_SEEDS = {"tuning": 20_000_000, "heldout": 30_000_000}


def synthetic_pictures(part: str, count: int) -> list[Picture]:
    rng = np.random.default_rng(SYNTHETIC_SEEDS[part])
    out = []
    for k in range(count):
        seed = SYNTHETIC_SEEDS[part] + k
        w = int(rng.integers(240, 560))
        h = int(w * rng.choice([0.5625, 0.75, 1.0, 1.333, 0.667]))
        out.append(Picture(f"scene{seed}", part, "synthetic", synthetic_scene(seed, w, max(160, h))))
    return out


def corpus(part: str, synthetic: int, real: int | None = None) -> list[Picture]:
    """The pictures of one part: its real pictures (all, or the first ``real``) and ``synthetic`` scenes."""
    reals = [p for p in real_pictures() if p.part == part]
    return (reals if real is None else reals[:real]) + synthetic_pictures(part, synthetic)


# --- edits ---------------------------------------------------------------------------------------------------------


@functools.cache
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _words(rng: np.random.Generator, count: int) -> str:
    return " ".join(WORDS[int(i)] for i in rng.integers(0, len(WORDS), count))


def _random_colour(rng: np.random.Generator) -> tuple[int, int, int]:
    r, g, b = (int(v) for v in rng.integers(0, 256, 3))
    return r, g, b


def _colour(rng: np.random.Generator) -> tuple[int, int, int]:
    choice = rng.uniform()
    if choice < 0.4:
        return (255, 255, 255)
    if choice < 0.7:
        return (0, 0, 0)
    return _random_colour(rng)


def _ink(background: tuple[int, int, int]) -> tuple[int, int, int]:
    return (0, 0, 0) if sum(background) > 380 else (255, 255, 255)


def _jpeg(img: Image.Image, quality: int) -> Image.Image:
    buffer = io.BytesIO()
    img.convert("RGB").save(buffer, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


def resized(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    scale = rng.uniform(0.3, 0.8)
    method = [Image.Resampling.LANCZOS, Image.Resampling.BILINEAR, Image.Resampling.BICUBIC][int(rng.integers(3))]
    return img.resize((max(16, round(img.width * scale)), max(16, round(img.height * scale))), method)


def jpeg(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    return _jpeg(img, int(rng.integers(20, 61)))


def tone(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    out = ImageEnhance.Brightness(img).enhance(rng.uniform(0.7, 1.4))
    return ImageEnhance.Contrast(out).enhance(rng.uniform(0.7, 1.3))


def grayscale(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    return img.convert("L").convert("RGB")


def crop(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    w, h = img.size
    cut_x, cut_y = round(w * rng.uniform(0.02, 0.10)), round(h * rng.uniform(0.02, 0.10))
    left, top = round(cut_x * rng.uniform()), round(cut_y * rng.uniform())
    return img.crop((left, top, w - (cut_x - left), h - (cut_y - top)))


def rotated(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    degrees = rng.uniform(0.5, 3.0) * (1 if rng.uniform() < 0.5 else -1)
    return img.rotate(degrees, resample=Image.Resampling.BICUBIC, expand=False, fillcolor=(0, 0, 0))


def mirrored(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    return img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)


def _text_line(draw: ImageDraw.ImageDraw, box: tuple[float, float, float, float], text: str,
               fill: tuple[int, int, int], rng: np.random.Generator, stroke: int = 0) -> None:
    x0, y0, x1, y1 = box
    size = max(6, round((y1 - y0) * rng.uniform(0.45, 0.75)))
    font = _font(size)
    width = draw.textlength(text, font=font)
    x = x0 + max(0.0, (x1 - x0 - width) * rng.uniform(0, 1)) if rng.uniform() < 0.5 else x0 + (x1 - x0) * 0.04
    draw.text((x, (y0 + y1) / 2 - size * 0.6), text, fill=fill, font=font, stroke_width=stroke,
              stroke_fill=_ink(fill) if stroke else None)


def caption_band(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    w, h = img.size
    edge = ("top", "bottom", "left", "right")[int(rng.integers(4))]
    share = rng.uniform(0.05, 0.20)  # of the resulting picture along that axis
    added = rng.uniform() < 0.5
    background = _colour(rng)
    vertical = edge in ("top", "bottom")
    length = h if vertical else w
    band = max(6, round(length * share / (1 - share))) if added else max(6, round(length * share))
    if added:
        size = (w, h + band) if vertical else (w + band, h)
        out = Image.new("RGB", size, background)
        out.paste(img, (0, band if edge == "top" else 0) if vertical else (band if edge == "left" else 0, 0))
    else:
        out = img.copy()
    W, H = out.size
    box = {"top": (0, 0, W, band), "bottom": (0, H - band, W, H), "left": (0, 0, band, H),
           "right": (W - band, 0, W, H)}[edge]
    draw = ImageDraw.Draw(out)
    if not added:
        draw.rectangle((box[0], box[1], box[2] - 1, box[3] - 1), fill=background)
    if vertical:
        _text_line(draw, box, _words(rng, int(rng.integers(2, 6))), _ink(background), rng)
    else:  # a narrow side band: a few short lines stacked
        lines = int(rng.integers(2, 6))
        for k in range(lines):
            top = box[1] + H * (0.1 + 0.8 * k / lines)
            _text_line(draw, (box[0], top, box[2], top + min(band * 0.5, H * 0.8 / lines)), _words(rng, 1),
                       _ink(background), rng)
    return out


def meme_text(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    out = img.copy()
    w, h = out.size
    draw = ImageDraw.Draw(out)
    where = ("top", "bottom", "both")[int(rng.integers(3))]
    height = h * rng.uniform(0.06, 0.11) if where == "both" else h * rng.uniform(0.06, 0.15)
    fill = (255, 255, 255) if rng.uniform() < 0.8 else (0, 0, 0)
    for edge in ("top", "bottom"):
        if where in (edge, "both"):
            y0 = h * 0.02 if edge == "top" else h * 0.98 - height
            _text_line(draw, (0, y0, w, y0 + height), _words(rng, int(rng.integers(2, 5))).upper(), fill, rng,
                       stroke=max(1, round(height * 0.06)))
    return out


def stickers(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    out = img.copy()
    w, h = out.size
    draw = ImageDraw.Draw(out)
    count = int(rng.integers(1, 4))
    total = rng.uniform(0.03, 0.15) * w * h
    for _ in range(count):
        area = total / count
        aspect = rng.uniform(0.6, 2.5)
        sw, sh = np.sqrt(area * aspect), np.sqrt(area / aspect)
        x0, y0 = rng.uniform(0, max(1.0, w - sw)), rng.uniform(0, max(1.0, h - sh))
        fill = _random_colour(rng)
        kind = int(rng.integers(3))
        if kind == 0:
            draw.ellipse((x0, y0, x0 + sw, y0 + sh), fill=fill, outline=_ink(fill), width=max(1, round(sh * 0.05)))
        elif kind == 1:
            cx, cy, r = x0 + sw / 2, y0 + sh / 2, min(sw, sh) / 2
            angles = np.linspace(0, 2 * np.pi, 11)[:-1] + rng.uniform(0, 1)
            radii = np.where(np.arange(10) % 2 == 0, r, r * 0.45)
            draw.polygon([(cx + rr * np.cos(a), cy + rr * np.sin(a)) for rr, a in zip(radii, angles, strict=True)],
                         fill=fill)
        else:
            draw.rounded_rectangle((x0, y0, x0 + sw, y0 + sh), radius=min(sw, sh) * 0.25, fill=fill)
            _text_line(draw, (x0 + sw * 0.05, y0, x0 + sw * 0.95, y0 + sh), _words(rng, 1), _ink(fill), rng)
    return out


def border(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    w, h = img.size
    total = rng.uniform(0.02, 0.15)  # of each dimension of the result, both sides together
    even = rng.uniform() < 0.5
    sx = total * w / (1 - total)
    sy = total * h / (1 - total)
    fl = rng.uniform(0.5, 0.5) if even else rng.uniform(0.1, 0.9)
    ft = 0.5 if even else rng.uniform(0.1, 0.9)
    if even:
        sy = sx = min(sx, sy)
    left, top = round(sx * fl), round(sy * ft)
    out = Image.new("RGB", (w + round(sx), h + round(sy)), _colour(rng))
    out.paste(img, (left, top))
    return out


def letterbox(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    w, h = img.size
    share = rng.uniform(0.04, 0.15)  # bars' share of the result along the padded axis
    pad_vertical = rng.uniform() < 0.5
    colour = (0, 0, 0) if rng.uniform() < 0.7 else _colour(rng)
    if pad_vertical:
        size, at = (w, round(h / (1 - share))), (0, round(h / (1 - share) - h) // 2)
    else:
        size, at = (round(w / (1 - share)), h), (round(w / (1 - share) - w) // 2, 0)
    out = Image.new("RGB", size, colour)
    out.paste(img, at)
    return _jpeg(out, 85)


def screenshot(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """The picture as a phone app shows it: status bar, a header with an avatar and a name, the picture at the
    screen's width (or with a small margin), an action row, caption lines, the start of the next post."""
    sw = int(rng.choice([360, 390, 412, 720]))
    sh = round(sw * rng.uniform(1.9, 2.2))
    dark = rng.uniform() < 0.35
    bg = (0, 0, 0) if dark else (255, 255, 255) if rng.uniform() < 0.7 else (245, 246, 248)
    fg = _ink(bg)
    out = Image.new("RGB", (sw, sh), bg)
    draw = ImageDraw.Draw(out)
    u = sw / 390
    status = round(44 * u * rng.uniform(0.8, 1.2))
    draw.rectangle((0, 0, sw, status), fill=bg if rng.uniform() < 0.6 else (30, 30, 30))
    draw.text((16 * u, status * 0.25), f"{int(rng.integers(0, 24))}:{int(rng.integers(10, 60))}", fill=fg,
              font=_font(round(14 * u)))
    header = round(56 * u)
    y = status + round(rng.uniform(0, 60) * u)
    r = 16 * u
    draw.ellipse((12 * u, y + header / 2 - r, 12 * u + 2 * r, y + header / 2 + r),
                 fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
    draw.text((12 * u + 2 * r + 10 * u, y + header / 2 - 8 * u), _words(rng, 2), fill=fg, font=_font(round(14 * u)))
    y += header
    margin = round(sw * rng.choice([0.0, 0.0, 0.03]))
    pw = sw - 2 * margin
    ph = round(img.height * pw / img.width)
    ph = min(ph, round(sh * 0.6))
    pw_fit = round(img.width * ph / img.height)
    picture = img.resize((pw_fit, ph), Image.Resampling.BICUBIC)
    out.paste(picture, ((sw - pw_fit) // 2, y))
    y += ph + round(10 * u)
    for k in range(4):
        draw.ellipse((14 * u + k * 40 * u, y, 36 * u + k * 40 * u, y + 22 * u), outline=fg, width=max(1, round(2 * u)))
    y += round(34 * u)
    for _ in range(int(rng.integers(1, 4))):
        if y > sh - 20 * u:
            break
        draw.text((14 * u, y), _words(rng, int(rng.integers(3, 8))), fill=fg, font=_font(round(13 * u)))
        y += round(20 * u)
    if y < sh - 60 * u:
        draw.ellipse((12 * u, y + 20 * u, 44 * u, y + 52 * u), fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
    return _jpeg(out, int(rng.integers(70, 95)))


def crop_mirror(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    return mirrored(crop(img, rng), rng)


def band_jpeg(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    return _jpeg(caption_band(img, rng), int(rng.integers(25, 51)))


EDIT_CLASSES: dict[str, Edit] = {
    "resized": resized, "jpeg": jpeg, "tone": tone, "grayscale": grayscale, "crop": crop, "rotated": rotated,
    "mirrored": mirrored, "caption_band": caption_band, "meme_text": meme_text, "stickers": stickers,
    "border": border, "letterbox": letterbox, "screenshot": screenshot, "crop_mirror": crop_mirror,
    "band_jpeg": band_jpeg,
}
OCCLUSION_CLASSES = ("caption_band", "meme_text", "stickers", "border", "letterbox", "screenshot", "band_jpeg")


def edit_seed(part_seed: int, picture: str, edit: str, variant: int) -> list[int]:
    digest = hashlib.sha256(f"{picture}/{edit}/{variant}".encode()).digest()
    return [part_seed, int.from_bytes(digest[:8], "little")]


def copies(pictures: list[Picture], part_seed: int, variants: int = 1,
           edits: tuple[str, ...] | None = None) -> Iterator[Copy]:
    for picture in pictures:
        for kind in edits or tuple(EDIT_CLASSES):
            for v in range(variants):
                rng = np.random.default_rng(edit_seed(part_seed, picture.name, kind, v))
                yield Copy(picture.name, kind, v, EDIT_CLASSES[kind](picture.image, rng).convert("RGB"))


def wilson(successes: int, trials: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval of a proportion."""
    if trials == 0:
        return 0.0, 1.0
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * np.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)
