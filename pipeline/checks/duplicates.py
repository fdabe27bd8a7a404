"""Duplicates: near-copies of an earlier rationale across the corpus (MinHash LSH).

A teacher that falls into a template ("The speaker's tone suggests…" for every utterance)
teaches the student a template. Each reasoning becomes a set of word shingles
(``settings.duplicate_shingle``-grams); its MinHash signature (datasketch's "affine32" scheme
and permutations, computed for a whole batch at once in numpy, equal to
``datasketch.MinHash.update_batch`` over the same shingle hashes) is banded with the (b, r)
that datasketch's ``MinHashLSH`` chooses for the threshold, weighted towards recall (0.9: with
64 permutations, b = 12 bands of r = 5 rows find a pair at Jaccard 0.7 with p = 0.89 and at 0.8
with p = 0.99); the extra candidates cost one signature comparison each. The records indexed
earlier with a band key equal to the record's are its candidates (the first ``MAX_BUCKET`` of
each bucket, in corpus order, so a template-heavy corpus cannot make a bucket cost O(n) per
record, and the batch size never changes what is compared); it is a duplicate of the first
candidate whose estimated Jaccard similarity with it reaches ``settings.duplicate_threshold``
(0.7: changing one word in thirty breaks three trigram shingles, J ≈ 0.82; two unrelated
rationales share almost none). The first occurrence passes; later near-copies fail naming the
record they copy.

Only records that passed every other check are indexed (a copy of a rejected rationale is not
a copy of anything in the corpus), and candidates of the same utterance are never duplicates of
each other (best-of-n keeps one of them anyway).

Memory: the index is the one thing in stage two that grows with the corpus, so it is compact
(datasketch's ``MinHashLSH`` holds ~1.5 KB per key and inserts at ~130 µs on this VM): per
indexed record a 16-bit truncated signature (collisions of unequal values at 2^-16 do not move
the estimate), b 64-bit band keys with 32-bit ordinals in sorted runs merged like an LSM tree,
a 64-bit utterance hash and the record id (UTF-8, in one buffer): ~330 bytes.
"""

from __future__ import annotations

import zlib
from array import array
from collections.abc import Iterable, Sequence
from enum import StrEnum
from itertools import accumulate, chain, islice

import numpy as np
from datasketch import MinHash, MinHashLSH
from datasketch.minhash import _fmix

from pipeline.checks.base import CheckSettings
from pipeline.checks.text import plain_words
from pipeline.verdict import CheckName

NAME = CheckName.duplicate


class Code(StrEnum):
    framed = "framed"  # n/a: a framed reasoning is built from the utterance's own cues
    near_copy = "near_copy"  # a near-copy of an earlier accepted rationale of another utterance


SEED = 1  # datasketch's default permutation seed
_WORD_CACHE_LIMIT = 1_000_000  # distinct words kept hashed; cleared between batches beyond this
_SIGNATURE_ROWS = 128  # records permuted together: 64 perms x ~6k shingles x 4 bytes fit in L2
_CHUNK = 4096  # signatures and utterance hashes are stored in chunks of this many records
# Records compared per band bucket: its first ones. A template-heavy corpus can fill a bucket with
# records that are similar but not copies; comparing all of them would cost O(n) per record.
MAX_BUCKET = 16


def _stable_hash64(text: str) -> int:
    # Python's hash() of a str changes with PYTHONHASHSEED; verdicts must not.
    data = text.encode()
    return (zlib.crc32(data) << 32) | zlib.adler32(data)


def _sorted_run(keys: list[np.ndarray], ordinals: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate (b, n_i) key and ordinal arrays, each band sorted by key.

    Band by band, so a merge needs scratch space for one band, not for all of them. The sort is
    stable: equal keys keep the earlier ordinal first.
    """
    bands, total = keys[0].shape[0], sum(k.shape[1] for k in keys)
    out_keys = np.empty((bands, total), dtype=np.uint64)
    out_ordinals = np.empty((bands, total), dtype=np.int32)
    for band in range(bands):
        band_keys = np.concatenate([k[band] for k in keys])
        order = np.argsort(band_keys, kind="stable")
        out_keys[band] = band_keys[order]
        out_ordinals[band] = np.concatenate([o[band] for o in ordinals])[order]
    return out_keys, out_ordinals


class _WordHashes(dict[str, int]):
    """word -> stable 32-bit hash, computed on first use."""

    def __missing__(self, word: str) -> int:
        value = self[word] = zlib.crc32(word.encode())
        return value


class DuplicateIndex:
    """Corpus-wide near-duplicate detection; feed it batches in corpus order."""

    def __init__(self, settings: CheckSettings | None = None):
        settings = settings or CheckSettings()
        self.threshold = settings.duplicate_threshold
        self.num_perm = settings.duplicate_num_perm
        self.shingle = settings.duplicate_shingle
        template = MinHash(num_perm=self.num_perm, seed=SEED)
        self.scheme = template.scheme
        a, b = template.permutations
        self._a, self._b = a.astype(np.uint32), b.astype(np.uint32)
        recall = settings.duplicate_recall_weight
        lsh = MinHashLSH(threshold=self.threshold, num_perm=self.num_perm, weights=(1.0 - recall, recall))
        self.bands, self.rows = lsh.b, lsh.r
        rng = np.random.default_rng(SEED)
        self._band_mix = rng.integers(1, 2**63, size=self.rows, dtype=np.uint64) | np.uint64(1)
        self._shingle_mix = rng.integers(1, 2**31, size=self.shingle, dtype=np.uint32) | np.uint32(1)
        self._band_salt = rng.integers(0, 2**63, size=self.bands, dtype=np.uint64)
        self._words = _WordHashes()
        self._runs: list[tuple[np.ndarray, np.ndarray]] = []  # (keys (b, n) sorted per band, ordinals (b, n))
        self._sig_chunks: list[np.ndarray] = []  # (_CHUNK, num_perm) uint16
        self._utt_chunks: list[np.ndarray] = []  # (_CHUNK,) uint64
        # Record ids, UTF-8 back to back: tens of thousands of small long-lived str objects would
        # pin the allocator's arenas (fragmentation), one growing buffer does not.
        self._id_blob = bytearray()
        self._id_ends = array("q")

    def __len__(self) -> int:
        return len(self._id_ends)

    def id_of(self, ordinal: int) -> str:
        start = self._id_ends[ordinal - 1] if ordinal else 0
        return self._id_blob[start : self._id_ends[ordinal]].decode()

    # ---- signatures ----

    def _word_hashes(self, words: Iterable[str], count: int) -> np.ndarray:
        cache = self._words
        if len(cache) > _WORD_CACHE_LIMIT:
            cache.clear()
        # One C-level lookup per word; only new words reach _WordHashes.__missing__.
        return np.fromiter(map(cache.__getitem__, words), dtype=np.uint32, count=count)

    def _shingles(
        self, texts: Sequence[str], words: Sequence[tuple[str, ...]] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(uint32 hash of every word shingle of the batch, shingle count per text)."""
        # the words the degeneracy check already split (punctuation never counts): handed over by
        # the caller, or from the word cache
        tokenised = words if words is not None else [plain_words(t) for t in texts]
        lengths = np.fromiter(map(len, tokenised), dtype=np.int64, count=len(texts))
        w = self._word_hashes(chain.from_iterable(tokenised), int(lengths.sum()))
        k = self.shingle
        counts = np.maximum(lengths - k + 1, 0)
        if len(w) < k:
            return np.empty(0, dtype=np.uint32), counts
        n = len(w) - k + 1
        out = np.zeros(n, dtype=np.uint32)
        for i in range(k):  # uint32 arithmetic wraps: a cheap, order-sensitive combination
            out = out * np.uint32(0x9E3779B1) + w[i : n + i] * self._shingle_mix[i]
        # Keep shingles that start and end inside one text.
        ends = np.cumsum(lengths)
        starts = ends - lengths
        valid = np.zeros(len(w), dtype=bool)
        first = np.repeat(starts, counts)
        offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        valid[first + offsets] = True
        return out[valid[:n]], counts

    def shingle_hashes(self, text: str) -> np.ndarray:
        """uint32 hash of each word ``shingle``-gram of one text (empty when it is shorter)."""
        return self._shingles([text])[0]

    def signatures(
        self, texts: Sequence[str], words: Sequence[tuple[str, ...]] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(signatures (n, num_perm) uint32, has_signature (n,) bool) for a batch of texts.

        ``words``: each text's ``plain_words``, when the caller already has them.
        """
        hashes, counts = self._shingles(texts, words)
        has = counts > 0
        sigs = np.full((len(texts), self.num_perm), np.iinfo(np.uint32).max, dtype=np.uint32)
        hv = _fmix(hashes, 32)
        ends = np.cumsum(counts)
        a, b = self._a[:, None], self._b[:, None]
        rows = np.flatnonzero(has)
        # A few records at a time: their (num_perm, shingles) block stays in the CPU cache, 3x
        # faster than permuting the whole batch's shingles at once.
        for lo in range(0, len(rows), _SIGNATURE_ROWS):
            chunk = rows[lo : lo + _SIGNATURE_ROWS]
            first, last = ends[chunk[0]] - counts[chunk[0]], ends[chunk[-1]]
            phv = np.multiply(a, hv[first:last])  # (num_perm, S), uint32 wraparound as in datasketch
            phv += b
            sigs[chunk] = np.minimum.reduceat(phv, ends[chunk] - counts[chunk] - first, axis=1).T
        return sigs, has

    def _band_keys(self, sigs: np.ndarray) -> np.ndarray:
        """(b, n) uint64 key of each band of each signature."""
        bands = sigs[:, : self.bands * self.rows].astype(np.uint64).reshape(len(sigs), self.bands, self.rows)
        return (bands * self._band_mix).sum(axis=2, dtype=np.uint64).T.copy()

    # ---- index ----

    def _signature(self, ordinal: int) -> np.ndarray:
        return self._sig_chunks[ordinal // _CHUNK][ordinal % _CHUNK]

    def _utterance(self, ordinal: int) -> int:
        return int(self._utt_chunks[ordinal // _CHUNK][ordinal % _CHUNK])

    def _indexed_buckets(self, keys: np.ndarray) -> dict[int, dict[int, list[int]]]:
        """record -> band -> ordinals of the first ``MAX_BUCKET`` indexed records with its key in that band.

        Records (positions in ``keys``, shape (b, n)) whose keys are in no bucket are left out.
        """
        # Searched in key order: sorted queries walk each run forward (3x faster than random
        # order on this VM), and are sorted once for all runs.
        order = np.argsort(keys, axis=1)
        queries = np.take_along_axis(keys, order, axis=1)
        found: dict[int, dict[int, list[int]]] = {}
        for run_keys, run_ords in self._runs:  # oldest first; each run holds equal keys in ordinal order
            for band in range(self.bands):
                left = np.searchsorted(run_keys[band], queries[band], side="left")
                right = np.searchsorted(run_keys[band], queries[band], side="right")
                hits = np.flatnonzero(right > left)
                for q, lo, hi in zip(hits.tolist(), left[hits].tolist(), right[hits].tolist(), strict=True):
                    bucket = found.setdefault(int(order[band, q]), {}).setdefault(band, [])
                    if len(bucket) < MAX_BUCKET:
                        bucket.extend(run_ords[band][lo : min(hi, lo + MAX_BUCKET - len(bucket))].tolist())
        return found

    def _append(self, sig16: np.ndarray, utts: list[int], record_ids: list[str]) -> None:
        """Store signatures and utterance hashes of newly indexed records, chunk by chunk."""
        done = 0
        while done < len(record_ids):
            slot = len(self) % _CHUNK
            if slot == 0:
                self._sig_chunks.append(np.zeros((_CHUNK, self.num_perm), dtype=np.uint16))
                self._utt_chunks.append(np.zeros(_CHUNK, dtype=np.uint64))
            take = min(_CHUNK - slot, len(record_ids) - done)
            self._sig_chunks[-1][slot : slot + take] = sig16[done : done + take]
            self._utt_chunks[-1][slot : slot + take] = utts[done : done + take]
            encoded = list(map(str.encode, record_ids[done : done + take]))
            self._id_ends.extend(islice(accumulate(map(len, encoded), initial=len(self._id_blob)), 1, None))
            self._id_blob += b"".join(encoded)
            done += take

    def _add_run(self, keys: np.ndarray, ordinals: np.ndarray) -> None:
        self._runs.append(_sorted_run([keys], [ordinals]))
        # Merge runs of similar size (an LSM tree): O(log n) runs, O(n log n) total sorting.
        while len(self._runs) > 1 and self._runs[-2][0].shape[1] <= 2 * self._runs[-1][0].shape[1]:
            (k2, o2), (k1, o1) = self._runs.pop(), self._runs.pop()
            self._runs.append(_sorted_run([k1, k2], [o1, o2]))

    def check_batch(
        self,
        texts: Sequence[str],
        record_ids: Sequence[str],
        utterance_ids: Sequence[str],
        eligible: Sequence[bool],
        words: Sequence[tuple[str, ...]] | None = None,
    ) -> list[str | None]:
        """For each record, the id of the earlier record it copies, or None. Eligible originals are indexed.

        ``words``: each text's ``plain_words``, when the caller already has them (verify() keeps the
        batch's, so the word cache need not hold a whole batch).
        """
        sigs, has = self.signatures(texts, words)
        sig16 = (sigs & np.uint32(0xFFFF)).astype(np.uint16)
        keys = self._band_keys(sigs)
        earlier = self._indexed_buckets(keys) if self._runs else {}
        # XOR-ing the band number in makes the keys of different bands distinct, so one dict and
        # one C-level set intersection serve all bands.
        salted = keys ^ self._band_salt[:, None]
        # Only a record with an indexed candidate or a band key shared within the batch can be a
        # copy or be copied here; the others (nearly all) skip the loop's set work.
        suspect = self._shares_key(salted, has)
        if earlier:
            suspect[list(earlier)] = True
        rows = np.flatnonzero(suspect)
        band_keys = dict(zip(rows.tolist(), salted[:, rows].T.tolist(), strict=True))  # Python ints
        utt_hashes = {u: _stable_hash64(u) for u in set(utterance_ids)}  # candidates share their utterance
        utts = [utt_hashes[u] for u in utterance_ids]
        first = len(self)  # ordinal of the first record this batch indexes
        added: list[int] = []  # batch positions of the records indexed, in ordinal order
        in_batch: dict[int, list[int]] = {}  # salted band key -> ordinals of the records indexed with it
        need = self.threshold * self.num_perm
        out: list[str | None] = []
        for i, (ok, check) in enumerate(zip(has.tolist(), suspect.tolist(), strict=True)):
            if not check:  # no candidate, and no later record of the batch shares a key with it
                out.append(None)
                if ok and eligible[i]:
                    added.append(i)
                continue
            row = band_keys[i]
            hits = in_batch.keys() & row
            # A band's candidates are the first MAX_BUCKET records indexed with its key: earlier
            # batches' first, then this batch's. Which records are compared never depends on
            # where batches begin and end.
            buckets = earlier.get(i, {})
            candidates = set(chain.from_iterable(buckets.values()))
            if hits:
                for band, key in enumerate(row):
                    if key in hits:
                        older = len(buckets.get(band, ()))
                        candidates.update(in_batch[key][: MAX_BUCKET - older])
            copied = None
            for ordinal in sorted(candidates):
                if ordinal >= first:  # indexed earlier in this batch
                    j = added[ordinal - first]
                    other_utt, other_sig, other_id = utts[j], sig16[j], record_ids[j]
                else:
                    other_utt, other_sig, other_id = self._utterance(ordinal), self._signature(ordinal), None
                if other_utt != utts[i] and np.count_nonzero(other_sig == sig16[i]) >= need:
                    copied = other_id if other_id is not None else self.id_of(ordinal)
                    break
            out.append(copied)
            if copied is None and eligible[i]:
                ordinal = first + len(added)
                added.append(i)
                for key in row:
                    in_batch.setdefault(key, []).append(ordinal)
        if added:
            self._append(sig16[added], [utts[j] for j in added], [record_ids[j] for j in added])
            ordinals = np.arange(first, first + len(added), dtype=np.int32)
            self._add_run(keys[:, added], np.tile(ordinals, (self.bands, 1)))
        return out

    @staticmethod
    def _shares_key(salted: np.ndarray, has: np.ndarray) -> np.ndarray:
        """(n,) whether a record with a signature has a salted band key equal to another such record's."""
        shares = np.zeros(len(has), dtype=bool)
        rows = np.flatnonzero(has)
        if len(rows) < 2:
            return shares
        flat = salted[:, rows].ravel()  # (bands * m,), band-major
        order = np.argsort(flat)  # any order of equal keys flags them all
        equal = flat[order[1:]] == flat[order[:-1]]
        dup = np.zeros(len(flat), dtype=bool)
        dup[order[1:][equal]] = True
        dup[order[:-1][equal]] = True
        shares[rows] = dup.reshape(salted.shape[0], len(rows)).any(axis=0)
        return shares

    def nbytes(self) -> int:
        """Approximate memory held by the index (arrays and ids)."""
        arrays = sum(k.nbytes + o.nbytes for k, o in self._runs)
        arrays += sum(c.nbytes for c in self._sig_chunks) + sum(c.nbytes for c in self._utt_chunks)
        return arrays + len(self._id_blob) + self._id_ends.itemsize * len(self._id_ends)
