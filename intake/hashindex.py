"""In-memory multi-index hashing (MIH) over 64-bit keys: exact Hamming-radius search in sublinear time.

Each key is split into ``chunks`` bit ranges (default 3 chunks of 21, 21 and 22 bits). If two keys differ in at
most ``r`` bits, then by pigeonhole at least one chunk differs in at most ``r // chunks`` bits. So a search
enumerates, for every query key and chunk, the chunk values within that small radius (for r = 8: 1 + 21 + 210
values per 21-bit chunk), reads the rows stored under those values, and checks the full 64-bit distance of each
with ``np.bitwise_count``. Everything is vectorised over all query keys and chunks at once: one search is about
40 numpy operations whatever the number of keys, and no Python loop runs per candidate.

Layout. For each chunk the rows are kept sorted by that chunk's value (CSR): an offsets array with one entry per
possible chunk value (2**21 + 1) and, in the same order, the rows' full keys and item ids, so that a bucket is one
contiguous slice. The three chunk sections live in one set of arrays so that every step is a single gather.
Memory is about 3 x (8 + 8) bytes per row plus 3 x 2**21 x 8 bytes of offsets: ~0.53 GB at 10M rows.

Updates. ``add_many`` of more rows than the buffer holds builds the CSR with one stable sort per chunk; ``add``
and small ``add_many`` batches append to a small unsorted buffer
(searched by brute force) that is merged into the CSR when it reaches ``buffer_rows`` (a linear-time
``np.insert`` at the end of each bucket, no re-sort). ``remove`` hides an item at once and frees its rows at the
next compaction. Not thread-safe: the matching worker owns its index.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Iterable, Sequence

import numpy as np
import numpy.typing as npt

U64 = npt.NDArray[np.uint64]
I64 = npt.NDArray[np.int64]

KEY_BITS = 64


def _as_keys(keys: Iterable[int] | npt.NDArray[np.integer]) -> U64:
    """Signed or unsigned 64-bit keys -> uint64 array (the bit pattern is what counts)."""
    if isinstance(keys, np.ndarray):
        arr = keys
    else:
        arr = np.fromiter((int(k) & 0xFFFF_FFFF_FFFF_FFFF for k in keys), dtype=np.uint64)
    if arr.dtype == np.int64:
        return arr.view(np.uint64)
    if arr.dtype != np.uint64:
        raise TypeError(f"keys must be int64 or uint64, not {arr.dtype}")
    return arr.view(np.uint64)


def _stable_order(values: npt.NDArray[np.int64], bits: int) -> npt.NDArray[np.intp]:
    """np.argsort(values, kind="stable") for non-negative values below 2**bits.

    A least-significant-digit radix sort: stably by the low 16 bits, then stably by the next 16 (or fewer), and so
    on. numpy sorts 8- and 16-bit integers stably with a counting sort, one pass per byte, so a 21-bit chunk costs
    three passes plus two gathers (about 0.4 s for 10M rows). Sorting the 64-bit words (value << 32 | row) is a
    comparison sort, and where numpy has no SIMD sort for them (this AMD EPYC host) it took 0.65 s per chunk and
    its temporary words touched another 240 MB at start-up."""
    def digits(low: int) -> npt.NDArray[np.unsignedinteger]:
        # astype keeps the low 8 or 16 bits: the digit, whatever lies above it.
        return ((values >> low) if low else values).astype(np.uint8 if bits - low <= 8 else np.uint16)

    order = np.argsort(digits(0), kind="stable")
    for low in range(16, bits, 16):
        order = order[np.argsort(digits(low)[order], kind="stable")]
    return order


@functools.cache
def _flip_masks(bits: int, radius: int) -> npt.NDArray[np.int64]:
    """Every value of ``bits`` bits with at most ``radius`` bits set (XOR masks for the neighbours of a chunk).

    In increasing order: masks that differ only in their low bits follow each other, so a search reads the buckets
    of nearby values (neighbouring offsets and rows in memory) one after the other, about 8 % faster at 10M rows
    than in order of weight."""
    masks = [0]
    for r in range(1, radius + 1):
        masks.extend(sum(1 << b for b in combo) for combo in itertools.combinations(range(bits), r))
    return np.sort(np.array(masks, dtype=np.int64))


def best_per_item(ids: npt.NDArray[np.integer], dist: npt.NDArray[np.integer]) -> list[tuple[int, int]]:
    """Each item once, at its smallest distance, closest first (ties by item id)."""
    if len(ids) == 0:
        return []
    order = np.lexsort((dist, ids))
    ids, dist = ids[order], dist[order]
    first = np.ones(len(ids), dtype=bool)
    first[1:] = ids[1:] != ids[:-1]
    ids, dist = ids[first], dist[first]
    closest = np.lexsort((ids, dist))
    return list(zip(ids[closest].tolist(), dist[closest].tolist(), strict=True))


class HashIndex:
    """Exact Hamming-radius search over 64-bit keys, each mapped to an item id (several keys per item allowed)."""

    def __init__(self, chunks: int = 3, buffer_rows: int = 4096) -> None:
        if not 2 <= chunks <= 8:
            raise ValueError("chunks must be between 2 and 8")
        self.chunks = chunks
        self.buffer_rows = buffer_rows
        base, extra = divmod(KEY_BITS, chunks)
        # Wider chunks first would put the remainder bits in the high chunks; put them last (lowest bits).
        self._bits = [base + (1 if i >= chunks - extra else 0) for i in range(chunks)]
        self._shifts = [KEY_BITS - sum(self._bits[: i + 1]) for i in range(chunks)]
        # Section c of the offsets array starts at _bases[c] and holds 2**bits[c] + 1 entries.
        self._bases = np.cumsum([0] + [(1 << b) + 1 for b in self._bits[:-1]]).tolist()
        self._rows = 0  # rows in the CSR part (per chunk section)
        self._offsets = np.zeros(sum((1 << b) + 1 for b in self._bits), dtype=np.int64)
        self._keys = np.zeros(0, dtype=np.uint64)  # chunks * _rows, section by section
        self._ids = np.zeros(0, dtype=np.int64)
        self._buffer_keys = np.zeros(buffer_rows, dtype=np.uint64)
        self._buffer_ids = np.zeros(buffer_rows, dtype=np.int64)
        self._buffered = 0
        self._removed: set[int] = set()  # items hidden but still in the CSR
        self._removed_array = np.zeros(0, dtype=np.int64)
        self._removed_rows = 0
        self._probe_cache: dict[int, tuple[npt.NDArray[np.int64], ...]] = {}

    # --- size ---------------------------------------------------------------------------------------------------

    def __len__(self) -> int:
        """Number of live keys (rows): the "stored hashes" of the benchmarks."""
        return self._rows - self._removed_rows + self._buffered

    @property
    def nbytes(self) -> int:
        arrays = (self._offsets, self._keys, self._ids, self._buffer_keys, self._buffer_ids, self._removed_array)
        return sum(a.nbytes for a in arrays)

    # --- updates ------------------------------------------------------------------------------------------------

    def add(self, item_id: int, keys: Sequence[int]) -> None:
        """Add an item's keys. Amortised: the buffer is merged into the sorted arrays every ``buffer_rows`` keys."""
        if item_id in self._removed:
            self._compact()  # the old rows of a re-added item must go before new ones arrive
        arr = _as_keys(keys)
        start = 0
        while start < len(arr):
            room = self.buffer_rows - self._buffered
            take = arr[start : start + room]
            self._buffer_keys[self._buffered : self._buffered + len(take)] = take
            self._buffer_ids[self._buffered : self._buffered + len(take)] = item_id
            self._buffered += len(take)
            start += len(take)
            if self._buffered >= self.buffer_rows:
                self._merge_buffer()

    def add_many(self, item_ids: npt.ArrayLike, keys: npt.ArrayLike) -> None:
        """Bulk load: ``item_ids[i]`` owns ``keys[i]`` (one row per key; repeat an id for several keys)."""
        ids = np.asarray(item_ids, dtype=np.int64).ravel()
        arr = _as_keys(np.asarray(keys)).ravel()
        if len(ids) != len(arr):
            raise ValueError("item_ids and keys must have the same length")
        if self._removed and self._removed.intersection(np.unique(ids).tolist()):
            self._compact()
        if self._buffered + len(arr) <= self.buffer_rows:
            # A small batch (the matching worker's sync after each picture): into the buffer, as add() does.
            # Inserting into the sorted arrays costs a pass over the offsets (3 x 2**21 entries) whatever the batch.
            self._buffer_keys[self._buffered : self._buffered + len(arr)] = arr
            self._buffer_ids[self._buffered : self._buffered + len(arr)] = ids
            self._buffered += len(arr)
            return
        self._flush_buffer_into(ids, arr)

    def remove(self, item_id: int) -> None:
        """Hide an item at once; its rows are freed at the next compaction (or merge)."""
        if self._buffered:
            keep = self._buffer_ids[: self._buffered] != item_id
            kept = int(keep.sum())
            self._buffer_keys[:kept] = self._buffer_keys[: self._buffered][keep]
            self._buffer_ids[:kept] = self._buffer_ids[: self._buffered][keep]
            self._buffered = kept
        if item_id in self._removed or self._rows == 0:
            return
        present = int(np.count_nonzero(self._ids[: self._rows] == item_id))  # first chunk section: one row per key
        if present:
            self._removed.add(item_id)
            self._removed_array = np.fromiter(self._removed, dtype=np.int64, count=len(self._removed))
            self._removed_rows += present
            if self._removed_rows > max(self.buffer_rows, self._rows // 64):
                self._compact()

    # --- search -------------------------------------------------------------------------------------------------

    def search(self, keys: Sequence[int] | npt.NDArray[np.integer], radius: int) -> list[tuple[int, int]]:
        """Items having a key within ``radius`` bits of any query key: [(item_id, best distance)], closest first."""
        if not 0 <= radius <= 32:
            raise ValueError("radius must be between 0 and 32")
        query = np.unique(_as_keys(keys))
        if len(query) == 0:
            return []
        found_ids: list[I64] = []
        found_dist: list[npt.NDArray[np.integer]] = []
        if self._rows:
            ids, dist = self._search_sorted(query, radius)
            found_ids.append(ids)
            found_dist.append(dist)
        if self._buffered:
            distances = np.bitwise_count(query[:, None] ^ self._buffer_keys[None, : self._buffered])
            best = distances.min(axis=0)
            hit = best <= radius
            found_ids.append(self._buffer_ids[: self._buffered][hit])
            found_dist.append(best[hit])
        ids = np.concatenate(found_ids) if found_ids else np.zeros(0, dtype=np.int64)
        if len(ids) == 0:
            return []
        dist = np.concatenate(found_dist).astype(np.int64)
        if self._removed:
            alive = ~np.isin(ids, self._removed_array)
            ids, dist = ids[alive], dist[alive]
        return best_per_item(ids, dist)

    def _probes(self, radius: int) -> tuple[npt.NDArray[np.int64], ...]:
        """Per probe (all chunks concatenated): chunk shift, chunk mask, XOR mask and offsets base."""
        chunk_radius = radius // self.chunks
        if chunk_radius not in self._probe_cache:
            shifts, masks, flips, bases = [], [], [], []
            for c, bits in enumerate(self._bits):
                f = _flip_masks(bits, chunk_radius)
                flips.append(f)
                shifts.append(np.full(len(f), self._shifts[c], dtype=np.int64))
                masks.append(np.full(len(f), (1 << bits) - 1, dtype=np.int64))
                bases.append(np.full(len(f), self._bases[c], dtype=np.int64))
            self._probe_cache[chunk_radius] = tuple(
                np.concatenate(a) for a in (shifts, masks, flips, bases)
            )
        return self._probe_cache[chunk_radius]

    def _search_sorted(self, query: U64, radius: int) -> tuple[I64, npt.NDArray[np.integer]]:
        shifts, masks, flips, bases = self._probes(radius)
        signed = query.view(np.int64)
        # Chunk values of every query key for every probe, moved to their neighbours, as offsets indices.
        # (Arithmetic shift on int64 then masking gives the same bits as a logical shift.)
        values = (signed[:, None] >> shifts[None, :]) & masks[None, :]
        buckets = ((values ^ flips[None, :]) + bases[None, :]).ravel()
        starts = self._offsets[buckets]
        counts = self._offsets[buckets + 1] - starts
        ends = np.cumsum(counts)
        total = int(ends[-1])
        if total == 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        # Expand the [start, start + count) ranges into row positions without a Python loop. Empty buckets repeat
        # nothing, so they are not filtered out first (at 10M rows almost none is empty).
        positions = np.repeat(starts - (ends - counts), counts)
        positions += np.arange(total, dtype=np.int64)
        # The probes are grouped by query key, and so are the rows they read: each key is repeated over its rows.
        rows_per_key = np.diff(ends[len(flips) - 1 :: len(flips)], prepend=0)
        keys = self._keys[positions]
        keys ^= np.repeat(query, rows_per_key)
        distance = np.bitwise_count(keys)
        hit = distance <= radius
        return self._ids[positions[hit]], distance[hit]

    # --- maintenance --------------------------------------------------------------------------------------------

    def _chunk_values(self, keys: U64, chunk: int) -> npt.NDArray[np.int64]:
        values = keys >> np.uint64(self._shifts[chunk])
        values &= np.uint64((1 << self._bits[chunk]) - 1)
        return values.view(np.int64)  # below 2**22: the same value signed

    def _merge_buffer(self) -> None:
        n = self._buffered
        self._buffered = 0
        self._flush_buffer_into(self._buffer_ids[:n].copy(), self._buffer_keys[:n].copy())

    def _flush_buffer_into(self, ids: I64, keys: U64) -> None:
        """Insert rows into the sorted arrays: a full build when empty or when the new rows dominate."""
        if self._buffered:
            ids = np.concatenate([self._buffer_ids[: self._buffered], ids])
            keys = np.concatenate([self._buffer_keys[: self._buffered], keys])
            self._buffered = 0
        if len(ids) == 0:
            return
        if self._rows == 0 or len(ids) > self._rows // 4:
            if self._rows:  # the first section holds every row once
                ids = np.concatenate([self._ids[: self._rows], ids])
                keys = np.concatenate([self._keys[: self._rows], keys])
            self._build(ids, keys)  # at start-up, the caller's arrays as they are: no 160 MB copy at 10M rows
            return
        positions, new_keys, new_ids = [], [], []
        offsets = self._offsets.copy()
        for c, bits in enumerate(self._bits):
            values = self._chunk_values(keys, c)
            order = _stable_order(values, bits)
            section = slice(self._bases[c], self._bases[c] + (1 << bits) + 1)
            # Insert at the end of each bucket; every later bucket (and later section) shifts by the rows before it.
            positions.append(self._offsets[section][values[order] + 1])
            new_keys.append(keys[order])
            new_ids.append(ids[order])
            added = np.zeros((1 << bits) + 1, dtype=np.int64)
            added[1:] = np.cumsum(np.bincount(values, minlength=1 << bits))
            offsets[section] += added + c * len(ids)
        self._keys = np.insert(self._keys, np.concatenate(positions), np.concatenate(new_keys))
        self._ids = np.insert(self._ids, np.concatenate(positions), np.concatenate(new_ids))
        self._offsets = offsets
        self._rows += len(ids)

    def _build(self, ids: I64, keys: U64) -> None:
        n = len(ids)
        out_keys = np.empty(self.chunks * n, dtype=np.uint64)
        out_ids = np.empty(self.chunks * n, dtype=np.int64)
        offsets = np.empty_like(self._offsets)
        for c, bits in enumerate(self._bits):
            values = self._chunk_values(keys, c)
            order = _stable_order(values, bits)
            np.take(keys, order, out=out_keys[c * n : (c + 1) * n])
            np.take(ids, order, out=out_ids[c * n : (c + 1) * n])
            section = slice(self._bases[c], self._bases[c] + (1 << bits) + 1)
            offsets[section][0] = 0
            offsets[section][1:] = np.cumsum(np.bincount(values, minlength=1 << bits))
            offsets[section] += c * n
        # The first section must stay in insertion order per bucket, which a stable sort guarantees; the rows of
        # section 0 in bucket order are also how _flush_buffer_into recovers all rows for a rebuild.
        self._keys = out_keys
        self._ids = out_ids
        self._offsets = offsets
        self._rows = n

    def _compact(self) -> None:
        """Drop the rows of removed items for good (a rebuild)."""
        if not self._removed:
            return
        ids, keys = self._ids[: self._rows], self._keys[: self._rows]
        keep = ~np.isin(ids, self._removed_array)
        self._removed.clear()
        self._removed_array = np.zeros(0, dtype=np.int64)
        self._removed_rows = 0
        buffered_ids = self._buffer_ids[: self._buffered].copy()
        buffered_keys = self._buffer_keys[: self._buffered].copy()
        self._buffered = 0
        self._rows = 0
        self._offsets[:] = 0
        self._build(ids[keep], keys[keep])
        if len(buffered_ids):
            self._flush_buffer_into(buffered_ids, buffered_keys)
