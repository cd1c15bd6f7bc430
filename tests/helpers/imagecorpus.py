"""Hostile and odd images for the media tests, generated in memory so no binary fixture is committed.

Every function is deterministic: the same call returns the same bytes.
"""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image, ImageCms, ImageDraw

RED = (220, 30, 30)
BLUE = (30, 60, 220)


def encode(img: Image.Image, fmt: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, fmt, **params)
    return buffer.getvalue()


def photo(width: int = 1200, height: int = 900, seed: int = 1) -> Image.Image:
    """A photo-like RGB picture: smooth gradients plus large shapes, stable under resizing (good for hashes)."""
    rng = np.random.default_rng(seed)
    # The gradient is smooth, so it is computed at no more than 1000 px and scaled up: cheap even at 12 megapixels.
    step = max(1, -(-max(width, height) // 1000))
    rows, cols = -(-height // step), -(-width // step)
    ys, xs = np.arange(rows)[:, None] / rows, np.arange(cols)[None, :] / cols
    angle = rng.uniform(0, np.pi)
    ramp = (np.cos(angle) * xs + np.sin(angle) * ys + 1) / 3
    channels = [ramp * rng.uniform(120, 255) + rng.uniform(0, 60) for _ in range(3)]
    img = Image.fromarray(np.clip(np.dstack(channels), 0, 255).astype(np.uint8))
    if img.size != (width, height):
        img = img.resize((width, height), Image.Resampling.BILINEAR)
    draw = ImageDraw.Draw(img)
    for _ in range(8):
        x0, y0 = int(rng.uniform(0, width * 0.8)), int(rng.uniform(0, height * 0.8))
        x1, y1 = x0 + int(rng.uniform(width * 0.1, width * 0.4)), y0 + int(rng.uniform(height * 0.1, height * 0.4))
        fill = tuple(int(v) for v in rng.integers(0, 256, 3))
        if rng.uniform() < 0.5:
            draw.ellipse((x0, y0, x1, y1), fill=fill)
        else:
            draw.rectangle((x0, y0, x1, y1), fill=fill)
    return img


def jpeg(width: int = 640, height: int = 480, seed: int = 1, quality: int = 90) -> bytes:
    return encode(photo(width, height, seed), "JPEG", quality=quality)


def png(width: int = 320, height: int = 240, seed: int = 1) -> bytes:
    return encode(photo(width, height, seed), "PNG")


def gif(width: int = 320, height: int = 240, seed: int = 1) -> bytes:
    return encode(photo(width, height, seed).convert("P", palette=Image.Palette.ADAPTIVE), "GIF")


def webp(width: int = 320, height: int = 240, seed: int = 1) -> bytes:
    return encode(photo(width, height, seed), "WEBP", quality=85)


def empty() -> bytes:
    return b""


def text_file() -> bytes:
    """What an uploader might name 'holiday.jpg'."""
    return b"hello"


def svg(prefix: bytes = b"") -> bytes:
    body = b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><script>alert(1)</script></svg>'
    return prefix + body


def svg_with_declaration() -> bytes:
    return b'\xef\xbb\xbf \n\t<?xml version="1.0" encoding="UTF-8"?>\n' + svg()


def svg_utf16() -> bytes:
    return b"\xff\xfe" + "  <svg><rect/></svg>".encode("utf-16-le")


def truncated_jpeg() -> bytes:
    data = jpeg()
    return data[: len(data) // 2]


def corrupt_jpeg() -> bytes:
    """Complete and well-framed, but the scan names Huffman tables that were never defined.

    libjpeg shrugs off most damage to entropy-coded bytes (it just paints garbage), so the damage goes where the
    decoder must fail: every component of the start-of-scan header points at tables 3/3.
    """
    data = bytearray(jpeg())
    sos = data.index(b"\xff\xda")
    components = data[sos + 4]
    for index in range(components):
        data[sos + 6 + 2 * index] = 0x33
    return bytes(data)


def _chunk(tag: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + tag + payload + struct.pack(">I", zlib.crc32(tag + payload))


def _png_file(width: int, height: int, bit_depth: int, colour_type: int, idat: bytes) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def png_bomb(side: int = 20000) -> bytes:
    """A real, valid 1-bit PNG of side x side black pixels in about 50 KB.

    Rows are streamed through the compressor one at a time, so building it never allocates the raster.
    """
    compressor = zlib.compressobj(9)
    row = bytes(1 + (side + 7) // 8)  # filter byte 0, then all-zero samples
    parts = [compressor.compress(row) for _ in range(side)]
    parts.append(compressor.flush())
    return _png_file(side, side, 1, 0, b"".join(parts))


def png_header_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims any dimensions; its pixel data is just one empty row."""
    return _png_file(width, height, 8, 0, zlib.compress(b"\x00"))


def truncated_png() -> bytes:
    data = png()
    return data[: len(data) // 2]


def png_without_end() -> bytes:
    """Complete pixel data, but the upload was cut inside the final IEND chunk."""
    return png()[:-5]


def truncated_webp() -> bytes:
    data = webp()
    return data[: len(data) // 2]


def cmyk_jpeg() -> bytes:
    """Left half pure red ink (C0 M100 Y100 K0), right half pure black ink (K100)."""
    img = Image.new("CMYK", (200, 100), (0, 255, 255, 0))
    img.paste((0, 0, 0, 255), (100, 0, 200, 100))
    return encode(img, "JPEG", quality=95)


def png16_gradient(width: int = 512, height: int = 64) -> bytes:
    """16-bit greyscale, samples ramping 0..65535 left to right."""
    ramp = np.linspace(0, 65535, width).round().astype(np.uint16)
    return encode(Image.fromarray(np.tile(ramp, (height, 1))), "PNG")


SECRET = b"GPS-and-serial-number-secret"


def rotated_jpeg_with_metadata() -> bytes:
    """400x200 as stored, EXIF orientation 6 (display rotated 90 degrees clockwise).

    A red block fills the stored top-left corner (0..100, 0..100); everything else is blue. The file also carries
    every kind of metadata a derivative must drop: EXIF (with a GPS IFD), an ICC profile, a comment and XMP.
    """
    img = Image.new("RGB", (400, 200), BLUE)
    img.paste(RED, (0, 0, 100, 100))
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation
    exif[0x010F] = SECRET.decode()  # Make
    exif.get_ifd(0x8825)[2] = (51.0, 30.0, 0.0)  # GPSLatitude
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/">' + SECRET + b"</x:xmpmeta>"
    return encode(img, "JPEG", quality=95, exif=exif.tobytes(), icc_profile=icc, comment=SECRET, xmp=xmp)


def animated_gif(frames: int = 300, side: int = 64) -> bytes:
    """Frame 0 is red; later frames are blue with a white square walking across (each frame distinct, so Pillow
    keeps them all rather than merging duplicates)."""
    images = [Image.new("RGB", (side, side), RED)]
    for index in range(1, frames):
        frame = Image.new("RGB", (side, side), BLUE)
        x, y = index % side, (index // side) % side
        frame.paste((255, 255, 255), (x, y, x + 4, y + 4))
        images.append(frame)
    return encode(images[0], "GIF", save_all=True, append_images=images[1:], duration=20, loop=0)


def animated_webp(frames: int = 12, side: int = 64) -> bytes:
    images = [Image.new("RGB", (side, side), (20 * index % 256, 255 - 20 * index % 256, 0)) for index in range(frames)]
    return encode(images[0], "WEBP", save_all=True, append_images=images[1:], duration=40, lossless=True)


def palette_png_with_transparency() -> bytes:
    """Palette PNG: left half fully transparent (index 0), right half opaque red (index 1)."""
    img = Image.new("P", (100, 50), 0)
    img.putpalette([0, 255, 0] + list(RED) + [0, 0, 0] * 254)  # index 0 is green, but transparent
    img.paste(1, (50, 0, 100, 50))
    return encode(img, "PNG", transparency=0)


def mode_png(mode: str) -> bytes:
    """A small PNG in the given mode, built from the photo picture."""
    base = photo(160, 120)
    if mode == "1":
        return encode(base.convert("L").convert("1"), "PNG")
    if mode in ("L", "RGB"):
        return encode(base.convert(mode), "PNG")
    if mode in ("LA", "RGBA"):
        img = base.convert(mode)
        alpha = Image.linear_gradient("L").resize(base.size)
        img.putalpha(alpha)
        return encode(img, "PNG")
    if mode == "P":
        return encode(base.convert("P", palette=Image.Palette.ADAPTIVE, colors=16), "PNG")
    raise ValueError(mode)


def checkerboard(width: int = 1200, height: int = 900, cell: int = 8) -> Image.Image:
    ys, xs = np.mgrid[0:height, 0:width]
    return Image.fromarray((((xs // cell + ys // cell) % 2) * 255).astype(np.uint8)).convert("RGB")


def text_image(width: int = 1200, height: int = 900) -> Image.Image:
    """Black on white lines of text, the kind of detail a preview must not let anyone read."""
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    for line in range(0, height, 40):
        draw.text((20, line + 5), "Account 4921 7731 0042 SECRET name address " * 2, fill="black", font_size=28)
    return img


def animated_png(frames: int = 20, side: int = 32) -> bytes:
    images = [Image.new("RGB", (side, side), (10 * index % 256, 0, 255 - 10 * index % 256)) for index in range(frames)]
    return encode(images[0], "PNG", save_all=True, append_images=images[1:], duration=40)
