"""The held-out near-duplicate evaluation at a small size (benchmarks.neardup_heldout runs it at full size).

Fails if recall on held-out pictures with freshly seeded edits falls below the floor, or if any two different
pictures merge. Thresholds are never tuned on this part (see tests/helpers/neardup_corpus.py); the floor sits below
what the engine scores so that it catches a regression, not noise.
"""

from __future__ import annotations

from benchmarks.neardup_heldout import HELDOUT_SEED, evaluate
from tests.helpers import neardup_corpus as corpus

RECALL_FLOOR = 0.93


def test_small_heldout_set_recall_and_no_false_merges():
    pictures = corpus.corpus("heldout", synthetic=6, real=5)
    result = evaluate("heldout", pictures, HELDOUT_SEED)
    hits, total = result.recall()
    assert total == len(pictures) * len(corpus.EDIT_CLASSES)
    assert result.engine_false == 0, result.false_examples
    assert hits / total >= RECALL_FLOOR, (hits, total, result.misses)
    # The baselines are measured on the same copies; the engine must stay far ahead of both.
    assert hits > result.recall(2)[0] and hits > result.recall(3)[0]


def test_wilson_interval():
    assert corpus.wilson(0, 0) == (0.0, 1.0)
    lo, hi = corpus.wilson(95, 100)
    assert 0.88 < lo < 0.89 and 0.978 < hi < 0.979
    assert corpus.wilson(10, 10)[1] == 1.0


def test_edits_are_seeded_and_parts_are_disjoint():
    pictures = corpus.corpus("tuning", synthetic=2, real=1)
    a = [c.image.tobytes() for c in corpus.copies(pictures, 7, edits=("stickers", "caption_band"))]
    b = [c.image.tobytes() for c in corpus.copies(pictures, 7, edits=("stickers", "caption_band"))]
    c = [c.image.tobytes() for c in corpus.copies(pictures, 8, edits=("stickers", "caption_band"))]
    assert a == b and a != c
    tuning = {p.name for p in corpus.corpus("tuning", synthetic=5)}
    heldout = {p.name for p in corpus.corpus("heldout", synthetic=5)}
    assert tuning.isdisjoint(heldout) and len(tuning) > 5 and len(heldout) > 5
