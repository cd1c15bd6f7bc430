"""Moving-picture ingest benchmark: a 720p video clip and a long animated GIF through Veil's worker pipeline
(intake.motion.render: every frame decoded once, keyframes, vPDQ, contact sheet, preview clip, clear H.264
stream) beside a naive pipeline that decodes every frame to full-resolution RGB and PDQ-hashes every one.

Each pipeline runs alone in its own child process, so its peak memory (VmHWM) is its own; the inputs are made once
(PyAV encodes the clip, Pillow the GIF) and cached in a temporary directory.
Run: python -m benchmarks.motion_ingest [--seconds S] [--gif-frames N]
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pdqhash
from PIL import Image

from benchmarks.services import machine_line


def make_clip(path: Path, seconds: int, size: tuple[int, int] = (1280, 720), fps: int = 30) -> None:
    """Moving colour fields with a few hard cuts: enough detail that the encoder and PDQ work as on real video."""
    width, height = size
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    with av.open(str(path), mode="w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "23"}
        rng = np.random.default_rng(1)
        for n in range(seconds * fps):
            if n % (fps * 5) == 0:  # a new scene every 5 s
                phase = rng.uniform(0, 6.28, 3)
                scale = rng.uniform(80, 400, 3)
            t = n / fps
            frame = np.stack([128 + 100 * np.sin((x * np.cos(p) + y * np.sin(p)) / s + t * 2)
                              for p, s in zip(phase, scale, strict=True)], axis=-1)
            video_frame = av.VideoFrame.from_ndarray(np.clip(frame, 0, 255).astype(np.uint8), format="rgb24")
            video_frame.pts, video_frame.time_base = n, Fraction(1, fps)
            for packet in stream.encode(video_frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def make_gif(path: Path, frames: int, size: tuple[int, int] = (240, 180)) -> None:
    rng = np.random.default_rng(2)
    pictures = []
    blocks = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
    for n in range(frames):
        if n % 150 == 0:
            blocks = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
        base = np.asarray(Image.fromarray(blocks).resize(size, Image.Resampling.NEAREST))
        pictures.append(Image.fromarray(np.roll(base, n % 150, axis=1)).quantize(64))
    pictures[0].save(path, "GIF", save_all=True, append_images=pictures[1:], duration=20, loop=0)


def veil(path: str) -> dict[str, float]:
    import os

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    from intake import media, motion

    limits = motion.Limits(max_bytes=1 << 30, max_pixels=50_000_000, max_frames=6000, max_seconds=300)
    data = Path(path).read_bytes()
    fp = io.BytesIO(data)
    started = time.perf_counter()
    if motion.is_video(fp):
        info = motion.probe_video(fp, size=len(data), limits=limits)
    else:
        image = media.inspect_image(fp, size=len(data), max_bytes=limits.max_bytes, max_pixels=limits.max_pixels,
                                    max_frames=limits.max_frames)
        info = motion.probe_animation(fp, image)
    probed = time.perf_counter()
    result = motion.render(fp, info=info, limits=limits, deadline=time.monotonic() + 3600)
    done = time.perf_counter()
    return {"probe_s": probed - started, "render_s": done - probed, "frames": result.frames,
            "keyframes": len(result.keyframes), "hashes": len(result.frame_hashes)}


def naive(path: str) -> dict[str, float]:
    """Decode every frame to full-resolution RGB and PDQ-hash every one (what "hash every frame" costs)."""
    started = time.perf_counter()
    count = 0
    if Path(path).suffix == ".gif":
        with Image.open(path) as img:
            for n in range(int(getattr(img, "n_frames", 1))):
                img.seek(n)
                pdqhash.compute(np.asarray(img.convert("RGB")))
                count += 1
    else:
        with av.open(path) as container:
            for frame in container.decode(video=0):
                pdqhash.compute(frame.to_ndarray(format="rgb24"))
                count += 1
    return {"render_s": time.perf_counter() - started, "frames": count}


def child(kind: str, path: str) -> None:
    result = veil(path) if kind == "veil" else naive(path)
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over exec from the parent (which made the inputs).
    status = Path("/proc/self/status").read_text()
    result["peak_mib"] = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM")) / 1024
    print(json.dumps(result))


def run(kind: str, path: Path) -> dict[str, float]:
    output = subprocess.run([sys.executable, "-m", "benchmarks.motion_ingest", "--child", kind, str(path)],
                            check=True, capture_output=True, text=True).stdout
    return dict(json.loads(output.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=60, help="length of the 720p clip")
    parser.add_argument("--gif-frames", type=int, default=3000)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    print(machine_line(f"python -m benchmarks.motion_ingest --seconds {args.seconds} --gif-frames {args.gif_frames}"))
    folder = Path(tempfile.gettempdir()) / "veil-bench-motion"
    folder.mkdir(exist_ok=True)
    clip = folder / f"clip-{args.seconds}s-720p.mp4"
    gif = folder / f"anim-{args.gif_frames}.gif"
    if not clip.exists():
        make_clip(clip, args.seconds)
    if not gif.exists():
        make_gif(gif, args.gif_frames)
    print("\n| input | pipeline | frames | time (s) | peak memory (MiB) | time vs naive | memory vs naive |")
    print("|---|---|---|---|---|---|---|")
    for label, path in ((f"{args.seconds} s 1280x720 H.264 30 fps ({clip.stat().st_size / 1e6:.1f} MB)", clip),
                        (f"{args.gif_frames}-frame GIF 240x180 ({gif.stat().st_size / 1e6:.1f} MB)", gif)):
        ours = run("veil", path)
        base = run("naive", path)
        ours_s = ours["probe_s"] + ours["render_s"]
        print(f"| {label} | naive: decode + PDQ every frame | {base['frames']:.0f} | {base['render_s']:.1f} | "
              f"{base['peak_mib']:.0f} | 1.00 | 1.00 |")
        print(f"| {label} | Veil: probe + render (keyframes {ours['keyframes']:.0f}, {ours['hashes']:.0f} PDQ, "
              f"sheet, clip, H.264 stream) | {ours['frames']:.0f} | {ours_s:.1f} | {ours['peak_mib']:.0f} | "
              f"{ours_s / base['render_s']:.2f} | {ours['peak_mib'] / base['peak_mib']:.2f} |")


if __name__ == "__main__":
    main()
