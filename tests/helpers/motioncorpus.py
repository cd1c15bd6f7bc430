"""Real moving media made in the tests: animated GIF/APNG/WebP with Pillow, video clips with PyAV (which encodes
H.264, VP9, MPEG-4 and more from its own FFmpeg libraries), and hostile variants of them.

Scenes are blocks of random colour (seeded): PDQ rates them high quality, and two scenes hash far apart.
"""

from __future__ import annotations

import io
import struct
from fractions import Fraction
from typing import Any

import av
import numpy as np
from PIL import Image


def scene(seed: int, size: tuple[int, int], *, shift: int = 0) -> np.ndarray:
    """An RGB frame: a seeded 6x8 grid of colour blocks, shifted right by `shift` pixels (a slow pan)."""
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 256, size=(6, 8, 3), dtype=np.uint8)
    image = np.asarray(Image.fromarray(blocks, "RGB").resize(size, Image.Resampling.NEAREST))
    return np.roll(image, shift, axis=1) if shift else image


def animation(scenes: list[tuple[int, int]], *, size: tuple[int, int] = (160, 120), fmt: str = "GIF",
              delay_ms: int = 100) -> bytes:
    """An animated picture: `scenes` is [(seed, frame count), ...]; consecutive frames of a scene pan by 1 px."""
    frames = [Image.fromarray(scene(seed, size, shift=n)) for seed, count in scenes for n in range(count)]
    out = io.BytesIO()
    frames[0].save(out, fmt, save_all=True, append_images=frames[1:], duration=delay_ms, loop=0)
    return out.getvalue()


def clip(scenes: list[tuple[int, float]], *, size: tuple[int, int] = (320, 240), fps: int = 25, codec: str = "libx264",
         container: str = "mp4", audio: bool = False, start_scene_frame: int = 0) -> bytes:
    """A video: `scenes` is [(seed, seconds), ...], each a slow pan over its blocks; optional AAC/Opus tone."""
    out_buf = io.BytesIO()
    out = av.open(out_buf, mode="w", format=container)
    stream: Any = out.add_stream(codec, rate=fps)
    stream.width, stream.height = size
    stream.pix_fmt = "yuvj420p" if codec == "mjpeg" else "yuv420p"
    if codec == "libx264":
        stream.options = {"preset": "ultrafast"}
    elif codec in ("libvpx-vp9", "libvpx"):
        stream.options = {"deadline": "realtime", "cpu-used": "8"}
    sound: Any = None
    if audio:
        sound = out.add_stream("libopus" if container == "webm" else "aac", rate=48000)
    index = 0
    for seed, seconds in scenes:
        for n in range(round(seconds * fps)):
            # The pan moves a fixed share of the width per frame, so the same clip at another size is a resize.
            shift = (n + start_scene_frame) * size[0] // 320
            frame = av.VideoFrame.from_ndarray(scene(seed, size, shift=shift), format="rgb24")
            frame.pts, frame.time_base = index, Fraction(1, fps)
            index += 1
            for packet in stream.encode(frame):
                out.mux(packet)
    for packet in stream.encode():
        out.mux(packet)
    if sound is not None:
        total = index / fps
        samples = 960
        t = 0
        while t < total * 48000:
            wave = (0.2 * np.sin(2 * np.pi * 440 * (np.arange(samples) + t) / 48000)).astype(np.float32)
            chunk = av.AudioFrame.from_ndarray(wave.reshape(1, -1), format="fltp", layout="mono")
            chunk.sample_rate, chunk.pts = 48000, t
            for packet in sound.encode(chunk):
                out.mux(packet)
            t += samples
        for packet in sound.encode():
            out.mux(packet)
    out.close()
    return out_buf.getvalue()


# --- hostile variants -------------------------------------------------------------------------------------------


def _boxes(data: bytes) -> list[tuple[int, int, bytes]]:
    found, pos = [], 0
    while pos + 8 <= len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        found.append((pos, length, data[pos + 4 : pos + 8]))
        if length < 8:
            break
        pos += length
    return found


def truncated(data: bytes, keep: float = 0.6) -> bytes:
    return data[: int(len(data) * keep)]


def _patch_tkhd_and_stsd(data: bytes, width: int, height: int) -> bytes:
    """Declare other frame dimensions in the sample description (avc1 box: width, height at fixed offsets)."""
    buf = bytearray(data)
    at = buf.find(b"avc1")
    if at < 0:
        raise AssertionError("no avc1 sample entry")
    # SampleEntry (6 reserved + 2 index) + VisualSampleEntry (16 pre-defined/reserved) then width, height (16 bit).
    offset = at + 4 + 8 + 16
    struct.pack_into(">HH", buf, offset, width, height)
    return bytes(buf)


def huge_dimensions(data: bytes) -> bytes:
    """The same MP4 claiming 65535x65535 frames (the sample entry and the SPS disagree; FFmpeg trusts the SPS, so
    the container's claim is also written into the track header's size)."""
    buf = bytearray(_patch_tkhd_and_stsd(data, 65535, 65535))
    at = buf.find(b"tkhd")
    version = buf[at + 4]
    # tkhd: version/flags (4), times and ids (v0: 20, v1: 32), reserved (8), layer..volume (8), matrix (36), w, h.
    offset = at + 4 + 4 + (32 if version == 1 else 20) + 8 + 8 + 36
    struct.pack_into(">II", buf, offset, 65535 << 16, 65535 << 16)
    return bytes(buf)


def billion_frames(data: bytes) -> bytes:
    """The same MP4 whose first time-to-sample entry says a billion frames."""
    buf = bytearray(data)
    at = buf.find(b"stts")
    # stts: version/flags (4), entry count (4), then (sample_count, sample_delta) pairs.
    struct.pack_into(">I", buf, at + 4 + 8, 1_000_000_000)
    return bytes(buf)


def zero_duration(data: bytes) -> bytes:
    """The same MP4 with every duration field zero and a time-to-sample table of zero deltas."""
    buf = bytearray(data)
    for box in (b"mvhd", b"tkhd", b"mdhd"):
        at = buf.find(box)
        version = buf[at + 4]
        offset = at + 8 + (24 if version == 1 else 16) if box == b"tkhd" else at + 8 + (24 if version == 1 else 12)
        if version == 1:
            struct.pack_into(">Q", buf, offset, 0)
        else:
            struct.pack_into(">I", buf, offset, 0)
    at = buf.find(b"stts")
    count = int.from_bytes(buf[at + 8 : at + 12], "big")
    for n in range(count):
        struct.pack_into(">I", buf, at + 12 + n * 8 + 4, 0)
    return bytes(buf)


def unsupported_codec(size: tuple[int, int] = (64, 48)) -> bytes:
    """A QuickTime file of Motion-JPEG frames: a real, playable file in a codec Veil does not take."""
    return clip([(3, 0.4)], size=size, codec="mjpeg", container="mov")
