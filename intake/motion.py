"""Moving pictures: animated GIF/APNG/WebP and video (MP4, MOV, WebM), reviewed whole.

A pure library (no Django), beside intake.media and with the same contract: the request calls :func:`probe` on
an upload before anything is stored (headers only, no frame decoded beyond the first), the Celery worker calls
:func:`render` later, and every failure, whatever PyAV or Pillow raised, becomes ``media.UnsafeImage`` with a stable
code and a sentence for the uploader, so a hostile file refuses itself and never kills a worker.

:func:`render` decodes every frame exactly once and, in that one pass,

* counts and inspects every frame (its time, a 16x16 grey thumbnail to detect scene changes);
* picks keyframes: the first frame, every scene change, and at least one per second of running time;
* hashes frames with PDQ as vPDQ does: one frame per second of video (every frame of an animation, which is short
  and cheap), each with its quality score; and the MD5 of the file;
* writes the renditions: a blurred grey contact sheet of the keyframes (the preview everyone may see), each
  keyframe clear (served one at a time after a logged reveal), a low-resolution grey preview clip (blurred again by
  the console) and the clear stream (H.264 in MP4, at most ``stream_max_side`` pixels, audio kept as AAC), which is
  served only during a logged playback reveal.

Memory: frames stream through; at most a few decoded rasters exist at once, and the process's decode budget
(``media.DECODES``) is held for them for the whole decode. Time: the decode stops with ``too_slow`` at ``deadline``
(a monotonic clock reading), before the task's own hard limit would kill the worker mid-file.

PyAV comes from the registry with its own FFmpeg libraries inside: no ffmpeg binary is run, nothing is fetched.
"""

from __future__ import annotations

import hashlib
import math
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from fractions import Fraction
from typing import IO, Any, Final

import av
import numpy as np
import pdqhash
from av.video.reformatter import VideoReformatter
from PIL import Image, ImageSequence

from intake import media
from intake.media import UnsafeImage

# Containers by magic bytes. ISO base media (MP4/MOV) starts with a box whose type is at bytes 4..8.
_WEBM_MAGIC: Final = b"\x1a\x45\xdf\xa3"
_OLD_MOV_BOXES: Final = frozenset({b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot"})
# Video codecs accepted (FFmpeg decoder names). Others are refused with unsupported_codec before anything is kept.
VIDEO_CODECS: Final = ("h264", "hevc", "vp8", "vp9", "av1", "mpeg4")
_CONTAINERS: Final = {"mp4": "video/mp4", "mov": "video/quicktime", "webm": "video/webm"}
ANIMATED_MIME: Final = {"GIF": "image/gif", "PNG": "image/png", "WEBP": "image/webp"}
# Anything larger per side is not a video a person films: refused before a frame is decoded.
MAX_VIDEO_SIDE: Final = 8192
MAX_FRAME_RATE: Final = 240
# A browser shows a GIF frame delay under 20 ms as 100 ms; so do we (the running time a reviewer would see).
_MIN_GIF_DELAY_MS: Final = 20
_DEFAULT_DELAY_MS: Final = 100

# Keyframes: a scene change is a mean absolute difference of the 16x16 grey thumbnails of two consecutive frames
# above this (0..255); at least one keyframe a second; never closer than _MIN_KEYFRAME_GAP seconds for a scene change.
SCENE_THRESHOLD: Final = 18.0
_MIN_KEYFRAME_GAP: Final = 0.2
MAX_KEYFRAMES: Final = 400
KEYFRAME_SIDE: Final = 480  # clear keyframes, longest side
SHEET_TILE: Final = 160  # contact-sheet tiles, longest side
SHEET_COLUMNS: Final = 6
_SHEET_GAP: Final = 4
PREVIEW_CLIP_SIDE: Final = 96  # the grey preview clip, longest side
_PDQ_SIDE: Final = 256  # frames are box-reduced to about this before PDQ (as neardup reduces pictures)
VPDQ_SECONDS_PER_HASH: Final = 1.0
# Decoded rasters that can exist at once while a video decodes (the frame, the decoder's references, threads).
_RASTERS_IN_FLIGHT: Final = 6
_EIGHT_BIT_LUMA: Final = frozenset({"yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p", "nv12",
                                     "gray"})


@dataclass(frozen=True)
class Limits:
    max_bytes: int
    max_pixels: int
    max_frames: int
    max_seconds: float


@dataclass(frozen=True)
class MotionInfo:
    """What the request learned from the headers."""

    kind: str  # "animation" | "video"
    container: str  # gif, png, webp, mp4, mov, webm
    mime: str
    video_codec: str
    audio_codec: str  # "" when there is no audio
    width: int
    height: int
    duration: float  # seconds, as declared (0 for an animation: known only once its frames are read)
    frames: int  # as declared (0 when the container does not say)


@dataclass(frozen=True)
class FrameHash:
    index: int  # frame number in decode order
    seconds: float
    pdq: str  # 64 hex
    quality: int


@dataclass(frozen=True)
class Keyframe:
    index: int
    seconds: float
    scene_change: bool
    clear: bytes = field(repr=False)  # JPEG, RGB, longest side <= KEYFRAME_SIDE


@dataclass
class Renditions:
    frames: int  # frames decoded and inspected
    duration: float  # seconds of running time
    width: int  # of the clear stream
    height: int
    keyframes: list[Keyframe]
    frame_hashes: list[FrameHash]
    md5: str
    sheet: bytes  # JPEG, grey, blurred: the contact sheet
    sheet_columns: int
    stream: bytes  # MP4 (H.264 [+ AAC])
    preview_clip: bytes  # MP4 (H.264, grey, tiny)
    has_audio: bool
    first_frame: Image.Image = field(repr=False)  # clear, for the still fingerprint of the item


# --- sniffing --------------------------------------------------------------------------------------------------


def is_video(fp: IO[bytes]) -> bool:
    """Whether the magic bytes say MP4, MOV or WebM (a HEIC/HEIF still is an ISO box file too: left to media)."""
    fp.seek(0)
    head = fp.read(32)
    fp.seek(0)
    if head.startswith(_WEBM_MAGIC):
        return True
    if head[4:8] == b"ftyp":
        return head[8:12] not in media._HEIF_BRANDS
    return head[4:8] in _OLD_MOV_BOXES and int.from_bytes(head[:4], "big") >= 8


def md5_of(fp: IO[bytes]) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    fp.seek(0)
    for chunk in iter(lambda: fp.read(1024 * 1024), b""):
        digest.update(chunk)
    fp.seek(0)
    return digest.hexdigest()


# --- probing (in the request) ----------------------------------------------------------------------------------


def probe_animation(fp: IO[bytes], image: media.ImageInfo) -> MotionInfo:
    fmt = image.format.lower()
    return MotionInfo(kind="animation", container=fmt, mime=image.mime, video_codec=fmt, audio_codec="",
                      width=image.width, height=image.height, duration=0.0, frames=image.frames)


def probe_video(fp: IO[bytes], *, size: int, limits: Limits) -> MotionInfo:
    """Read a video's headers and refuse what cannot or must not be decoded. Raises UnsafeImage; leaves `fp` at 0.

    Decodes one frame (the first), under the decode budget, so a file whose codec data is garbage is refused here and
    not only later in the worker."""
    if size <= 0:
        raise UnsafeImage("empty_file", "The file is empty (0 bytes).")
    if size > limits.max_bytes:
        raise UnsafeImage("too_large", f"The file is {media._human_bytes(size)}; the limit is "
                          f"{media._human_bytes(limits.max_bytes)}.")
    try:
        _check_iso_boxes(fp, size)
        fp.seek(0)
        with _av_errors(), av.open(fp, mode="r", metadata_errors="ignore") as container:
            info = _describe(container, size=size, limits=limits)
            stream = container.streams.video[0]
            with media.DECODES.scope() as budget:
                budget.take(media.raster_cost(info.width, info.height) * 2)
                first = next(container.decode(stream), None)
                if first is None:
                    raise UnsafeImage("no_frames", "The video has no frame that can be decoded.")
            return info
    finally:
        fp.seek(0)


def _check_iso_boxes(fp: IO[bytes], size: int) -> None:
    """An MP4/MOV is a chain of boxes: a top-level box that claims to reach past the end of the file, or a file
    without its index (moov), was cut short. Refused before a decoder sees it."""
    fp.seek(0)
    head = fp.read(12)
    if not (head[4:8] == b"ftyp" or head[4:8] in _OLD_MOV_BOXES):
        return
    pos, seen = 0, set()
    while pos + 8 <= size:
        fp.seek(pos)
        header = fp.read(16)
        length = int.from_bytes(header[:4], "big")
        kind = header[4:8]
        if length == 1 and len(header) >= 16:
            length = int.from_bytes(header[8:16], "big")
        elif length == 0:
            length = size - pos  # to the end of the file
        if length < 8:
            raise UnsafeImage("corrupt", "The video file is corrupt: a box of its container has an impossible size.")
        if pos + length > size:
            raise UnsafeImage("truncated", "The video file is truncated: its data ends early (the "
                              f"{kind.decode('latin-1')!r} box needs {pos + length - size:,} more bytes).")
        seen.add(kind)
        if kind == b"moov":
            fp.seek(pos)
            _check_track_sizes(fp.read(min(length, 16 * 1024 * 1024)))
        pos += length
    if b"moov" not in seen:
        raise UnsafeImage("truncated", "The video file is truncated or incomplete: it has no index (moov box), so "
                          "it cannot be played. Export it again or send the original file.")


def _check_track_sizes(moov: bytes) -> None:
    """Each track header (moov/trak/tkhd) declares the picture's size; an absurd one is refused even where the codec
    data disagrees with it (a player may trust either)."""
    for trak in _children(moov, 8):
        if trak[0] != b"trak":
            continue
        for kind, start, end in _children(moov, trak[1] + 8, trak[2]):
            if kind != b"tkhd" or end - start < 92:
                continue
            version = moov[start + 8]
            offset = start + 8 + 4 + (32 if version == 1 else 20) + 8 + 8 + 36
            if offset + 8 > end:
                continue
            width = int.from_bytes(moov[offset : offset + 4], "big") >> 16
            height = int.from_bytes(moov[offset + 4 : offset + 8], "big") >> 16
            if max(width, height) > MAX_VIDEO_SIDE:
                raise UnsafeImage("dimensions_unsupported", f"The video's track says its frames are {width}x{height}"
                                  f" pixels; at most {MAX_VIDEO_SIDE:,} per side are accepted. The file is damaged or "
                                  "not a real video.")


def _children(data: bytes, start: int, end: int | None = None) -> Iterator[tuple[bytes, int, int]]:
    end = len(data) if end is None else end
    pos = start
    while pos + 8 <= end:
        length = int.from_bytes(data[pos : pos + 4], "big")
        if length < 8 or pos + length > end:
            return
        yield data[pos + 4 : pos + 8], pos, pos + length
        pos += length


def _describe(container: Any, *, size: int, limits: Limits) -> MotionInfo:
    names = str(container.format.name).split(",")
    if "webm" in names or "matroska" in names:
        kind = "webm"
    elif "mp4" in names or "mov" in names:
        kind = "mp4" if "qt" not in _brand(container) else "mov"
    else:
        raise UnsafeImage("unsupported_format", f"The container {container.format.name!r} is not accepted (MP4, MOV "
                          "and WebM are).")
    if not container.streams.video:
        raise UnsafeImage("no_video_stream", "The file has no video stream.")
    stream = container.streams.video[0]
    ctx = stream.codec_context
    codec = str(ctx.name)
    if codec not in VIDEO_CODECS:
        raise UnsafeImage("unsupported_codec", f"The video codec {codec!r} is not accepted; send H.264, HEVC, VP8, "
                          "VP9, AV1 or MPEG-4 video (what phones, cameras and browsers record).")
    width, height = int(ctx.width or 0), int(ctx.height or 0)
    if width <= 0 or height <= 0 or max(width, height) > MAX_VIDEO_SIDE:
        raise UnsafeImage("dimensions_unsupported", f"The video says its frames are {width}x{height} pixels; at "
                          f"most {MAX_VIDEO_SIDE:,} per side are accepted. The file is damaged or not a real video.")
    if width * height > limits.max_pixels:
        raise UnsafeImage("too_many_pixels", f"The video is {width}x{height} ({width * height:,} pixels a frame); the "
                          f"limit is {limits.max_pixels:,} pixels.")
    duration = _duration(container, stream)
    if duration <= 0:
        raise UnsafeImage("zero_duration", "The video says it lasts no time at all (its duration is zero or "
                          "missing), so there is nothing to play. Export it again or send the original file.")
    if duration > limits.max_seconds:
        raise UnsafeImage("too_long", f"The video lasts {_clock(duration)}; the limit is "
                          f"{_clock(limits.max_seconds)}.")
    rate = float(stream.average_rate or stream.guessed_rate or 0)
    if rate > MAX_FRAME_RATE:
        raise UnsafeImage("frame_rate_unsupported", f"The video says it has {rate:,.0f} frames a second; at most "
                          f"{MAX_FRAME_RATE} are accepted.")
    frames = int(stream.frames or 0)
    max_frames = _video_frame_limit(limits)
    if frames > max_frames:
        raise UnsafeImage("too_many_frames", f"The video declares {frames:,} frames; at most {max_frames:,} are "
                          f"accepted ({MAX_FRAME_RATE} a second for {_clock(limits.max_seconds)}).")
    audio = container.streams.audio[0].codec_context.name if container.streams.audio else ""
    return MotionInfo(kind="video", container=kind, mime=_CONTAINERS[kind], video_codec=codec, audio_codec=str(audio),
                      width=width, height=height, duration=duration, frames=frames)


def _video_frame_limit(limits: Limits) -> int:
    return max(limits.max_frames, int(limits.max_seconds * MAX_FRAME_RATE))


def _brand(container: Any) -> str:
    return str(container.metadata.get("major_brand", "")).strip().lower()


def _duration(container: Any, stream: Any) -> float:
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration:
        return float(container.duration) / av.time_base
    return 0.0


def _clock(seconds: float) -> str:
    seconds = round(seconds)
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"


@contextmanager
def _av_errors() -> Iterator[None]:
    """Anything PyAV raises for a hostile file becomes UnsafeImage (truncated when FFmpeg says the data ended)."""
    try:
        yield
    except (UnsafeImage, media.DecodeBusy):
        raise  # a refusal already, or the decode budget full (try again later: nothing is wrong with the file)
    except Exception as exc:  # a hostile file can make a demuxer or decoder raise almost anything
        if type(exc).__name__ == "SoftTimeLimitExceeded":  # Celery's soft limit: this file takes too long here
            raise UnsafeImage("too_slow", "Decoding took longer than the worker's time limit. Send a shorter or "
                              "smaller file.") from exc
        text = str(exc)
        if isinstance(exc, EOFError) or "End of file" in text or "truncat" in text.lower():
            raise UnsafeImage("truncated", "The video file is truncated: its data ends early.") from exc
        raise UnsafeImage("corrupt", "The video data is corrupt and could not be decoded "
                          f"({media._clip(text)}). Export it again or send the original file.") from exc


# --- the one pass (in the worker) ------------------------------------------------------------------------------


@dataclass
class _Frame:
    seconds: float
    image: Image.Image | None  # RGB (animations)
    av_frame: Any  # av.VideoFrame (video)

    def rgb(self, size: tuple[int, int]) -> Image.Image:
        if self.image is not None:
            return media._bare(self.image, size)
        image: Image.Image = self.av_frame.reformat(width=size[0], height=size[1], format="rgb24").to_image()
        return image

    def grey_thumb(self) -> np.ndarray[Any, Any]:
        if self.image is not None:
            return np.asarray(self.image.convert("L").resize((16, 16), Image.Resampling.BOX), dtype=np.float32)
        return self.luma_grid((16, 16)).astype(np.float32)

    def luma_grid(self, size: tuple[int, int]) -> np.ndarray[Any, Any]:
        """The frame's brightness sampled on a width x height grid (nearest sample). For 8-bit YUV frames it is read
        from the decoder's luma plane as it is: no conversion of the whole frame (which cost more than decoding)."""
        frame = self.av_frame
        if frame.format.name not in _EIGHT_BIT_LUMA:
            frame = frame.reformat(format="gray")
        plane = frame.planes[0]
        width, height = frame.width, frame.height
        luma = np.frombuffer(plane, dtype=np.uint8).reshape(-1, plane.line_size)[:height, :width]
        rows = np.linspace(0, height - 1, size[1]).astype(int)
        cols = np.linspace(0, width - 1, size[0]).astype(int)
        grid: np.ndarray[Any, Any] = luma[np.ix_(rows, cols)]
        return grid

    def yuv(self, size: tuple[int, int], scaler: VideoReformatter, *, grey: bool = False) -> Any:
        """The frame as the H.264 encoder takes it (YUV 4:2:0 at `size`); `grey` for the preview clip."""
        if grey:  # tiny and grey: the brightness on a grid, neutral chroma (128) below it in one 4:2:0 array
            if self.image is not None:
                luma = np.asarray(self.image.convert("L").resize(size, Image.Resampling.BOX))
            else:
                luma = self.luma_grid(size)
            chroma = np.full((size[1] // 2, size[0]), 128, dtype=np.uint8)
            return av.VideoFrame.from_ndarray(np.vstack([luma, chroma]), format="yuv420p")
        if self.image is not None:
            rgb = av.VideoFrame.from_ndarray(np.asarray(media._bare(self.image, size)), format="rgb24")
            return scaler.reformat(rgb, format="yuv420p")
        source = self.av_frame
        if (source.width, source.height) == size and source.format.name == "yuv420p":
            return source  # already what the encoder takes
        return scaler.reformat(source, width=size[0], height=size[1], format="yuv420p")


class _Encoder:
    """H.264 in MP4 with a millisecond time base (animations have a delay per frame), optional AAC audio."""

    def __init__(self, size: tuple[int, int], *, crf: int, audio_rate: int | None = None) -> None:
        # A named temporary file, not memory: faststart (the index first, so playback starts at once) rewrites the
        # file after it is written, which FFmpeg does by reopening it.
        self.file = tempfile.NamedTemporaryFile(suffix=".mp4")  # noqa: SIM115 (closed in close())
        self.out = av.open(self.file.name, mode="w", format="mp4", options={"movflags": "+faststart"})
        self.stream = self.out.add_stream("libx264", rate=1000)
        self.stream.width, self.stream.height = size
        self.stream.pix_fmt = "yuv420p"
        self.stream.codec_context.time_base = Fraction(1, 1000)
        # ultrafast: a reviewer's stream needs to be faithful, not small; this keeps a minute of 720p well inside
        # the task's time limit on a shared 2-core machine (docs/benchmarks.md).
        self.stream.options = {"preset": "ultrafast", "crf": str(crf)}
        self.audio = self.out.add_stream("aac", rate=audio_rate) if audio_rate else None
        self.last_pts = -1

    def add(self, frame: Any, seconds: float) -> None:
        pts = max(self.last_pts + 1, round(seconds * 1000))
        self.last_pts = pts
        frame.pts, frame.time_base = pts, Fraction(1, 1000)
        for packet in self.stream.encode(frame):
            self.out.mux(packet)

    def add_audio(self, frame: Any) -> None:
        assert self.audio is not None
        for packet in self.audio.encode(frame):
            self.out.mux(packet)

    def close(self) -> bytes:
        for packet in self.stream.encode():
            self.out.mux(packet)
        if self.audio is not None:
            for packet in self.audio.encode():
                self.out.mux(packet)
        self.out.close()
        with self.file:
            self.file.seek(0)
            return self.file.read()


def _even(size: tuple[int, int]) -> tuple[int, int]:
    return max(2, size[0] // 2 * 2), max(2, size[1] // 2 * 2)


def render(fp: IO[bytes], *, info: MotionInfo, limits: Limits, deadline: float, stream_max_side: int = 1280
           ) -> Renditions:
    """Decode every frame once and derive everything the item needs (see the module's docstring). Raises
    UnsafeImage (also for too_many_frames / too_long found only while decoding, and too_slow past `deadline`);
    leaves `fp` at offset 0."""
    md5 = md5_of(fp)
    try:
        with _av_errors():
            if info.kind == "animation":
                return _render(_animation_frames(fp, info), None, info=info, limits=limits, deadline=deadline,
                               stream_max_side=stream_max_side, md5=md5, hash_every_frame=True)
            with av.open(fp, mode="r", metadata_errors="ignore") as container:
                return _render(_video_frames(container), container, info=info, limits=limits, deadline=deadline,
                               stream_max_side=stream_max_side, md5=md5, hash_every_frame=False)
    finally:
        fp.seek(0)


def _animation_frames(fp: IO[bytes], info: MotionInfo) -> Iterator[_Frame]:
    fmt = info.container.upper()
    with media._pillow_errors(fp, fmt), Image.open(fp, formats=(fmt,)) as img:
        clock_ms = 0
        for frame in ImageSequence.Iterator(img):
            delay = int(frame.info.get("duration") or 0)
            if delay < _MIN_GIF_DELAY_MS:
                delay = _DEFAULT_DELAY_MS
            yield _Frame(seconds=clock_ms / 1000, image=media._to_rgb(frame.convert("RGBA")), av_frame=None)
            clock_ms += delay
        # The end of the last frame: the running time.
        yield _Frame(seconds=clock_ms / 1000, image=None, av_frame=None)


def _video_frames(container: Any) -> Iterator[_Frame]:
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    start: float | None = None
    last = 0.0
    step = 1 / float(stream.average_rate or 25)
    for frame in container.decode(stream):
        seconds = float(frame.time) if frame.time is not None else last + step
        if start is None:
            start = seconds
        last = seconds - start
        yield _Frame(seconds=last, image=None, av_frame=frame)
    yield _Frame(seconds=last + step, image=None, av_frame=None)


def _render(frames: Iterator[_Frame], container: Any, *, info: MotionInfo, limits: Limits, deadline: float,
            stream_max_side: int, md5: str, hash_every_frame: bool) -> Renditions:
    width, height = info.width, info.height
    stream_size = _even(media._fit((width, height), stream_max_side))
    preview_size = _even(media._fit((width, height), PREVIEW_CLIP_SIDE))
    key_size = media._fit((width, height), KEYFRAME_SIDE)
    max_frames = limits.max_frames if info.kind == "animation" else _video_frame_limit(limits)
    audio_stream = container.streams.audio[0] if container is not None and container.streams.audio else None
    stream_out = _Encoder(stream_size, crf=26, audio_rate=48000 if audio_stream is not None else None)
    preview_out = _Encoder(preview_size, crf=36)
    # One scaler per decode: FFmpeg's conversion context is set up once per size and format, not per frame (and
    # never shared between threads).
    scaler = VideoReformatter()
    keyframes: list[Keyframe] = []
    hashes: list[FrameHash] = []
    tiles: list[Image.Image] = []
    first: Image.Image | None = None
    last_thumb: np.ndarray[Any, Any] | None = None
    last_key = -math.inf
    next_hash = 0.0
    count = 0
    end = 0.0
    with media.DECODES.scope() as budget:
        budget.take(media.raster_cost(width, height) * (1 if info.kind == "animation" else _RASTERS_IN_FLIGHT))
        for frame in frames:
            if frame.image is None and frame.av_frame is None:
                end = frame.seconds
                break
            count += 1
            if count > max_frames:
                raise UnsafeImage("too_many_frames", f"The file has more than {max_frames:,} frames; the limit is "
                                  f"{max_frames:,}.")
            if frame.seconds > limits.max_seconds:
                raise UnsafeImage("too_long", f"The file runs longer than {_clock(limits.max_seconds)}, the limit.")
            if time.monotonic() > deadline:
                raise UnsafeImage("too_slow", f"Decoding took too long (stopped at frame {count:,}, "
                                  f"{_clock(frame.seconds)} in). Send a shorter or smaller file.")
            thumb = frame.grey_thumb()
            # A cut: this frame against the one before it (a slow pan never adds up to a scene change).
            change = float(np.abs(thumb - last_thumb).mean()) if last_thumb is not None else 0.0
            gap = frame.seconds - last_key
            scene = last_thumb is not None and change > SCENE_THRESHOLD and gap >= _MIN_KEYFRAME_GAP
            if (last_thumb is None or scene or frame.seconds - last_key >= 1.0) and len(keyframes) < MAX_KEYFRAMES:
                picture = frame.rgb(key_size)
                if first is None:
                    first = picture
                keyframes.append(Keyframe(index=count - 1, seconds=frame.seconds, scene_change=scene,
                                          clear=media._encode_jpeg(picture, 80, optimize=False)))
                tiles.append(media._blurred_preview(picture.convert("L"), picture.size, SHEET_TILE))
                last_key = frame.seconds
            last_thumb = thumb
            if hash_every_frame or frame.seconds >= next_hash:
                hashes.append(_pdq(frame, count - 1))
                next_hash = math.floor(frame.seconds / VPDQ_SECONDS_PER_HASH + 1) * VPDQ_SECONDS_PER_HASH
            stream_out.add(frame.yuv(stream_size, scaler), frame.seconds)
            preview_out.add(frame.yuv(preview_size, scaler, grey=True), frame.seconds)
            frame.av_frame = None  # the raster goes now, not at the next frame
        if count == 0 or first is None:
            raise UnsafeImage("no_frames", "The file has no frame that can be decoded.")
    if audio_stream is not None:
        _copy_audio(container, audio_stream, stream_out, deadline)
    return Renditions(
        frames=count, duration=max(end, 0.001), width=stream_size[0], height=stream_size[1], keyframes=keyframes,
        frame_hashes=hashes, md5=md5, sheet=media._encode_jpeg(_sheet(tiles), 75), sheet_columns=_columns(len(tiles)),
        stream=stream_out.close(), preview_clip=preview_out.close(), has_audio=audio_stream is not None,
        first_frame=first,
    )


def video_hashes(fp: IO[bytes], *, info: MotionInfo, limits: Limits, deadline: float) -> list[FrameHash]:
    """vPDQ alone (no renditions): PDQ of one frame a second, every frame decoded and counted under the same limits
    as `render`. For the HMA-compatible /h/hash and /m/lookup, which hash a video in the request."""
    hashes: list[FrameHash] = []
    next_hash, count = 0.0, 0
    max_frames = _video_frame_limit(limits)
    try:
        with _av_errors(), av.open(fp, mode="r", metadata_errors="ignore") as container, \
                media.DECODES.scope() as budget:
            budget.take(media.raster_cost(info.width, info.height) * _RASTERS_IN_FLIGHT)
            for frame in _video_frames(container):
                if frame.av_frame is None:
                    break
                count += 1
                if count > max_frames or frame.seconds > limits.max_seconds:
                    raise UnsafeImage("too_long", f"The video runs past the limits ({max_frames:,} frames, "
                                      f"{_clock(limits.max_seconds)}).")
                if time.monotonic() > deadline:
                    raise UnsafeImage("too_slow", "Hashing the video took too long. Send a shorter or smaller file.")
                if frame.seconds >= next_hash:
                    hashes.append(_pdq(frame, count - 1))
                    next_hash = math.floor(frame.seconds / VPDQ_SECONDS_PER_HASH + 1) * VPDQ_SECONDS_PER_HASH
    finally:
        fp.seek(0)
    if not hashes:
        raise UnsafeImage("no_frames", "The video has no frame that can be decoded.")
    return hashes


def _copy_audio(container: Any, audio_stream: Any, out: _Encoder, deadline: float) -> None:
    """Audio re-encoded as AAC (a second, cheap pass over the audio packets only)."""
    container.seek(0)
    resampler = av.AudioResampler(format="fltp", layout="stereo", rate=48000)
    for frame in container.decode(audio_stream):
        if time.monotonic() > deadline:
            raise UnsafeImage("too_slow", "Decoding the sound took too long. Send a shorter file.")
        for resampled in resampler.resample(frame):
            resampled.pts = None
            out.add_audio(resampled)


def _pdq(frame: _Frame, index: int) -> FrameHash:
    """PDQ of the whole frame, reduced the way intake.neardup reduces a picture before its PDQ (a box reduce by
    a whole factor to about 256 px): a frame grab saved as a still then hashes the same, to within a few bits."""
    picture = frame.image if frame.image is not None else frame.av_frame.to_image()
    factor = max(1, max(picture.size) // _PDQ_SIDE)
    if factor > 1:
        picture = picture.reduce(factor)
    bits, quality = pdqhash.compute(np.asarray(picture))
    value = int("".join("1" if b else "0" for b in bits), 2)
    return FrameHash(index=index, seconds=round(frame.seconds, 3), pdq=f"{value:064x}", quality=int(quality))


def _columns(count: int) -> int:
    return max(1, min(SHEET_COLUMNS, count))


def _sheet(tiles: list[Image.Image]) -> Image.Image:
    """The keyframes in reading order, each already grey and blurred beyond recognition, on neutral grey."""
    columns = _columns(len(tiles))
    rows = math.ceil(len(tiles) / columns)
    cell_w = max(t.width for t in tiles)
    cell_h = max(t.height for t in tiles)
    sheet = Image.new("L", (columns * cell_w + (columns - 1) * _SHEET_GAP, rows * cell_h + (rows - 1) * _SHEET_GAP),
                      128)
    for n, tile in enumerate(tiles):
        x = (n % columns) * (cell_w + _SHEET_GAP) + (cell_w - tile.width) // 2
        y = (n // columns) * (cell_h + _SHEET_GAP) + (cell_h - tile.height) // 2
        sheet.paste(tile.convert("L"), (x, y))
    return sheet


# --- vPDQ comparison ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VideoMatch:
    query_percent: float  # of the query's usable frame hashes that found a match in the other video
    compared_percent: float  # and the other way round


def pdq_distance(a: str, b: str) -> int:
    return (int(a, 16) ^ int(b, 16)).bit_count()


def vpdq_match(query: list[tuple[str, int]], compared: list[tuple[str, int]], *, threshold: int = 31,
               min_quality: int = 50) -> VideoMatch:
    """vPDQ's comparison: the unique frame hashes of each video (quality >= min_quality) and the share of each side's
    hashes within `threshold` of some hash of the other side. A re-encoded, resized or trimmed copy keeps a high
    share on the side that was trimmed from."""
    q = np.array(sorted({_words(h) for h, quality in query if quality >= min_quality}), dtype=np.uint64).reshape(-1, 4)
    c = np.array(sorted({_words(h) for h, quality in compared if quality >= min_quality}),
                 dtype=np.uint64).reshape(-1, 4)
    if not len(q) or not len(c):
        return VideoMatch(0.0, 0.0)
    distances = np.bitwise_count(q[:, None, :] ^ c[None, :, :]).sum(axis=2)
    close = distances <= threshold
    return VideoMatch(float(close.any(axis=1).mean() * 100), float(close.any(axis=0).mean() * 100))


def _words(hex64: str) -> tuple[int, int, int, int]:
    return (int(hex64[0:16], 16), int(hex64[16:32], 16), int(hex64[32:48], 16), int(hex64[48:64], 16))
