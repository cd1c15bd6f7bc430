"""intake.hashindex.HashIndex: multi-index hashing must return exactly what a brute-force scan returns."""

from __future__ import annotations

import numpy as np
import pytest

from intake.hashindex import HashIndex

MASK = (1 << 64) - 1


def brute_force(ids: np.ndarray, keys: np.ndarray, query: np.ndarray, radius: int) -> dict[int, int]:
    """item -> best distance over every stored key, for every item within radius of any query key."""
    if len(keys) == 0:
        return {}
    distances = np.bitwise_count(keys[None, :] ^ query[:, None]).min(axis=0)
    best: dict[int, int] = {}
    for item, d in zip(ids[distances <= radius].tolist(), distances[distances <= radius].tolist(), strict=True):
        best[item] = min(best.get(item, 99), d)
    return best


def planted(rng: np.random.Generator, n: int, items: int, queries: int, near: int) -> tuple[np.ndarray, ...]:
    """Random keys, plus ``near`` keys planted 0-12 bits away from the query keys (the interesting cases)."""
    keys = rng.integers(0, 2**64, n, dtype=np.uint64)
    ids = rng.integers(0, items, n).astype(np.int64)
    query = rng.integers(0, 2**64, queries, dtype=np.uint64)
    for row in range(near):
        key = int(query[row % queries])
        for bit in rng.choice(64, int(rng.integers(0, 13)), replace=False):
            key ^= 1 << int(bit)
        keys[row] = key
    order = rng.permutation(n)
    return ids[order], keys[order], query


def as_dict(found: list[tuple[int, int]]) -> dict[int, int]:
    out = dict(found)
    assert len(out) == len(found), "an item is reported once"
    return out


@pytest.mark.parametrize("chunks", [3, 4, 5])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_search_equals_brute_force_over_radii(chunks, seed):
    rng = np.random.default_rng(seed)
    ids, keys, query = planted(rng, n=20_000, items=5_000, queries=12, near=600)
    index = HashIndex(chunks=chunks)
    index.add_many(ids, keys)
    assert len(index) == len(keys)
    for radius in (0, 1, 2, 3, 5, 6, 8, 9, 10, 11, 12):
        expected = brute_force(ids, keys, query, radius)
        found = index.search(query, radius)
        assert as_dict(found) == expected, f"radius {radius}"
        # closest first, ties by id
        assert found == sorted(found, key=lambda pair: (pair[1], pair[0]))


def test_search_of_each_single_key_equals_brute_force():
    rng = np.random.default_rng(7)
    ids, keys, query = planted(rng, n=5_000, items=1_000, queries=20, near=400)
    index = HashIndex()
    index.add_many(ids, keys)
    for q in query:
        assert as_dict(index.search([int(q)], 8)) == brute_force(ids, keys, np.array([q]), 8)


def test_incremental_adds_with_merges_equal_bulk_load():
    rng = np.random.default_rng(11)
    ids, keys, query = planted(rng, n=12_000, items=3_000, queries=10, near=500)
    bulk = HashIndex()
    bulk.add_many(ids, keys)
    incremental = HashIndex(buffer_rows=700)  # many buffer merges
    incremental.add_many(ids[:5_000], keys[:5_000])
    for start in range(5_000, len(ids), 13):
        for item, key in zip(ids[start : start + 13].tolist(), keys[start : start + 13].tolist(), strict=True):
            incremental.add(item, [key])
    assert len(incremental) == len(bulk) == len(keys)
    for radius in (0, 4, 8, 11):
        expected = brute_force(ids, keys, query, radius)
        assert as_dict(incremental.search(query, radius)) == expected
        assert as_dict(bulk.search(query, radius)) == expected


def test_small_add_many_batches_are_buffered_and_equal_bulk_load():
    """The matching worker syncs one picture's keys at a time: those go to the buffer (no pass over the offsets),
    and the buffer merges as it fills, mixed with large batches that go straight into the sorted arrays."""
    rng = np.random.default_rng(12)
    ids, keys, query = planted(rng, n=9_000, items=2_000, queries=10, near=400)
    bulk = HashIndex()
    bulk.add_many(ids, keys)
    synced = HashIndex(buffer_rows=500)
    synced.add_many(ids[:26], keys[:26])  # a tiny first batch into an empty index
    assert synced._rows == 0 and synced._buffered == 26
    for start in range(26, 5_993, 13):
        synced.add_many(ids[start : start + 13], keys[start : start + 13])
        assert synced._buffered <= 500
    synced.add_many(ids[5_993:], keys[5_993:])  # larger than the buffer: merged into the sorted arrays
    assert len(synced) == len(bulk) == len(keys)
    for radius in (0, 4, 8, 11):
        expected = brute_force(ids, keys, query, radius)
        assert as_dict(synced.search(query, radius)) == expected


def test_add_starts_an_empty_index_and_searches_the_buffer():
    index = HashIndex()
    assert len(index) == 0 and index.search([1, 2, 3], 8) == []
    index.add(10, [0b1011, 1 << 63])
    index.add(11, [MASK])  # unsigned all-ones...
    index.add(12, [-1])  # ...is the same key as signed -1
    assert len(index) == 4
    assert index.search([0b1000], 2) == [(10, 2)]
    assert index.search([-1], 0) == [(11, 0), (12, 0)]
    assert index.search([-2], 1) == [(11, 1), (12, 1)]


def test_signed_and_unsigned_keys_are_the_same_bits():
    rng = np.random.default_rng(5)
    unsigned = rng.integers(0, 2**64, 1_000, dtype=np.uint64)
    signed = unsigned.view(np.int64)
    a, b = HashIndex(), HashIndex()
    a.add_many(np.arange(1_000), unsigned)
    b.add_many(np.arange(1_000), signed)
    probe = [int(signed[3]), int(unsigned[7])]
    assert a.search(probe, 6) == b.search(probe, 6) == b.search(np.array(probe, dtype=np.int64), 6)


def test_remove_hides_items_in_the_sorted_part_and_in_the_buffer():
    rng = np.random.default_rng(3)
    ids, keys, query = planted(rng, n=8_000, items=2_000, queries=8, near=400)
    index = HashIndex(buffer_rows=500)
    index.add_many(ids[:6_000], keys[:6_000])
    for item, key in zip(ids[6_000:].tolist(), keys[6_000:].tolist(), strict=True):
        index.add(item, [key])
    before = as_dict(index.search(query, 10))
    gone = sorted(before)[:5]
    rows_gone = int(np.isin(ids, gone).sum())
    for item in gone:
        index.remove(item)
    index.remove(gone[0])  # twice is harmless
    index.remove(10**12)  # unknown is harmless
    assert len(index) == len(keys) - rows_gone
    keep = ~np.isin(ids, gone)
    assert as_dict(index.search(query, 10)) == brute_force(ids[keep], keys[keep], query, 10)


def test_removed_item_can_come_back_with_other_keys():
    index = HashIndex()
    index.add_many(np.array([1, 1, 2]), np.array([100, 200, 300], dtype=np.int64))
    index.remove(1)
    assert index.search([100, 200], 0) == []
    index.add(1, [5000])  # compacts first, so the old keys do not come back with it
    assert index.search([100, 200], 0) == []
    assert index.search([5000], 0) == [(1, 0)]
    assert index.search([300], 0) == [(2, 0)]
    assert len(index) == 2


def test_many_removals_trigger_compaction():
    rng = np.random.default_rng(9)
    keys = rng.integers(0, 2**64, 4_000, dtype=np.uint64)
    index = HashIndex(buffer_rows=256)
    index.add_many(np.arange(4_000), keys)
    for item in range(0, 1_000):
        index.remove(item)
    assert len(index) == 3_000
    assert index.nbytes < HashIndex(buffer_rows=256).nbytes + 3 * 4_000 * 16  # removed rows were freed
    survivors = keys[1_000:]
    assert as_dict(index.search(survivors[:20], 0)) == dict.fromkeys(range(1_000, 1_020), 0)
    assert index.search(keys[:20], 0) == []


def test_bulk_load_after_incremental_adds_and_large_bulk_rebuild():
    rng = np.random.default_rng(13)
    ids, keys, query = planted(rng, n=30_000, items=9_000, queries=10, near=500)
    index = HashIndex(buffer_rows=1_000)
    for item, key in zip(ids[:300].tolist(), keys[:300].tolist(), strict=True):
        index.add(item, [key])
    index.add_many(ids[300:20_000], keys[300:20_000])  # rebuild path (new rows dominate)
    index.add_many(ids[20_000:], keys[20_000:])  # merge path
    assert len(index) == len(keys)
    assert as_dict(index.search(query, 9)) == brute_force(ids, keys, query, 9)


def test_rejects_bad_arguments():
    index = HashIndex()
    with pytest.raises(ValueError, match="radius"):
        index.search([1], 33)
    with pytest.raises(ValueError, match="same length"):
        index.add_many(np.array([1, 2]), np.array([1], dtype=np.int64))
    with pytest.raises(TypeError, match="int64 or uint64"):
        index.add_many(np.array([1]), np.array([1.5]))
    with pytest.raises(ValueError, match="chunks"):
        HashIndex(chunks=1)


@pytest.mark.parametrize("bits", [1, 5, 8, 9, 16, 17, 21, 22, 24, 32])
def test_rebuild_sort_is_a_stable_argsort(bits):
    from intake.hashindex import _stable_order

    rng = np.random.default_rng(bits)
    for n in (0, 1, 7, 5000):
        values = rng.integers(0, 1 << bits, n).astype(np.int64)
        values[: n // 2] = values[n // 2 : 2 * (n // 2)]  # plenty of ties
        assert np.array_equal(_stable_order(values, bits), np.argsort(values, kind="stable"))


@pytest.mark.parametrize("chunks", [3, 8])
def test_crowded_and_empty_buckets_equal_brute_force(chunks):
    """The search expands every probed bucket, empty or not, into rows and repeats each query key over the rows of
    its own probes: keys crowded into a few chunk values (dozens of rows per bucket), duplicated query keys and
    query keys whose probes find nothing must all give what a scan gives."""
    rng = np.random.default_rng(31 + chunks)
    high = rng.integers(0, 2**64, 6, dtype=np.uint64) & np.uint64(0xFFFF_FFFF_0000_0000)
    keys = high[rng.integers(0, len(high), 3_000)] | rng.integers(0, 2**16, 3_000, dtype=np.uint64)
    ids = rng.integers(0, 400, len(keys)).astype(np.int64)
    index = HashIndex(chunks=chunks)
    index.add_many(ids, keys)
    lonely = rng.integers(0, 2**64, 3, dtype=np.uint64)  # nothing near these
    near = keys[:5] ^ np.uint64(0b1011)
    query = np.concatenate([lonely, near, near[:2], keys[5:7]])
    for radius in (0, 1, 2, 3, 7, 8, 9, 16):
        assert as_dict(index.search(query, radius)) == brute_force(ids, keys, query, radius), f"radius {radius}"
        assert index.search(lonely, radius) == []
