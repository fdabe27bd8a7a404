"""Near-duplicate rationales across the corpus (MinHash LSH)."""

from __future__ import annotations

import numpy as np
from datasketch import MinHash

from pipeline.checks.base import CheckSettings
from pipeline.checks.duplicates import SEED, DuplicateIndex

TEMPLATE = (
    "The speaker's words express frustration with the situation, and the exclamation at the end shows "
    "that they have reached the limit of their patience, which points to anger rather than sadness."
)
OTHER = (
    "Phoebe repeats that he has totally lost it; the repetition sounds like dismay at a friend, "
    "hopeless rather than hostile, so the emotion is sadness."
)


def test_batched_signatures_equal_datasketch_minhash():
    index = DuplicateIndex()
    sigs, has = index.signatures([TEMPLATE, OTHER, "too short"])
    assert has.tolist() == [True, True, False]  # two words make no trigram
    for text, sig in zip([TEMPLATE, OTHER], sigs, strict=False):
        reference = MinHash(num_perm=index.num_perm, seed=SEED, hashfunc=lambda x: x)
        reference.update_batch(index.shingle_hashes(text).tolist())
        assert np.array_equal(reference.hashvalues, sig)
    assert not index.signatures(["two words"])[1][0]  # fewer words than a shingle: no signature


def test_first_occurrence_passes_near_copies_fail_naming_it():
    index = DuplicateIndex()
    near = TEMPLATE.replace("the situation", "this situation")  # one word changed
    out = index.check_batch(
        [TEMPLATE, OTHER, near, TEMPLATE + " Clearly."],
        ["a#0", "b#0", "c#0", "d#0"],
        ["a", "b", "c", "d"],
        [True] * 4,
    )
    assert out == [None, None, "a#0", "a#0"]
    # across batches too; copies are not indexed, the original stays the reference
    assert index.check_batch([near], ["e#0"], ["e"], [True]) == ["a#0"]
    assert len(index) == 2


def test_candidates_of_one_utterance_and_rejected_originals_do_not_count():
    index = DuplicateIndex()
    out = index.check_batch([TEMPLATE, TEMPLATE], ["a#0", "a#1"], ["a", "a"], [True, True])
    assert out == [None, None]
    index = DuplicateIndex()
    # the first copy failed another check: it is not indexed, so the next one is the original
    out = index.check_batch([TEMPLATE, TEMPLATE, TEMPLATE], ["a#0", "b#0", "c#0"], ["a", "b", "c"], [False, True, True])
    assert out == [None, None, "b#0"]


def test_threshold_controls_what_counts_as_a_copy():
    half = " ".join(TEMPLATE.split()[:16]) + " " + " ".join(OTHER.split()[:14])
    loose = DuplicateIndex(CheckSettings(duplicate_threshold=0.3))
    strict = DuplicateIndex(CheckSettings(duplicate_threshold=0.9))
    for index, expected in ((loose, "a#0"), (strict, None)):
        assert index.check_batch([TEMPLATE, half], ["a#0", "b#0"], ["a", "b"], [True, True])[1] == expected


def test_index_stays_compact_over_many_batches():
    index = DuplicateIndex()
    rng = np.random.default_rng(0)
    vocab = np.array([f"w{i}" for i in range(5000)])
    for b in range(10):
        texts = [" ".join(rng.choice(vocab, 40)) for _ in range(500)]
        ids = [f"{b}-{i}" for i in range(500)]
        assert index.check_batch(texts, ids, ids, [True] * 500) == [None] * 500
    assert len(index) == 5000
    assert len(index._runs) <= 12  # merged like an LSM tree: O(log n) runs
    assert index.nbytes() / len(index) < 500  # ~350 bytes plus the last chunk's unused slots
