"""Lookup benchmark: Veil's multi-index HashIndex vs a numpy brute-force scan vs faiss IndexBinaryFlat.

Same stored hashes and same queries for every method, one thread. The stored hashes are N random 64-bit keys
(13 per synthetic picture, like real fingerprints) plus the real window keys of labelled originals from
tests/helpers/evalset.py. A query is one new picture: its query keys (13-26 window keys) are looked up at the engine's
index radius and every candidate is verified with neardup.verify against the stored fingerprint, so "end to end"
is everything from a new fingerprint to the verified candidate list. Two kinds of query: an edited copy of a
stored original (one verification that succeeds) and a new distinct picture (usually nothing to verify).
Candidates that are synthetic random-key items are verified against fingerprints of generated pictures.

Run: python -m benchmarks.lookup [--sizes 1000000,10000000] [--queries 400] [--baseline-queries 60]
Needs faiss-cpu (dev only). Prints markdown tables for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import functools
import gc
import os
import resource
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from benchmarks.services import cpu_model
from intake import neardup
from intake.hashindex import HashIndex, best_per_item
from tests.helpers import evalset

KEYS_PER_PICTURE = 13
PLANTED_BASE = 10**12  # item ids of the real originals


class Method(Protocol):
    nbytes: int

    def search(self, keys: Sequence[int], radius: int) -> list[tuple[int, int]]: ...


class BruteForce:
    """numpy: XOR and popcount against every stored key, once per query key."""

    def __init__(self, ids: np.ndarray, keys: np.ndarray) -> None:
        self.ids, self.keys = ids, keys
        self.nbytes = ids.nbytes + keys.nbytes

    def search(self, keys: Sequence[int], radius: int) -> list[tuple[int, int]]:
        found_ids, found_dist = [], []
        for key in np.array([k & 0xFFFF_FFFF_FFFF_FFFF for k in keys], dtype=np.uint64):
            distance = np.bitwise_count(self.keys ^ key)
            hit = np.flatnonzero(distance <= radius)
            found_ids.append(self.ids[hit])
            found_dist.append(distance[hit].astype(np.int64))
        return best_per_item(np.concatenate(found_ids), np.concatenate(found_dist))


class FaissFlat:
    """faiss IndexBinaryFlat(64) with range_search (exhaustive, SIMD popcount), single-threaded."""

    def __init__(self, ids: np.ndarray, keys: np.ndarray) -> None:
        import faiss

        self.ids = ids
        self.index = faiss.IndexBinaryFlat(64)
        self.index.add(np.ascontiguousarray(keys).view(np.uint8).reshape(-1, 8))
        self.nbytes = ids.nbytes + keys.nbytes  # 8-byte codes + our id array

    def search(self, keys: Sequence[int], radius: int) -> list[tuple[int, int]]:
        codes = np.array([k & 0xFFFF_FFFF_FFFF_FFFF for k in keys], dtype=np.uint64).view(np.uint8).reshape(-1, 8)
        _, distances, labels = self.index.range_search(codes, radius + 1)  # faiss keeps distance < radius
        return best_per_item(self.ids[labels], distances.astype(np.int64))


class Multi:
    """Veil's HashIndex, bulk-loaded."""

    def __init__(self, ids: np.ndarray, keys: np.ndarray, chunks: int) -> None:
        self.index = HashIndex(chunks=chunks)
        self.index.add_many(ids, keys)
        self.nbytes = self.index.nbytes

    def search(self, keys: Sequence[int], radius: int) -> list[tuple[int, int]]:
        return self.index.search(keys, radius)


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values) * 1000, q))


def fmt(values: list[float]) -> str:
    return f"{percentile(values, 50):.3f} / {percentile(values, 99):.3f}"


def make_queries(count: int) -> tuple[list[tuple[int, neardup.Fingerprint]], list[neardup.Fingerprint],
                                         dict[int, neardup.Fingerprint]]:
    """(planted originals), (edited copies: expected to match), (new pictures: expected not to)."""
    originals = [(name, img) for name, img in evalset.originals()]
    planted = [(PLANTED_BASE + k, neardup.fingerprint(img)) for k, (_, img) in enumerate(originals)]
    kinds = list(evalset.EDITS)
    copies = []
    for q in range(count):
        k = q % len(originals)
        copies.append((PLANTED_BASE + k, neardup.fingerprint(
            evalset.edit(originals[k][1], kinds[q % len(kinds)], seed=1000 + q))))
    fresh = {q: neardup.fingerprint(evalset.synthetic_photo(5_000_000 + q, 200, 150)) for q in range(count)}
    return copies, list(fresh.values()), dict(planted)


@dataclass
class Setup:
    copies: list[tuple[int, neardup.Fingerprint]]  # (stored original's id, edited copy)
    fresh: list[neardup.Fingerprint]  # new distinct pictures
    planted: dict[int, neardup.Fingerprint]
    pool: list[neardup.Fingerprint]  # stand-ins for the random-key items
    thresholds: neardup.Thresholds
    reference: dict[tuple[int, int, str], list[tuple[int, int]]] = field(default_factory=dict)

    def stored(self, item: int) -> neardup.Fingerprint:
        return self.planted.get(item) or self.pool[item % len(self.pool)]


def measure(label: str, n: int, build: Callable[[], Method], queries: int, setup: Setup) -> tuple[list[str], float]:
    """One method at one size: build it, run the queries, check it agrees with the first method run."""
    gc.collect()
    t = time.perf_counter()
    method = build()
    build_s = time.perf_counter() - t
    radius = setup.thresholds.index_radius
    idx_new, e2e_new, e2e_copy, one_key = [], [], [], []
    hits = misses = candidates = 0
    for q in range(queries):
        for kind, fp in (("copy", setup.copies[q][1]), ("new", setup.fresh[q])):
            t0 = time.perf_counter()
            found = method.search(neardup.query_keys(fp), radius)
            t1 = time.perf_counter()
            verified = [item for item, _ in found if neardup.verify(fp, setup.stored(item), setup.thresholds)]
            t2 = time.perf_counter()
            candidates += len(found)
            if kind == "copy":
                e2e_copy.append(t2 - t0)
                hits += setup.copies[q][0] in verified
            else:
                idx_new.append(t1 - t0)
                e2e_new.append(t2 - t0)
                misses += not verified
            expected = setup.reference.setdefault((n, q, kind), found)
            assert expected == found, f"{label} disagrees with the first method on query {q} ({kind})"
        t0 = time.perf_counter()
        method.search(neardup.query_keys(setup.fresh[q])[:1], radius)
        one_key.append(time.perf_counter() - t0)
    row = [label, f"{build_s:.1f} s", f"{method.nbytes / 1e6:,.0f} MB", fmt(idx_new), fmt(e2e_new), fmt(e2e_copy),
           f"{percentile(one_key, 50):.3f}", f"{hits}/{queries}", f"{misses}/{queries}",
           f"{candidates / (2 * queries):.1f}"]
    del method
    gc.collect()
    return row, percentile(e2e_new, 50)


def time_adds(ids: np.ndarray, keys: np.ndarray, adds: int, seed: int) -> float:
    """Microseconds per picture (13 keys) added one at a time to the bulk-loaded index, merges included."""
    index = HashIndex()
    index.add_many(ids, keys)
    extra = np.random.default_rng(seed).integers(0, 2**63, (adds, KEYS_PER_PICTURE), dtype=np.int64)
    t = time.perf_counter()
    for k in range(adds):
        index.add(2 * PLANTED_BASE + k, extra[k].tolist())
    return (time.perf_counter() - t) / adds * 1e6


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000000,10000000", help="stored hashes, comma-separated")
    parser.add_argument("--queries", type=int, default=400, help="queries per kind for HashIndex (default 400)")
    parser.add_argument("--baseline-queries", type=int, default=60,
                        help="queries per kind for the brute-force baselines (default 60)")
    parser.add_argument("--adds", type=int, default=2000, help="pictures added one by one to time add()")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    thresholds = neardup.Thresholds()
    radius = thresholds.index_radius
    try:
        import faiss

        faiss.omp_set_num_threads(1)
        has_faiss = True
    except ImportError:
        has_faiss = False
    started = time.perf_counter()

    copies, fresh, planted = make_queries(args.queries)
    pool = [neardup.fingerprint(evalset.synthetic_photo(7_000_000 + i, 160, 120)) for i in range(256)]

    planted_ids = np.concatenate([np.full(len(fp.keys), item, dtype=np.int64) for item, fp in planted.items()])
    planted_keys = np.concatenate([np.array(fp.keys, dtype=np.int64) for fp in planted.values()]).view(np.uint64)

    setup = Setup(copies, fresh, planted, pool, thresholds)
    results: dict[int, list[list[str]]] = {}
    growth: dict[str, dict[int, float]] = {}
    for n in sizes:
        rng = np.random.default_rng(n)
        random_rows = n - len(planted_keys)
        ids = np.concatenate([np.arange(random_rows, dtype=np.int64) // KEYS_PER_PICTURE, planted_ids])
        keys = np.concatenate([rng.integers(0, 2**64, random_rows, dtype=np.uint64), planted_keys])
        methods: list[tuple[str, Callable[[], Method], int]] = [
            ("HashIndex, 3 chunks (21/21/22 bits)", functools.partial(Multi, ids, keys, 3), args.queries),
            ("HashIndex, 4 chunks (16 bits)", functools.partial(Multi, ids, keys, 4), min(args.queries, 100)),
        ]
        if has_faiss:
            methods.append(("faiss IndexBinaryFlat", functools.partial(FaissFlat, ids, keys), args.baseline_queries))
        methods.append(("numpy brute force", functools.partial(BruteForce, ids, keys), args.baseline_queries))
        rows = []
        for label, build, queries in methods:
            row, p50 = measure(label, n, build, queries, setup)
            rows.append(row)
            growth.setdefault(label, {})[n] = p50
        add_us = time_adds(ids, keys, args.adds, seed=n)
        rows.append([f"HashIndex.add(), {KEYS_PER_PICTURE} keys, amortised over {args.adds:,} pictures",
                     f"{add_us:,.0f} us per picture", "", "", "", "", "", "", "", ""])
        results[n] = rows
        del ids, keys
        gc.collect()

    print("## Lookup benchmark\n")
    print(f"Machine: {cpu_model()}, {os.cpu_count()} cores, one thread "
          f"per method (faiss.omp_set_num_threads(1)); Python {sys.version.split()[0]}, numpy {np.__version__}. "
          f"Index radius {radius} bits; {len(neardup.WINDOWS)} window keys per picture (query keys: 13-26 with the "
          f"mirror-ambiguous ones). Times in ms, p50 / p99.\n")
    header = ("method", "build", "memory", "index only, new picture", "end to end, new picture",
              "end to end, edited copy", "one key p50", "copies found", "new: none found", "candidates/query")
    for n, rows in results.items():
        print(f"### {n:,} stored hashes (~{n // KEYS_PER_PICTURE:,} pictures)\n")
        print("| " + " | ".join(header) + " |")
        print("|" + "|".join("---" for _ in header) + "|")
        for row in rows:
            print("| " + " | ".join(row) + " |")
        print()
    if len(sizes) > 1:
        lo, hi = sizes[0], sizes[-1]
        print(f"Growth of the end-to-end p50 for a new picture, {lo:,} -> {hi:,} stored hashes: "
              + ", ".join(f"{label}: x{v[hi] / v[lo]:.1f}" for label, v in growth.items() if lo in v and hi in v)
              + ".\n")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"Peak resident memory of the whole run: {peak:,.0f} MB; total time {time.perf_counter() - started:.0f} s.")


if __name__ == "__main__":
    main()
