"""Ingest benchmark: 12-megapixel JPEGs through Veil's real pipeline vs a naive full-resolution Pillow pipeline.

Each pipeline runs once alone in its own child process, so peak memory (VmHWM) belongs to that pipeline alone;
the timings come from "paired" child processes that put every picture through the three pipelines in turn.
Run: python -m benchmarks.ingest [--images N] [--rounds R]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import imagehash
import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageOps

from benchmarks.services import machine_line
from intake import neardup

WIDTH, HEIGHT = 4000, 3000


def make_photo(seed: int) -> bytes:
    """A photo-like 12 MP JPEG, a different picture for every seed: smooth gradients of the seed's own frequencies
    and directions, a few dozen shapes, and noise, so the encoder works as on real photos (about 4 MB at quality
    90) and the near-duplicate step sees distinct pictures, as in a real stream of uploads."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    channels = []
    for _ in range(3):
        angle = rng.uniform(0, np.pi)
        wave = np.cos(angle) * x + np.sin(angle) * y
        channels.append(128 + 90 * np.sin(wave / rng.uniform(150, 700) + rng.uniform(0, 2 * np.pi)))
    image = Image.fromarray(np.clip(np.stack(channels, axis=-1), 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(image)
    for _ in range(40):
        x0, y0 = int(rng.integers(0, WIDTH)), int(rng.integers(0, HEIGHT))
        box = (x0, y0, x0 + int(rng.integers(100, 1200)), y0 + int(rng.integers(100, 900)))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=colour)
    pixels = np.asarray(image, dtype=np.float32) + rng.normal(0, 12, (HEIGHT, WIDTH, 3))
    out = io.BytesIO()
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB").save(out, "JPEG", quality=90)
    return out.getvalue()


def naive(data: bytes) -> None:
    """What a straightforward implementation does: decode everything at full size and work there."""
    source = Image.open(io.BytesIO(data))
    source.load()
    image = ImageOps.exif_transpose(source).convert("RGB")
    imagehash.phash(image)
    imagehash.dhash(image)
    preview = image.convert("L").filter(ImageFilter.GaussianBlur(40))
    preview.thumbnail((480, 480))
    preview.save(io.BytesIO(), "JPEG", quality=75)
    display = image.copy()
    display.thumbnail((1600, 1600))
    display.save(io.BytesIO(), "JPEG", quality=85)
    neardup.fingerprint(image)  # the near-duplicate fingerprint, of the picture it has (the engine reduces it)


def veil_media(data: bytes) -> None:
    from intake import media

    fp = io.BytesIO(data)
    media.inspect_image(fp, size=len(data), max_bytes=50 << 20, max_pixels=50_000_000, max_frames=500)
    fp.seek(0)
    derived = media.make_derivatives(fp, max_pixels=50_000_000)
    neardup.fingerprint(derived.display_image)


def veil_service() -> Callable[[bytes], dict[str, float]]:
    """The whole service path: upload checks, sha256, storing the original, DB rows, derivatives, hashes, and the
    near-duplicate step (fingerprint + match), each step timed so the cost of matching can be reported apart.
    Returns a function that ingests one picture and gives its timings."""
    import django

    django.setup()
    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.core.management import call_command

    from intake import matching, services
    from review.models import Queue

    call_command("migrate", verbosity=0)
    queue = Queue.objects.create(slug="bench", name="Bench", purpose="Benchmark of the ingest path.",
                                 requester="Veil benchmarks")
    timed: dict[str, float] = {}

    def timing(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            t = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                timed[name] = timed.get(name, 0.0) + time.perf_counter() - t
        return wrapper

    # Benchmark-only instrumentation: the same functions, timed where item_process calls them. (In a paired child
    # the naive and media pipelines call the wrapped fingerprint too; `timed` is cleared as each ingest starts.)
    neardup.fingerprint = timing("fingerprint", neardup.fingerprint)
    matching.item_match = timing("match", matching.item_match)

    def ingest(data: bytes) -> dict[str, float]:
        timed.clear()
        start = time.perf_counter()
        item = services.item_ingest(queue=queue, upload=SimpleUploadedFile("x.jpg", data), submitted_by=None)
        services.item_process(item_id=item.pk)  # already run by the eager task on commit; then a no-op
        return {"total": time.perf_counter() - start, "fingerprint": timed.get("fingerprint", 0.0),
                "match": timed.get("match", 0.0)}

    return ingest


def child(kind: str, paths: list[Path]) -> None:
    """One child process. "naive", "media" or "service" run that pipeline alone (for its peak memory); "paired"
    runs all three on each picture in turn, rotating the order, so each picture's times are taken within a
    second or two of each other and the ratios do not depend on the host's load coming and going."""
    # The first picture is a warm-up, not timed, in every pipeline: imports and the allocator's first growth are
    # not what is being compared (the naive pipeline's first picture took 1.4x its others, Veil's 1.3x).
    warm_up, paths = paths[0].read_bytes(), paths[1:]
    runners: dict[str, Callable[[bytes], Any]] = {}
    for name in ("naive", "media", "service") if kind == "paired" else (kind,):
        runners[name] = {"naive": naive, "media": veil_media}.get(name) or veil_service()
        runners[name](warm_up)
    times: dict[str, list[float]] = {name: [] for name in runners}
    steps: dict[str, list[float]] = {"fingerprint": [], "match": []}
    order = list(runners)
    for index, path in enumerate(paths):
        data = path.read_bytes()
        for name in order[index % len(order):] + order[: index % len(order)]:
            start = time.perf_counter()
            result = runners[name](data)
            times[name].append(time.perf_counter() - start)
            if name == "service":
                for step in steps:
                    steps[step].append(result[step])
    print(json.dumps({"times": times, "steps": steps, "peak_mib": peak_rss_mib()}))


def peak_rss_mib() -> float:
    # VmHWM belongs to this process image; ru_maxrss would carry over the parent's peak across exec.
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_child(kind: str, paths: list[Path], env: dict[str, str]) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-m", "benchmarks.ingest", "--child", kind, *map(str, paths)],
                         check=True, capture_output=True, text=True, env=env)
    found: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return found


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3, help="paired rounds (each in a fresh process and database)")
    parser.add_argument("--child", default=None)
    parser.add_argument("paths", nargs="*")
    args = parser.parse_args()
    if args.child:
        child(args.child, [Path(p) for p in args.paths])
        return
    kinds = ("naive", "media", "service")
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for seed in range(args.images + 1):  # one more, for the warm-up
            path = Path(tmp) / f"photo-{seed}.jpg"
            path.write_bytes(make_photo(seed))
            paths.append(path)

        def env(name: str) -> dict[str, str]:
            values = {**os.environ, "VEIL_DATA_DIR": str(Path(tmp) / name), "DJANGO_SETTINGS_MODULE": "config.settings"}
            values.pop("DATABASE_URL", None)
            values.pop("REDIS_URL", None)
            return values

        alone = {kind: run_child(kind, paths, env(f"alone-{kind}")) for kind in kinds}
        rounds = [run_child("paired", paths, env(f"paired-{number}")) for number in range(args.rounds)]
    print(machine_line(f"python -m benchmarks.ingest --images {args.images} --rounds {args.rounds}"))
    print()
    times = {kind: [t for r in rounds for t in r["times"][kind]] for kind in kinds}
    ratios = {kind: [n / t for n, t in zip(times["naive"], times[kind], strict=True)] for kind in kinds}
    median = {kind: statistics.median(times[kind]) for kind in kinds}
    print(f"Ingest of {args.images} JPEGs of {WIDTH}x{HEIGHT} (12 MP, distinct pictures), {args.rounds} rounds; "
          "each picture through the three pipelines in turn; medians over all pictures")
    print("| pipeline | ms / image | images / s | peak RSS MiB (alone) | speed-up vs naive (per picture) |")
    print("|---|---:|---:|---:|---:|")
    labels = {"naive": "naive full-resolution Pillow (same steps as Veil media)",
              "media": "Veil media (inspect, derivatives, hashes, fingerprint)",
              "service": "Veil service path (checks, sha256, store, DB, derivatives, fingerprint, match)"}
    for kind, label in labels.items():
        m = median[kind]
        print(f"| {label} | {m * 1000:.0f} | {1 / m:.2f} | {alone[kind]['peak_mib']:.0f} | "
              f"{statistics.median(ratios[kind]):.1f}x (range {min(ratios[kind]):.1f}-{max(ratios[kind]):.1f}) |")
    print()
    print("Each pipeline alone (one process each, one pass; ms / image, mean): " + ", ".join(
        f"{kind} {statistics.mean(alone[kind]['times'][kind]) * 1000:.0f}" for kind in kinds))
    steps = {name: statistics.median(v for r in rounds for v in r["steps"][name])
             for name in ("fingerprint", "match")}
    total = median["service"]
    without = total - steps["fingerprint"] - steps["match"]
    print()
    print("Near-duplicate matching's share of the service path (same runs, same images; medians)")
    print("| service path | ms / image | vs without matching |")
    print("|---|---:|---:|")
    print(f"| without near-duplicate matching (no fingerprint, no match) | {without * 1000:.0f} | 1.00x |")
    print(f"| with it: fingerprint {steps['fingerprint'] * 1000:.1f} ms + match {steps['match'] * 1000:.1f} ms | "
          f"{total * 1000:.0f} | {total / without:.2f}x |")


if __name__ == "__main__":
    main()
