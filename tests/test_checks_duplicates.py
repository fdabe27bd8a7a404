"""Near-duplicate rationales across the corpus (MinHash LSH)."""

from __future__ import annotations

import numpy as np
from datasketch import MinHash

from pipeline.checks.base import CheckSettings
from pipeline.checks.duplicates import MAX_BUCKET, SEED, DuplicateIndex

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


def _bucket_reference(index: DuplicateIndex, texts, ids, utterances, eligible) -> list[str | None]:
    """What check_batch must return: the first MAX_BUCKET indexed records of each band bucket are compared."""
    sigs, has = index.signatures(texts)
    sig16 = sigs & 0xFFFF
    keys = index._band_keys(sigs).T.tolist()
    buckets: dict[tuple[int, int], list[int]] = {}  # (band, key) -> text positions of its indexed records
    out: list[str | None] = []
    for i in range(len(texts)):
        candidates = sorted({j for band, key in enumerate(keys[i]) for j in buckets.get((band, key), [])[:MAX_BUCKET]})
        copied = next(
            (
                ids[j]
                for j in candidates
                if has[i]
                and utterances[j] != utterances[i]
                and np.count_nonzero(sig16[j] == sig16[i]) >= index.threshold * index.num_perm
            ),
            None,
        )
        out.append(copied)
        if has[i] and copied is None and eligible[i]:
            for band, key in enumerate(keys[i]):
                buckets.setdefault((band, key), []).append(i)
    return out


def test_verdicts_equal_the_bucket_reference_whatever_the_batch_size():
    texts, utterances, eligible = _chained_texts(600)
    ids = [f"{u}#{i % 2}" for i, u in enumerate(utterances)]
    expected = _bucket_reference(DuplicateIndex(), texts, ids, utterances, eligible)
    copies = sum(e is not None for e in expected)
    assert 50 < copies < 500  # the data holds both copies and originals
    for size in (1, 7, 64, 600):
        index, got = DuplicateIndex(), []
        for lo in range(0, len(texts), size):
            hi = lo + size
            got += index.check_batch(texts[lo:hi], ids[lo:hi], utterances[lo:hi], eligible[lo:hi])
        assert got == expected, f"batch size {size}"


# B changes 3 of A's 36 words (no copy of A, but they share a band); C changes one more word of B
# (a copy of B) and shares bands with B only where A is in the bucket too.
CHAIN_A = (
    "w205 w265 w392 w331 w183 w114 w245 w184 w127 w113 w195 w72 w111 w341 w376 w271 w21 w214 w159 w331 w166 "
    "w98 w333 w269 w70 w379 w95 w323 w140 w280 w163 w343 w202 w134 w194 w143"
)
CHAIN_B = CHAIN_A.replace("w127", "w58").replace("w379", "w381").replace("w323", "w57")
CHAIN_C = CHAIN_B.replace("w113", "w13")


def test_a_copy_is_found_behind_another_record_of_its_bucket_in_any_batching():
    ids, utterances = ["a#0", "b#0", "c#0"], ["a", "b", "c"]
    texts = [CHAIN_A, CHAIN_B, CHAIN_C]
    index = DuplicateIndex()
    keys = index._band_keys(index.signatures(texts)[0])
    shared_ab, shared_bc = keys[:, 0] == keys[:, 1], keys[:, 1] == keys[:, 2]
    assert shared_bc.any() and not (shared_bc & ~shared_ab).any()  # the case the texts were chosen for
    assert index.check_batch(texts, ids, utterances, [True] * 3) == [None, None, "b#0"]
    index = DuplicateIndex()
    assert index.check_batch(texts[:1], ids[:1], utterances[:1], [True]) == [None]
    assert index.check_batch(texts[1:], ids[1:], utterances[1:], [True] * 2) == [None, "b#0"]
