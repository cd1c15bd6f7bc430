"""Synthetic, obviously fake pictures for the demo queues and for tests. Pure Pillow and numpy: no Django.

Nothing here depicts anything. Each picture is an abstract composition (a gradient, soft noise, a few shapes)
decided by its seed, stamped with a label that says it is synthetic, so the demo never needs real material and a
screenshot of it can never be mistaken for real content. :func:`near_duplicate` makes the everyday edits that
re-shared copies carry, for showing (and testing) the perceptual-hash matching.
"""

from __future__ import annotations

import io
from typing import Final

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFont, ImageOps

NEAR_DUPLICATE_KINDS: Final = ("resized", "reencoded", "brighter", "grayscale", "cropped", "mirrored", "captioned")

_INK: Final = (255, 255, 255)
_LABEL_BACKGROUND: Final = (20, 20, 28, 200)


def demo_image(seed: int, *, label: str, size: tuple[int, int] = (960, 720)) -> Image.Image:
    """An abstract RGB picture, the same for the same seed and size, with `label` printed on it."""
    width, height = size
    if width < 64 or height < 64:
        raise ValueError("a demo image needs at least 64x64 pixels")
    rng = np.random.default_rng(seed)

    # A two-colour gradient at a random angle, modulated by low-frequency noise: large-scale structure, so pHash
    # tells different seeds apart and survives resizing and re-encoding.
    xs = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :]
    ys = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None]
    angle = rng.uniform(0, 2 * np.pi)
    ramp = (np.float32(np.cos(angle)) * xs + np.float32(np.sin(angle)) * ys + 1.0) / 2.0
    start, end = rng.uniform(20, 235, size=(2, 3)).astype(np.float32)
    pixels = start + ramp[..., None] * (end - start)
    blotches = rng.uniform(40, 215, size=(5, 6, 3)).astype(np.uint8)
    soft = Image.fromarray(blotches, "RGB").resize(size, Image.Resampling.BICUBIC)
    pixels += np.asarray(soft, dtype=np.float32) - 128
    # Fine monochrome grain: reads as a texture, not a photo.
    pixels += rng.standard_normal((height, width, 1), dtype=np.float32) * 6
    image = Image.fromarray(np.uint8(np.clip(pixels, 0, 255)), "RGB")

    overlay = Image.new("RGBA", size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    for _ in range(int(rng.integers(6, 11))):
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        radius = rng.uniform(0.08, 0.28) * min(width, height)
        fill = (*(int(v) for v in rng.integers(0, 256, 3)), int(rng.integers(140, 230)))
        box = (cx - radius, cy - radius, cx + radius, cy + radius)
        shape = int(rng.integers(0, 3))
        if shape == 0:
            draw.ellipse(box, fill=fill)
        elif shape == 1:
            draw.rectangle(box, fill=fill)
        else:
            corners = int(rng.integers(3, 7))
            turn = rng.uniform(0, 2 * np.pi)
            steps = turn + 2 * np.pi * np.arange(corners) / corners
            draw.polygon(list(zip(cx + radius * np.cos(steps), cy + radius * np.sin(steps), strict=True)), fill=fill)
    image = Image.alpha_composite(image.convert("RGBA"), overlay)
    _stamp(image, label)
    return image.convert("RGB")


def near_duplicate(image: Image.Image, kind: str) -> Image.Image:
    """A copy of `image` with one everyday edit, as when a picture is re-shared. Kinds: NEAR_DUPLICATE_KINDS."""
    rgb = image.convert("RGB")
    width, height = rgb.size
    if kind == "resized":
        return rgb.resize((max(1, width * 3 // 5), max(1, height * 3 // 5)), Image.Resampling.LANCZOS)
    if kind == "reencoded":
        buffer = io.BytesIO()
        rgb.save(buffer, "JPEG", quality=40)
        buffer.seek(0)
        with Image.open(buffer) as reloaded:
            return reloaded.convert("RGB")
    if kind == "brighter":
        return ImageEnhance.Brightness(rgb).enhance(1.25)
    if kind == "grayscale":
        return ImageOps.grayscale(rgb)
    if kind == "cropped":
        dx, dy = round(width * 0.04), round(height * 0.04)  # about 8 % of each side in all
        return rgb.crop((dx, dy, width - dx, height - dy))
    if kind == "mirrored":
        return ImageOps.mirror(rgb)
    if kind == "captioned":
        # Laid over the bottom edge, as sharing apps do, rather than added as a new strip: the picture keeps its
        # size and most of its layout, so this is a hard but matchable case for the hashes.
        band = max(16, height // 10)
        captioned = rgb.copy()
        draw = ImageDraw.Draw(captioned)
        draw.rectangle((0, height - band, width, height), fill=(250, 250, 250))
        font = ImageFont.load_default(size=max(9, band * 11 // 20))
        draw.text((width / 2, height - band / 2), "re-shared with a caption (synthetic demo)", fill=(15, 15, 15),
                  font=font, anchor="mm")
        return captioned
    raise ValueError(f"unknown near-duplicate kind {kind!r}; use one of {', '.join(NEAR_DUPLICATE_KINDS)}")


def encode(image: Image.Image, fmt: str = "JPEG", *, quality: int = 88) -> bytes:
    """The picture as file bytes (JPEG or PNG) ready to be uploaded."""
    buffer = io.BytesIO()
    if fmt.upper() == "JPEG":
        image.save(buffer, "JPEG", quality=quality)
    else:
        image.save(buffer, fmt)
    return buffer.getvalue()


def _stamp(image: Image.Image, label: str) -> None:
    """Print the label in a dark box at the top left and a small 'not real' note at the bottom right."""
    width, height = image.size
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=max(12, width // 34))
    margin = max(6, width // 60)
    _, _, right, bottom = draw.textbbox((2 * margin, 2 * margin), label, font=font)
    draw.rounded_rectangle((margin, margin, right + margin, bottom + margin), radius=margin,
                           fill=_LABEL_BACKGROUND)
    draw.text((2 * margin, 2 * margin), label, fill=_INK, font=font)
    note_font = ImageFont.load_default(size=max(10, width // 60))
    draw.text((width - margin, height - margin), "Veil demo image: abstract, not real content", fill=_INK,
              font=note_font, anchor="rd", stroke_width=2, stroke_fill=(0, 0, 0))


def demo_clip(seed: int, *, label: str, seconds: float = 6.0, size: tuple[int, int] = (480, 270), fps: int = 15,
              animated_gif: bool = False) -> bytes:
    """A synthetic moving item made at seed time: a slow pan across one demo picture, then a cut to a second one
    halfway through (a scene change the keyframe sheet shows), `label` on every frame. An MP4 (H.264, PyAV) or, with
    `animated_gif`, an animated GIF of the same frames."""
    import av

    width, height = size
    scenes = [demo_image(seed + n, label=label, size=(width + 200, height)) for n in range(2)]
    count = int(seconds * fps)
    frames = []
    for index in range(count):
        scene = scenes[0] if index < count // 2 else scenes[1]
        offset = int(200 * (index % (count // 2)) / max(1, count // 2 - 1))
        frames.append(scene.crop((offset, 0, offset + width, height)))
    if animated_gif:
        out = io.BytesIO()
        frames[0].save(out, "GIF", save_all=True, append_images=frames[1:], duration=int(1000 / fps), loop=0)
        return out.getvalue()
    out = io.BytesIO()
    with av.open(out, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "veryfast", "crf": "26"}
        for index, frame in enumerate(frames):
            # Not type-checked below: PyAV's stubs leave from_image untyped
            video_frame = av.VideoFrame.from_image(frame)  # type: ignore[no-untyped-call]
            video_frame.pts = index
            for packet in stream.encode(video_frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return out.getvalue()
