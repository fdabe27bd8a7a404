"""Duplicates: near-copies of an earlier rationale across the corpus (MinHash LSH, datasketch).

A teacher that falls into a template ("The speaker's tone suggests…" for every utterance)
teaches the student a template. Each reasoning becomes the set of its word shingles
(``settings.duplicate_shingle``-grams of :func:`~pipeline.checks.text.plain_words`, so
punctuation never counts) and its ``datasketch.MinHash`` signature (``duplicate_num_perm``
permutations, seed 1; each shingle hashed with ``zlib.crc32``: stable across processes, and a
third faster than datasketch's default SHA-1 here). ``datasketch.MinHashLSH`` indexes the signatures with the (b, r) it chooses
for the threshold, weighted towards recall (``duplicate_recall_weight`` 0.9: with 64
permutations, b = 12 bands of r = 5 rows find a pair at Jaccard 0.7 with p = 0.89 and at 0.8
with p = 0.99); the extra candidates cost one signature comparison each. A record is a duplicate
of the earliest indexed candidate whose estimated Jaccard similarity with it (the share of equal
signature values, as ``MinHash.jaccard``) reaches ``settings.duplicate_threshold`` (0.7:
changing one word in thirty breaks three trigram shingles, J ≈ 0.82; two unrelated rationales
share almost none). The first occurrence passes; later near-copies fail naming the record they
copy. Records are looked up and indexed one at a time in corpus order, so how the corpus is cut
into batches never changes a verdict.

Only records that passed every other check are indexed (a copy of a rejected rationale is not
a copy of anything in the corpus), and candidates of the same utterance are never duplicates of
each other (best-of-n keeps one of them anyway). A reasoning shorter than one shingle has no
signature: it is never a copy and never indexed.

Memory: the index is the one thing in stage two that grows with the corpus: per indexed record
about ``LSH_BYTES_PER_KEY`` in ``MinHashLSH``'s band tables (Python dicts of sets), its signature
(4 bytes per permutation), its record id and utterance id.
"""

from __future__ import annotations

import sys
import zlib
from collections.abc import Sequence
from enum import StrEnum

import numpy as np
from datasketch import MinHash, MinHashLSH

from pipeline.checks.base import CheckSettings
from pipeline.checks.text import plain_words
from pipeline.verdict import CheckName

NAME = CheckName.duplicate


class Code(StrEnum):
    framed = "framed"  # n/a: a framed reasoning is built from the utterance's own cues
    near_copy = "near_copy"  # a near-copy of an earlier accepted rationale of another utterance


SEED = 1  # datasketch's default permutation seed
# MinHashLSH's memory per inserted key with 12 bands (tracemalloc on CPython 3.11, datasketch 2.0):
# a bytes band key, a set and a dict slot per band. tests/test_checks_duplicates.py measures it.
LSH_BYTES_PER_KEY = 3_800


class DuplicateIndex:
    """Corpus-wide near-duplicate detection; feed it batches in corpus order."""

    def __init__(self, settings: CheckSettings | None = None):
        settings = settings or CheckSettings()
        self.threshold = settings.duplicate_threshold
        self.num_perm = settings.duplicate_num_perm
        self.shingle = settings.duplicate_shingle
        recall = settings.duplicate_recall_weight
        self.lsh = MinHashLSH(threshold=self.threshold, num_perm=self.num_perm, weights=(1.0 - recall, recall))
        # The permutations are drawn once and shared: MinHash would otherwise draw them per record.
        template = MinHash(num_perm=self.num_perm, seed=SEED)
        self._permutations, self._scheme = template.permutations, template.scheme
        # What the index keeps per record, by ordinal (the LSH keys are ordinals).
        self._signatures = np.empty((0, self.num_perm), dtype=template.hashvalues.dtype)
        self._record_ids: list[str] = []
        self._utterance_ids: list[str] = []
        self._id_bytes = 0

    def __len__(self) -> int:
        return len(self._record_ids)

    def shingles(self, words: Sequence[str]) -> list[bytes]:
        """The word ``shingle``-grams of a text's words, UTF-8 (empty when it is shorter)."""
        k = self.shingle
        return [" ".join(words[i : i + k]).encode() for i in range(len(words) - k + 1)]

    def minhash(self, words: Sequence[str]) -> MinHash | None:
        """The text's MinHash, or None when it has fewer words than a shingle."""
        shingles = self.shingles(words)
        if not shingles:
            return None
        minhash = MinHash(
            num_perm=self.num_perm, seed=SEED, hashfunc=zlib.crc32, permutations=self._permutations, scheme=self._scheme
        )
        minhash.update_batch(shingles)
        return minhash

    def _copied(self, minhash: MinHash, utterance_id: str) -> int | None:
        """Ordinal of the earliest indexed record of another utterance that this one copies."""
        candidates = sorted(o for o in self.lsh.query(minhash) if self._utterance_ids[o] != utterance_id)
        if not candidates:
            return None
        equal = np.count_nonzero(self._signatures[candidates] == minhash.hashvalues, axis=1)
        hits = np.flatnonzero(equal >= self.threshold * self.num_perm)
        return candidates[hits[0]] if len(hits) else None

    def _add(self, minhash: MinHash, record_id: str, utterance_id: str) -> None:
        ordinal = len(self)
        if ordinal == len(self._signatures):  # grow by doubling: amortised O(1) per record
            grown = np.empty((max(1024, 2 * ordinal), self.num_perm), dtype=self._signatures.dtype)
            grown[:ordinal] = self._signatures
            self._signatures = grown
        self._signatures[ordinal] = minhash.hashvalues
        self._record_ids.append(record_id)
        self._utterance_ids.append(utterance_id)
        self._id_bytes += sys.getsizeof(record_id) + sys.getsizeof(utterance_id)
        self.lsh.insert(ordinal, minhash, check_duplication=False)

    def check_batch(
        self,
        texts: Sequence[str],
        record_ids: Sequence[str],
        utterance_ids: Sequence[str],
        eligible: Sequence[bool],
        words: Sequence[tuple[str, ...] | None] | None = None,
    ) -> list[str | None]:
        """For each record, the id of the earlier record it copies, or None. Eligible originals are indexed.

        ``words``: each text's ``plain_words``, when the caller already has them.
        """
        out: list[str | None] = []
        for i, text in enumerate(texts):
            minhash = self.minhash(words[i] if words is not None and words[i] is not None else plain_words(text))
            if minhash is None:
                out.append(None)
                continue
            copied = self._copied(minhash, utterance_ids[i])
            out.append(None if copied is None else self._record_ids[copied])
            if copied is None and eligible[i]:
                self._add(minhash, record_ids[i], utterance_ids[i])
        return out

    def nbytes(self) -> int:
        """Approximate memory held by the index: LSH tables (estimated per key), signatures and ids."""
        return len(self) * (LSH_BYTES_PER_KEY + self._signatures.itemsize * self.num_perm) + self._id_bytes
