"""Near-duplicate evaluation: recall per edit type and false merges, plain pHash@10 vs Veil's engine, same run.

The labelled set is tests/helpers/evalset.py (pictures shipped inside scikit-image, generated edits, hard negatives).
The false-match rate is measured against distractors: distinct generated pictures
(tests.helpers.evalset.synthetic_photo), fingerprinted for real and put through the real index + verification, both
as the stored side for every evaluation query and among themselves (a sample of them queried against all the others).

Run: python -m benchmarks.neardup_eval [--variants 2] [--distractors 100000] [--workers 2]
Prints markdown tables for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import collections
import multiprocessing
import os
import statistics
import sys
import time
from collections.abc import Iterable

import imagehash
import numpy as np
from PIL import Image

from benchmarks.services import cpu_model
from intake import neardup
from intake.hashindex import HashIndex
from tests.helpers import evalset

PHASH_THRESHOLD = 10


def phash64(image: Image.Image) -> int:
    return int(str(imagehash.phash(image)), 16)


def category(group: str) -> str:
    """Hard-negative family of an original, for the per-family false-merge table."""
    prefixes = (
        ("motorcycle", "stereo pair (motorcycle left/right)"),
        ("brick", "textures (brick/grass/gravel quadrants)"),
        ("grass", "textures (brick/grass/gravel quadrants)"),
        ("gravel", "textures (brick/grass/gravel quadrants)"),
        ("hubble", "Hubble deep-field tiles"),
        ("lfw", "lfw faces (25x25)"),
        ("chessboard", "chessboards and stripes"),
        ("board", "chessboards and stripes"),
        ("stripes", "chessboards and stripes"),
        ("flat", "near-uniform (flat greys, faint gradients/noise)"),
        ("gradient", "near-uniform (flat greys, faint gradients/noise)"),
        ("noise", "near-uniform (flat greys, faint gradients/noise)"),
    )
    return next((label for prefix, label in prefixes if group.startswith(prefix)), "other pictures")


def _distractor(seed: int) -> tuple[bytes, int]:
    image = evalset.synthetic_photo(seed, 160, 120)
    return neardup.fingerprint(image).to_bytes(), phash64(image)


def make_distractors(count: int, workers: int) -> tuple[list[neardup.Fingerprint], np.ndarray]:
    seeds = range(1_000_000, 1_000_000 + count)
    if workers > 1:
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            results = pool.map(_distractor, seeds, chunksize=500)
    else:
        results = [_distractor(s) for s in seeds]
    fps = [neardup.Fingerprint.from_bytes(blob) for blob, _ in results]
    hashes = np.array([h for _, h in results], dtype=np.uint64)
    return fps, hashes


def pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f} %" if whole else "n/a"


def table(header: Iterable[str], rows: Iterable[Iterable[object]]) -> str:
    head = list(header)
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", type=int, default=2, help="edited copies per original and edit (default 2)")
    parser.add_argument("--distractors", type=int, default=100_000, help="distinct distractor pictures (100000)")
    parser.add_argument("--among", type=int, default=10_000,
                        help="distractors queried against all the others (default 10000; each is one lookup)")
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1),
                        help="processes for fingerprinting distractors")
    args = parser.parse_args(argv)
    thresholds = neardup.Thresholds()
    started = time.perf_counter()

    # --- the labelled set ---------------------------------------------------------------------------------------
    items = list(evalset.items(variants=args.variants))
    fp_times = []
    fps = []
    for it in items:
        t = time.perf_counter()
        fps.append(neardup.fingerprint(it.image))
        fp_times.append(time.perf_counter() - t)
    ph = np.array([phash64(it.image) for it in items], dtype=np.uint64)
    groups = np.array([it.group for it in items])
    n = len(items)
    originals = {it.group: i for i, it in enumerate(items) if it.edit == "original"}

    matcher = neardup.Matcher(thresholds)
    for i, fp in enumerate(fps):
        matcher.add(i, fp)
    verified: set[tuple[int, int]] = set()  # (query, stored)
    verify_times = []
    candidates_total = 0
    for i, fp in enumerate(fps):
        for j, _ in matcher.candidates(fp):
            if j == i:
                continue
            candidates_total += 1
            t = time.perf_counter()
            found = neardup.verify(fp, fps[j], thresholds)
            verify_times.append(time.perf_counter() - t)
            if found is not None:
                verified.add((i, j))

    # --- recall per edit ----------------------------------------------------------------------------------------
    per_edit: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0, 0, 0])  # pairs, phash, after, before
    for i, it in enumerate(items):
        if it.edit == "original":
            continue
        o = originals[it.group]
        row = per_edit[it.edit]
        row[0] += 1
        row[1] += int(np.bitwise_count(ph[i] ^ ph[o])) <= PHASH_THRESHOLD
        row[2] += (i, o) in verified  # the copy arrives after the original
        row[3] += (o, i) in verified  # the original arrives after the copy
    rows = []
    totals = [0, 0, 0, 0]
    for kind in evalset.EDITS:
        pairs, p, after, before = per_edit[kind]
        totals = [a + b for a, b in zip(totals, (pairs, p, after, before), strict=True)]
        rows.append((kind, pairs, pct(p, pairs), pct(after, pairs), pct(before, pairs)))
    rows.append(("**all edits**", totals[0], f"**{pct(totals[1], totals[0])}**", f"**{pct(totals[2], totals[0])}**",
                 f"**{pct(totals[3], totals[0])}**"))

    # --- false merges among all pairs ---------------------------------------------------------------------------
    iu, ju = np.triu_indices(n, k=1)
    cross = groups[iu] != groups[ju]
    phash_hits = (np.bitwise_count(ph[iu] ^ ph[ju]) <= PHASH_THRESHOLD) & cross
    engine_pairs = {(min(a, b), max(a, b)) for a, b in verified if groups[a] != groups[b]}
    cats = np.array([category(g) for g in groups])
    family_rows = []
    for fam in sorted(set(cats.tolist())):
        inside = cross & (cats[iu] == fam) & (cats[ju] == fam)
        engine_fam = sum(1 for a, b in engine_pairs if cats[a] == fam and cats[b] == fam)
        family_rows.append((fam, int(inside.sum()), int((phash_hits & inside).sum()), engine_fam))
    family_rows.append(("**all cross-picture pairs**", int(cross.sum()), int(phash_hits.sum()), len(engine_pairs)))
    phash_examples = collections.Counter(
        tuple(sorted((groups[a].split("_")[0], groups[b].split("_")[0])))
        for a, b in zip(iu[phash_hits], ju[phash_hits], strict=True)
    )

    # --- distractors --------------------------------------------------------------------------------------------
    t = time.perf_counter()
    dfps, dph = make_distractors(args.distractors, args.workers)
    distractor_seconds = time.perf_counter() - t
    dmatcher = neardup.Matcher(thresholds, HashIndex())
    bulk_ids = np.concatenate([np.full(len(fp.keys), k, dtype=np.int64) for k, fp in enumerate(dfps)])
    bulk_keys = np.concatenate([np.array(fp.keys, dtype=np.int64) for fp in dfps])
    dmatcher.index.add_many(bulk_ids, bulk_keys)
    dmatcher.fingerprints.update(enumerate(dfps))
    eval_candidates = eval_false = 0
    eval_false_examples = []
    for i, fp in enumerate(fps):
        cands = dmatcher.candidates(fp)
        eval_candidates += len(cands)
        for j, _ in cands:
            if neardup.verify(fp, dfps[j], thresholds) is not None:
                eval_false += 1
                eval_false_examples.append((items[i].name, j))
    among_candidates = among_false = 0
    among_examples = []
    among_queries = min(args.among, len(dfps))
    for k, fp in enumerate(dfps[:among_queries]):
        cands = [(j, d) for j, d in dmatcher.candidates(fp) if j != k]
        among_candidates += len(cands)
        for j, _ in cands:
            if neardup.verify(fp, dfps[j], thresholds) is not None:
                among_false += 1
                among_examples.append((k, j))
    d = len(dfps)
    phash_eval_false = int(sum(int((np.bitwise_count(dph ^ h) <= PHASH_THRESHOLD).sum()) for h in ph))
    phash_among = 0
    for start in range(0, among_queries, 2000):
        stop = min(start + 2000, among_queries)
        block = np.bitwise_count(dph[start:stop, None] ^ dph[None, :]) <= PHASH_THRESHOLD
        phash_among += int(block.sum()) - (stop - start)  # minus each query's match with itself
    eval_pairs = n * d
    among_pairs = among_queries * (d - 1)  # ordered (query, stored) pairs

    # --- report -------------------------------------------------------------------------------------------------
    print("## Near-duplicate evaluation\n")
    print(f"Machine: {cpu_model()}, {os.cpu_count()} cores, Python "
          f"{sys.version.split()[0]}, numpy {np.__version__}. Total run time {time.perf_counter() - started:.0f} s.\n")
    edited = len({it.group for it in items if it.edit != "original"})
    print(f"Labelled set: {len(originals)} distinct pictures ({edited} with edits, {len(originals) - edited} hard "
          f"negatives only), {totals[0]} edited copies ({args.variants} per picture and edit), {n} items, "
          f"{int(cross.sum()):,} pairs of different pictures. Engine thresholds: the defaults "
          f"(`index_radius={thresholds.index_radius}`).\n")
    print("### Recall per edit type\n")
    print("'after' = the copy arrives when the original is stored (the usual order); 'before' = the original arrives "
          "when the copy is stored.\n")
    print(table(("edit", "copies", f"plain pHash <= {PHASH_THRESHOLD}", "engine (after)", "engine (before)"), rows))
    print("\n### False merges among all pairs of different pictures (hard negatives included)\n")
    print(table(("pairs within", "pairs", f"plain pHash <= {PHASH_THRESHOLD}", "engine"), family_rows))
    if phash_examples:
        print("\nPlain pHash false merges by family: "
              + ", ".join(f"{a}/{b}: {c}" for (a, b), c in phash_examples.most_common(8)) + ".")
    print("\n### False-match rate against distinct distractors\n")
    print(f"{d:,} distinct generated pictures (gradients, shapes, lines, noise textures, text; 160x120), "
          f"fingerprinted for real ({distractor_seconds:.0f} s on {args.workers} processes), "
          f"{len(bulk_keys):,} keys in the index.\n")
    print(table(
        ("comparison", "pairs", "index candidates", "engine false matches", "engine rate",
         f"plain pHash <= {PHASH_THRESHOLD} false matches", "pHash rate"),
        [
            ("labelled items vs distractors", f"{eval_pairs:,}", f"{eval_candidates:,}", eval_false,
             f"{eval_false / eval_pairs:.1e}", phash_eval_false, f"{phash_eval_false / eval_pairs:.1e}"),
            (f"{among_queries:,} distractors vs all the others", f"{among_pairs:,}", f"{among_candidates:,}",
             among_false, f"{among_false / among_pairs:.1e}", phash_among, f"{phash_among / among_pairs:.1e}"),
        ],
    ))
    if eval_false_examples or among_examples:
        print(f"\nEngine false matches: {eval_false_examples[:5]} {among_examples[:5]}")
    print("\n### Cost\n")
    ms = [x * 1000 for x in fp_times]
    vs = [x * 1000 for x in verify_times]
    print(f"fingerprint(): p50 {statistics.median(ms):.1f} ms over the labelled set (pictures up to 1411 px); "
          f"verify(): p50 {statistics.median(vs):.2f} ms, p99 {np.percentile(vs, 99):.2f} ms over {len(vs):,} "
          f"index candidates ({candidates_total:,} candidates for {n} queries).")


if __name__ == "__main__":
    main()
