"""Near-duplicate rationales across the corpus (datasketch MinHash LSH)."""

from __future__ import annotations

import tracemalloc
import zlib

import numpy as np
from datasketch import MinHash, MinHashLSH

from pipeline.checks.base import CheckSettings
from pipeline.checks.duplicates import LSH_BYTES_PER_KEY, SEED, DuplicateIndex
from pipeline.checks.text import plain_words

TEMPLATE = (
    "The speaker's words express frustration with the situation, and the exclamation at the end shows "
    "that they have reached the limit of their patience, which points to anger rather than sadness."
)
OTHER = (
    "Phoebe repeats that he has totally lost it; the repetition sounds like dismay at a friend, "
    "hopeless rather than hostile, so the emotion is sadness."
)


def test_signatures_are_datasketch_minhashes_of_word_trigrams():
    index = DuplicateIndex()
    minhash = index.minhash(plain_words(TEMPLATE))
    reference = MinHash(num_perm=index.num_perm, seed=SEED, hashfunc=zlib.crc32)
    words = plain_words(TEMPLATE)
    reference.update_batch([" ".join(words[i : i + 3]).encode() for i in range(len(words) - 2)])
    assert minhash is not None and np.array_equal(reference.hashvalues, minhash.hashvalues)
    assert index.minhash(plain_words("two words")) is None  # fewer words than a shingle: no signature
    lsh = MinHashLSH(threshold=0.7, num_perm=64, weights=(0.1, 0.9))
    assert (index.lsh.b, index.lsh.r) == (lsh.b, lsh.r) == (12, 5)


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


def test_index_memory_estimate_is_close_to_what_it_holds():
    rng = np.random.default_rng(0)
    vocab = np.array([f"w{i}" for i in range(5000)])
    texts = [" ".join(rng.choice(vocab, 40)) for _ in range(3000)]
    ids = [f"u{i}#0" for i in range(3000)]
    utterances = [f"u{i}" for i in range(3000)]
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        index = DuplicateIndex()
        assert index.check_batch(texts, ids, utterances, [True] * 3000) == [None] * 3000
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(index) == 3000
    assert 0.7 < index.nbytes() / held < 1.3, (index.nbytes() / 3000, held / 3000, LSH_BYTES_PER_KEY)


def _chained_texts(n: int, seed: int = 0) -> tuple[list[str], list[str], list[bool]]:
    """Rationales that drift from a few templates, a few words at a time.

    A drifting text shares band keys with texts that are near (copies) and with texts that are
    only similar (below the threshold), so band buckets hold more than one record and which
    record the index compares with matters.
    """
    rng = np.random.default_rng(seed)
    vocab = [f"w{i}" for i in range(400)]
    texts: list[str] = []
    for i in range(n):
        if i < 8 or rng.random() < 0.15:
            words = list(rng.choice(vocab, 36))
        else:
            words = texts[int(rng.integers(max(0, i - 40), i))].split()
            share = 0.1 if rng.random() < 0.6 else 0.03  # Jaccard about 0.55 or 0.8
            for j in np.flatnonzero(rng.random(len(words)) < share):
                words[j] = str(rng.choice(vocab))
        texts.append(" ".join(words))
    utterances = [f"u{i // 2}" for i in range(n)]  # two candidates per utterance
    eligible = (rng.random(n) < 0.9).tolist()
    return texts, utterances, eligible


def _reference(texts, ids, utterances, eligible) -> list[str | None]:
    """What check_batch must return: each record against every earlier indexed one, by exact signature."""
    index = DuplicateIndex()
    sigs = [index.minhash(plain_words(t)) for t in texts]
    indexed: list[int] = []
    out: list[str | None] = []
    for i, sig in enumerate(sigs):
        copied = None
        if sig is not None:
            copied = next(
                (
                    ids[j]
                    for j in indexed
                    if utterances[j] != utterances[i]
                    and np.count_nonzero(sigs[j].hashvalues == sig.hashvalues) >= index.threshold * index.num_perm
                ),
                None,
            )
            if copied is None and eligible[i]:
                indexed.append(i)
        out.append(copied)
    return out


def test_verdicts_whatever_the_batch_size_and_near_the_exhaustive_reference():
    texts, utterances, eligible = _chained_texts(600)
    ids = [f"{u}#{i % 2}" for i, u in enumerate(utterances)]
    reference = _reference(texts, ids, utterances, eligible)
    copies = sum(e is not None for e in reference)
    assert 50 < copies < 500  # the data holds both copies and originals
    results = []
    for size in (1, 7, 64, 600):
        index, got = DuplicateIndex(), []
        for lo in range(0, len(texts), size):
            hi = lo + size
            got += index.check_batch(texts[lo:hi], ids[lo:hi], utterances[lo:hi], eligible[lo:hi])
        results.append(got)
    assert all(r == results[0] for r in results)  # batching never changes a verdict
    # LSH finds a pair above the threshold with high probability, not always (and a missed copy is
    # indexed, so later records may name it): a few verdicts differ from comparing with every
    # earlier record; every copy named is a real match of an earlier record of another utterance.
    got = results[0]
    sigs = [DuplicateIndex().minhash(plain_words(t)) for t in texts]
    position = {record_id: i for i, record_id in enumerate(ids)}
    for i, copied in enumerate(got):
        if copied is not None:
            j = position[copied]
            assert j < i and eligible[j] and utterances[j] != utterances[i] and sigs[i].jaccard(sigs[j]) >= 0.7
    missed = [i for i in range(len(texts)) if got[i] != reference[i]]
    assert len(missed) < 0.05 * copies


# B changes 3 of A's 36 words (similar to A, not a copy); C changes one more word of B (a copy of B,
# not of A): C must be found as B's copy although A, indexed earlier, is its candidate too.
CHAIN_A = (
    "w205 w265 w392 w331 w183 w114 w245 w184 w127 w113 w195 w72 w111 w341 w376 w271 w21 w214 w159 w331 w166 "
    "w98 w333 w269 w70 w379 w95 w323 w140 w280 w163 w343 w202 w134 w194 w143"
)
CHAIN_B = CHAIN_A.replace("w127", "w907").replace("w183", "w860").replace("w21 ", "w883 ")
CHAIN_C = CHAIN_B.replace("w184", "w788")


def test_a_copy_is_found_behind_another_candidate_in_any_batching():
    ids, utterances = ["a#0", "b#0", "c#0"], ["a", "b", "c"]
    texts = [CHAIN_A, CHAIN_B, CHAIN_C]
    index = DuplicateIndex()
    a, b, c = (index.minhash(plain_words(t)) for t in texts)
    assert b.jaccard(a) < 0.7 <= c.jaccard(b) and c.jaccard(a) < 0.7  # the case the texts were chosen for
    assert index.check_batch(texts, ids, utterances, [True] * 3) == [None, None, "b#0"]
    assert set(index.lsh.query(c)) == {0, 1}  # A is C's candidate too, below the threshold
    index = DuplicateIndex()
    assert index.check_batch(texts[:1], ids[:1], utterances[:1], [True]) == [None]
    assert index.check_batch(texts[1:], ids[1:], utterances[1:], [True] * 2) == [None, "b#0"]
