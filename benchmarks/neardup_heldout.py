"""Near-duplicate evaluation with a held-out part: seeded random edits over a wider corpus
(tests/helpers/neardup_corpus.py).

Two parts, split by picture: **tuning** (the only one looked at while choosing thresholds) and **held-out**
(looked at only when reporting; ``--heldout-seed`` draws fresh edit parameters for it). For each part: recall per
edit class with its 95 % Wilson interval, for the engine and, in the same run, plain pHash (imagehash, <= 10 bits)
and PDQ at the ThreatExchange/HMA match threshold (<= 31 bits of 256); false merges among all pairs of different
pictures (originals and copies, every pair checked); and the false-match rate per pair against distinct
distractor pictures, through the real index and verification.

Run: python -m benchmarks.neardup_heldout [--synthetic 60] [--variants 1] [--distractors 100000] [--workers 2]
Prints markdown for docs/benchmarks.md.
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
from dataclasses import dataclass, field

import numpy as np

from benchmarks.neardup_eval import phash64, table
from benchmarks.services import cpu_model
from intake import neardup
from intake.hashindex import HashIndex
from tests.helpers import evalset
from tests.helpers import neardup_corpus as corpus

PHASH_THRESHOLD = 10
PDQ_THRESHOLD = 31  # HMA / ThreatExchange's default PDQ match distance
TUNING_SEED = 1
HELDOUT_SEED = 2


def pdq_words(hexes: Iterable[str]) -> np.ndarray:
    """PDQ hashes (64 hex characters) as (n, 4) uint64 for vectorised Hamming distances."""
    return np.array([[int(h[k : k + 16], 16) for k in range(0, 64, 16)] for h in hexes], dtype=np.uint64).reshape(-1, 4)


def pdq_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.asarray(np.bitwise_count(a ^ b).sum(axis=-1))


@dataclass
class PartResult:
    part: str
    pictures: int
    copies: int
    per_class: dict[str, list[int]]  # edit -> [copies, engine, phash, pdq]
    cross_pairs: int
    engine_false: int
    phash_false: int
    pdq_false: int
    false_examples: list[tuple[str, str]]
    misses: list[str]
    fingerprints: list[neardup.Fingerprint] = field(repr=False, default_factory=list)
    phashes: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0, dtype=np.uint64))
    fp_ms: list[float] = field(default_factory=list)
    verify_ms: list[float] = field(default_factory=list)

    def recall(self, column: int = 1, edits: Iterable[str] | None = None) -> tuple[int, int]:
        rows = [self.per_class[e] for e in (edits or self.per_class)]
        return sum(r[column] for r in rows), sum(r[0] for r in rows)


def evaluate(part: str, pictures: list[corpus.Picture], seed: int, variants: int = 1,
             thresholds: neardup.Thresholds | None = None) -> PartResult:
    """Fingerprint the originals and their copies, store them all, query every item, count what verify accepts."""
    thresholds = thresholds or neardup.Thresholds()
    names, groups, edits, fps, fp_ms = [], [], [], [], []
    images = [(p.name, p.name, "original", p.image) for p in pictures] + [
        (f"{c.picture}~{c.edit}#{c.variant}", c.picture, c.edit, c.image)
        for c in corpus.copies(pictures, seed, variants)
    ]
    phashes = []
    for name, group, kind, image in images:
        t = time.perf_counter()
        fps.append(neardup.fingerprint(image))
        fp_ms.append((time.perf_counter() - t) * 1000)
        phashes.append(phash64(image))
        names.append(name)
        groups.append(group)
        edits.append(kind)
    ph = np.array(phashes, dtype=np.uint64)
    pdq = pdq_words(fp.pdq for fp in fps)
    group_array = np.array(groups)
    original_of = {g: i for i, (g, e) in enumerate(zip(groups, edits, strict=True)) if e == "original"}

    matcher = neardup.Matcher(thresholds)
    for i, fp in enumerate(fps):
        matcher.add(i, fp)
    verified: set[tuple[int, int]] = set()
    verify_ms = []
    for i, fp in enumerate(fps):
        for j, _ in matcher.candidates(fp):
            if j == i:
                continue
            t = time.perf_counter()
            found = neardup.verify(fp, fps[j], thresholds)
            verify_ms.append((time.perf_counter() - t) * 1000)
            if found is not None:
                verified.add((i, j))

    per_class: dict[str, list[int]] = {e: [0, 0, 0, 0] for e in corpus.EDIT_CLASSES}
    misses = []
    for i, kind in enumerate(edits):
        if kind == "original":
            continue
        o = original_of[groups[i]]
        row = per_class[kind]
        row[0] += 1
        hit = (i, o) in verified  # the copy arrives when the original is stored
        row[1] += hit
        row[2] += int(np.bitwise_count(ph[i] ^ ph[o])) <= PHASH_THRESHOLD
        row[3] += int(pdq_distance(pdq[i], pdq[o])) <= PDQ_THRESHOLD
        if not hit:
            misses.append(names[i])
    n = len(fps)
    iu, ju = np.triu_indices(n, k=1)
    cross = group_array[iu] != group_array[ju]
    phash_false = int(((np.bitwise_count(ph[iu] ^ ph[ju]) <= PHASH_THRESHOLD) & cross).sum())
    pdq_false = 0
    for start in range(0, n, 256):
        block = pdq_distance(pdq[start : start + 256, None, :], pdq[None, :, :]) <= PDQ_THRESHOLD
        rows = np.arange(start, min(n, start + 256))
        different = group_array[rows][:, None] != group_array[None, :]
        upper = np.arange(n)[None, :] > rows[:, None]
        pdq_false += int((block & different & upper).sum())
    false_pairs = {(min(a, b), max(a, b)) for a, b in verified if groups[a] != groups[b]}
    return PartResult(
        part=part, pictures=len(pictures), copies=n - len(pictures), per_class=per_class,
        cross_pairs=int(cross.sum()), engine_false=len(false_pairs), phash_false=phash_false, pdq_false=pdq_false,
        false_examples=[(names[a], names[b]) for a, b in sorted(false_pairs)[:5]], misses=misses,
        fingerprints=fps, phashes=ph, fp_ms=fp_ms, verify_ms=verify_ms,
    )


# --- distractors ---------------------------------------------------------------------------------------------------

DISTRACTOR_BASE = 40_000_000


def _distractor(k: int) -> tuple[bytes, int]:
    seed = DISTRACTOR_BASE + k
    # Half generated graphics (shapes, lines, text), half generated photographs (1/f fields with objects).
    image = evalset.synthetic_photo(seed, 160, 120) if k % 2 else corpus.synthetic_scene(seed, 160, 120)
    return neardup.fingerprint(image).to_bytes(), phash64(image)


def make_distractors(count: int, workers: int) -> tuple[list[neardup.Fingerprint], np.ndarray]:
    if workers > 1:
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            results = pool.map(_distractor, range(count), chunksize=500)
    else:
        results = [_distractor(k) for k in range(count)]
    return [neardup.Fingerprint.from_bytes(b) for b, _ in results], np.array([h for _, h in results], dtype=np.uint64)


@dataclass
class DistractorResult:
    label: str
    pairs: int
    candidates: int
    engine: int
    phash: int
    pdq: int


def against_distractors(label: str, queries: list[neardup.Fingerprint], query_phash: np.ndarray,
                        dmatcher: neardup.Matcher, dfps: list[neardup.Fingerprint], dph: np.ndarray,
                        dpdq: np.ndarray, exclude_self: bool = False) -> DistractorResult:
    candidates = engine = phash = pdq = 0
    qpdq = pdq_words(fp.pdq for fp in queries)
    for k, fp in enumerate(queries):
        for j, _ in dmatcher.candidates(fp):
            if exclude_self and j == k:
                continue
            candidates += 1
            engine += neardup.verify(fp, dfps[j], dmatcher.thresholds) is not None
    for start in range(0, len(queries), 512):
        stop = min(len(queries), start + 512)
        ph_hits = np.bitwise_count(query_phash[start:stop, None] ^ dph[None, :]) <= PHASH_THRESHOLD
        pdq_hits = pdq_distance(qpdq[start:stop, None, :], dpdq[None, :, :]) <= PDQ_THRESHOLD
        if exclude_self:
            own = np.arange(start, stop)
            ph_hits[own - start, own] = False
            pdq_hits[own - start, own] = False
        phash += int(ph_hits.sum())
        pdq += int(pdq_hits.sum())
    pairs = len(queries) * (len(dfps) - (1 if exclude_self else 0))
    return DistractorResult(label, pairs, candidates, engine, phash, pdq)


# --- report --------------------------------------------------------------------------------------------------------


def ci(hits: int, total: int) -> str:
    lo, hi = corpus.wilson(hits, total)
    return f"{100 * hits / total:.1f} % ({100 * lo:.1f}-{100 * hi:.1f})" if total else "n/a"


def report_part(r: PartResult) -> str:
    rows: list[tuple[object, ...]] = []
    for kind, (total, engine, ph, pdq) in r.per_class.items():
        if total:
            rows.append((kind, total, ci(engine, total), ci(ph, total), ci(pdq, total)))
    e, t = r.recall(1)
    p, _ = r.recall(2)
    q, _ = r.recall(3)
    rows.append(("**all edits**", t, f"**{ci(e, t)}**", ci(p, t), ci(q, t)))
    rows.append(("false merges among all pairs", f"{r.cross_pairs:,} pairs", f"**{r.engine_false}**", r.phash_false,
                 r.pdq_false))
    return table(("edit class", "copies", "engine", f"pHash <= {PHASH_THRESHOLD}", f"PDQ <= {PDQ_THRESHOLD}"), rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--synthetic", type=int, default=60, help="generated photographs per part (default 60)")
    parser.add_argument("--real", type=int, default=None, help="real pictures per part (default: all, ~15)")
    parser.add_argument("--variants", type=int, default=1, help="copies per picture and edit class (default 1)")
    parser.add_argument("--heldout-seed", type=int, default=HELDOUT_SEED, help="edit seed of the held-out part")
    parser.add_argument("--distractors", type=int, default=100_000, help="distinct distractor pictures")
    parser.add_argument("--among", type=int, default=5_000, help="distractors queried against all the others")
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--misses", action="store_true", help="list the tuning part's misses (never held-out's)")
    parser.add_argument("--tuning-only", action="store_true", help="leave the held-out part out (while tuning)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    thresholds = neardup.Thresholds()
    results = {"tuning": evaluate("tuning", corpus.corpus("tuning", args.synthetic, args.real), TUNING_SEED,
                                  args.variants, thresholds)}
    if not args.tuning_only:
        results["heldout"] = evaluate("heldout", corpus.corpus("heldout", args.synthetic, args.real),
                                      args.heldout_seed, args.variants, thresholds)
    t = time.perf_counter()
    dfps, dph = make_distractors(args.distractors, args.workers)
    distractor_s = time.perf_counter() - t
    dmatcher = neardup.Matcher(thresholds, HashIndex())
    ids = np.concatenate([np.full(len(fp.keys), k, dtype=np.int64) for k, fp in enumerate(dfps)] + [np.zeros(0,
                         dtype=np.int64)])
    keys = np.concatenate([np.array(fp.keys, dtype=np.int64) for fp in dfps] + [np.zeros(0, dtype=np.int64)])
    dmatcher.index.add_many(ids, keys)
    dpdq = pdq_words(fp.pdq for fp in dfps)
    distractor_rows = [
        against_distractors(f"{part} items vs distractors", r.fingerprints, r.phashes, dmatcher, dfps, dph, dpdq)
        for part, r in results.items()
    ]
    among = min(args.among, len(dfps))
    distractor_rows.append(against_distractors(f"{among:,} distractors vs all the others", dfps[:among], dph[:among],
                                               dmatcher, dfps, dph, dpdq, exclude_self=True))

    print("## Near-duplicate evaluation with a held-out part\n")
    print(f"Machine: {cpu_model()}, {os.cpu_count()} cores (shared), Python {sys.version.split()[0]}, numpy "
          f"{np.__version__}. Total run time {time.perf_counter() - started:.0f} s. Engine thresholds: the defaults. "
          f"Edit seeds: tuning {TUNING_SEED}, held-out {args.heldout_seed}.\n")
    for part, r in results.items():
        reals = sum(1 for p in corpus.real_pictures() if p.part == part)
        reals = reals if args.real is None else min(reals, args.real)
        print(f"### {'Held-out' if part == 'heldout' else 'Tuning'} part: {r.pictures} pictures ({reals} real, "
              f"{r.pictures - reals} generated photographs), {r.copies} copies\n")
        print("Recall of the copy when its original is stored, with the 95 % Wilson interval.\n")
        print(report_part(r))
        if r.engine_false:
            print(f"\nEngine false merges: {r.false_examples}")
        print()
    print(f"### False-match rate against {len(dfps):,} distinct distractors\n")
    print(f"Half generated graphics, half generated photographs (160x120), fingerprinted for real "
          f"({distractor_s:.0f} s on {args.workers} processes); {len(keys):,} keys in the index. Rates are per "
          "(query, distractor) pair.\n")
    print(table(("queries", "pairs", "index candidates", "engine false matches", "engine rate",
                 f"pHash <= {PHASH_THRESHOLD}", f"PDQ <= {PDQ_THRESHOLD}"),
                [(d.label, f"{d.pairs:,}", f"{d.candidates:,}", d.engine, f"{d.engine / d.pairs:.1e}",
                  f"{d.phash} ({d.phash / d.pairs:.1e})", f"{d.pdq} ({d.pdq / d.pairs:.1e})")
                 for d in distractor_rows]))
    total_pairs = sum(d.pairs for d in distractor_rows)
    total_false = sum(d.engine for d in distractor_rows)
    bound = 3.0 / total_pairs if total_false == 0 else total_false / total_pairs
    print(f"\nEngine: {total_false} false matches in {total_pairs:,} pairs"
          + (f" (95 % upper bound on the rate, rule of three: {bound:.1e})." if total_false == 0 else "."))
    fp_ms = [x for r in results.values() for x in r.fp_ms]
    vms = [x for r in results.values() for x in r.verify_ms]
    print(f"\nfingerprint(): p50 {statistics.median(fp_ms):.1f} ms; verify(): p50 {statistics.median(vms):.2f} ms, "
          f"p99 {np.percentile(vms, 99):.2f} ms over {len(vms):,} index candidates.")
    if args.misses:
        by_class = collections.Counter(m.split("~")[1].split("#")[0] for m in results["tuning"].misses)
        print(f"\nTuning misses by class: {dict(by_class)}\n" + "\n".join(results["tuning"].misses))


if __name__ == "__main__":
    main()
