"""Text shared by the checks: quotes matched against a transcript, words and clauses of free text.

A quote is compared with the transcript as word content (:func:`pipeline.normalise.normalise`:
case, punctuation and whitespace never make a quote unfaithful), on word boundaries.

Fuzzy tolerance for a teacher's typos: when the exact match fails, the quote is aligned with
windows of transcript tokens of the quote's length ±1, and passes if the character
similarity (difflib's ratio, 2·matches / total length) of some window reaches the threshold
(0.9 by default: one wrong letter in ten). Windows are only tried when at least half of the
quote's words occur in the transcript as they are: a typo leaves most words intact, an
invented quote does not (and the alignment, ~5 ms per quote here, is then skipped). A quote of fewer than ``MIN_FUZZY_CHARS`` characters
must match exactly, since one letter in a short word changes the word ("mad" vs "sad").
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Sequence
from difflib import SequenceMatcher
from functools import lru_cache
from itertools import accumulate, compress, count, pairwise, repeat
from typing import TYPE_CHECKING

from pipeline.normalise import QUOTE_CHARS, normalise

if TYPE_CHECKING:
    from pipeline.rationale import RationaleAnswer

# A quote may elide part of the turn: "I bit him ... on the touchy" is two quotes.
_ELLIPSIS = re.compile(r"\.\s*\.\s*\.|…|\[\.\.\.\]")
# Spans between double quotes: quoted transcript words are not the rationale's own claims.
_QUOTED_SPAN = re.compile(r'"[^"\n]{0,400}"|“[^”\n]{0,400}”|«[^»\n]{0,400}»')
# Free texts read by several checks (the reasoning) are split once and cached. The checks of one
# record run back to back, so a few hundred texts suffice; larger caches of sets and tuples cost
# more in garbage-collector scans and memory than they save (a reasoning's words are ~3 KB).
# verify() keeps its batch's reasoning words for the near-duplicate index itself.
TEXT_CACHE = 256
WORDS_CACHE = 1024
MIN_FUZZY_CHARS = 12  # shorter quotes must match exactly: one letter changes a short word
WINDOW_SLACK = 1  # a typo can merge or split one word
MIN_EXACT_WORD_SHARE = 0.5  # fuzzy matching is tried only when half the quote's words occur exactly
MIN_CONTENT_WORD_CHARS = 4  # words this long count towards that share; shorter ones are function words


def _ascii_table(keep: Callable[[str], bool]) -> bytes:
    """A bytes.translate table: ASCII letters lowercased, characters ``keep`` rejects made spaces."""
    return bytes(ord(c.lower()) if keep(c) else ord(" ") for c in map(chr, range(128))) + bytes(range(128, 256))


def quote_parts(quote: str) -> tuple[str, ...]:
    """The normalised, non-empty ellipsis-separated parts of a quote."""
    if "." not in quote and "…" not in quote:
        part = normalise(quote)
        return (part,) if part else ()
    return tuple(p for p in map(normalise, _ELLIPSIS.split(quote)) if p)


class NormText:
    """A normalised text: the space-padded string used for word-boundary search, and its tokens."""

    __slots__ = ("_tokens", "padded")

    def __init__(self, padded: str):
        self.padded = padded
        self._tokens: tuple[str, ...] | None = None

    @classmethod
    def of(cls, text: str) -> NormText:
        return cls(f" {normalise(text)} ")

    @property
    def tokens(self) -> tuple[str, ...]:
        """Split on first use: only fuzzy matching reads them (an exact quote is a substring test)."""
        if self._tokens is None:
            self._tokens = tuple(self.padded.split())
        return self._tokens

    def contains(self, quote: str, similarity: float = 1.0) -> bool:
        """Whether every ellipsis-separated part of ``quote`` occurs here (see module doc)."""
        return self.contains_parts(quote_parts(quote), similarity)

    def contains_parts(self, parts: tuple[str, ...], similarity: float = 1.0) -> bool:
        """``contains`` for a quote already split by :func:`quote_parts` (one quote, many texts)."""
        if len(parts) == 1:  # the common case, without a generator
            return self._contains_part(parts[0], similarity)
        return bool(parts) and all(self._contains_part(p, similarity) for p in parts)

    def _contains_part(self, part: str, similarity: float) -> bool:
        if f" {part} " in self.padded:
            return True
        if similarity >= 1.0 or len(part) < MIN_FUZZY_CHARS:
            return False
        # A quote whose words are mostly not in the transcript is invented, not mistyped: at a
        # similarity of 0.9 at most one character in ten differs, so most words survive intact.
        # Short function words ("I", "the") are everywhere and prove nothing: content words count.
        words = [w for w in part.split() if len(w) >= MIN_CONTENT_WORD_CHARS] or part.split()
        if sum(map(self.vocabulary.__contains__, words)) < MIN_EXACT_WORD_SHARE * len(words):
            return False
        return self.best_similarity(part) >= similarity

    @property
    def vocabulary(self) -> frozenset[str]:
        return _vocabulary(self.tokens)

    def best_similarity(self, part: str) -> float:
        """Best character similarity of ``part`` to a window of transcript tokens.

        Windows are anchored on the quote's exactly matching words: a word at quote position j
        found at transcript position p puts the window start at p - j (±1 for a merged or split
        word), so only a handful of windows are aligned instead of every one.
        """
        words = part.split()
        n = len(words)
        starts = {
            start
            for j, word in enumerate(words)
            for p in _positions(self.tokens).get(word, ())
            for start in range(p - j - WINDOW_SLACK, p - j + WINDOW_SLACK + 1)
            if 0 <= start < len(self.tokens)
        }
        best = 0.0
        matcher = SequenceMatcher(autojunk=False)
        matcher.set_seq2(part)  # SequenceMatcher caches information about seq2
        for start in sorted(starts):
            for size in range(max(1, n - WINDOW_SLACK), n + WINDOW_SLACK + 1):
                matcher.set_seq1(" ".join(self.tokens[start : start + size]))
                if matcher.real_quick_ratio() > best and matcher.quick_ratio() > best:
                    best = max(best, matcher.ratio())
        return best


@lru_cache(maxsize=4096)
def _positions(tokens: tuple[str, ...]) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for i, token in enumerate(tokens):
        out.setdefault(token, []).append(i)
    return out


@lru_cache(maxsize=4096)
def _vocabulary(tokens: tuple[str, ...]) -> frozenset[str]:
    return frozenset(tokens)


_NOT_WORDS = string.punctuation + string.whitespace + "“”‘’«»—–…"


def has_words(text: str) -> bool:
    """At least one letter or digit: what is left after stripping punctuation and spaces (C speed)."""
    if text[:1].isalnum():  # the common case: the strip below would keep this first character
        return True
    stripped = text.strip(_NOT_WORDS)
    return bool(stripped) and (stripped[0].isalnum() or any(c.isalnum() for c in stripped))


@lru_cache(maxsize=TEXT_CACHE)
def unquoted(text: str) -> str:
    """The text with double-quoted spans blanked: what the rationale says in its own words."""
    if text.isascii() and '"' not in text:
        return text  # nothing quoted
    text = text.translate(QUOTE_CHARS)
    return _QUOTED_SPAN.sub(" ", text) if '"' in text else text


_PUNCTUATION = string.punctuation.replace("'", "").replace("-", "") + "“”‘’«»—–…"
_CLAUSE_END = re.compile(r"[,.;:!?\n]|\s-\s|—|–")


# Without a spaced dash, _CLAUSE_END is a set of single characters: splitting at them is one
# translate and one str.split (~10x faster than the regex engine walking every position).
_CLAUSE_CHARS = str.maketrans(dict.fromkeys(",.;:!?—–", "\n"))


def _has_spaced_dash(text: str) -> bool:
    r"""Whether ``\s-\s`` occurs in the text (str.isspace is what the regex's \s tests)."""
    i = text.find("-", 1)
    while i != -1 and i < len(text) - 1:
        if text[i - 1].isspace() and text[i + 1].isspace():
            return True
        i = text.find("-", i + 1)
    return False


def _split_clauses(text: str) -> list[str]:
    """``_CLAUSE_END.split(text)``."""
    if _has_spaced_dash(text):
        return _CLAUSE_END.split(text)
    return text.translate(_CLAUSE_CHARS).split("\n")


@lru_cache(maxsize=TEXT_CACHE)
def clauses(text: str) -> tuple[str, ...]:
    """The lowercased clauses of a text in its own words (quotes blanked), split at punctuation.

    The checks that read free text (label, acoustic claims, leakage) work clause by clause:
    negation does not cross a clause ("not loud, but angry"), and a cheap word-set test picks
    the few clauses worth a regex (Python's regex engine tries every alternative at every
    position, ~8 µs per character for the claim lexicon on this VM).
    """
    return tuple(c for c in _split_clauses(unquoted(text).lower()) if c and not c.isspace())


def strip_word(word: str) -> str:
    return word.strip(_PUNCTUATION)


def stripped_words(text: str) -> list[str]:
    """``[w for w in map(strip_word, text.split()) if w]``, in C (no Python call per word)."""
    return list(filter(None, map(str.strip, text.split(), repeat(_PUNCTUATION))))


@lru_cache(maxsize=TEXT_CACHE)
def own_words(text: str) -> frozenset[str]:
    """The set of lowercased words a text uses in its own voice (quotes blanked): a cheap prefilter."""
    return frozenset(plain_words(unquoted(text)))


_PUNCTUATION_TO_SPACE = str.maketrans(dict.fromkeys(_PUNCTUATION, " "))
_ASCII_PLAIN = _ascii_table(lambda c: c not in _PUNCTUATION)


def split_words(text: str) -> list[str]:
    """Lowercased words of a text, punctuation (but apostrophes and hyphens) made space, quotes included.

    One ``translate`` + ``split`` in C: several times faster than stripping word by word. Every
    word that :func:`strip_word` leaves of a whitespace-separated token is one of these (the
    punctuation it strips becomes a space here), so "no anchor word among split_words(clause)"
    safely rules a clause out before the exact, slower word-by-word pass.
    """
    if text.isascii():
        return text.encode().translate(_ASCII_PLAIN).decode().split()
    return text.lower().translate(_PUNCTUATION_TO_SPACE).split()


@lru_cache(maxsize=WORDS_CACHE)
def plain_words(text: str) -> tuple[str, ...]:
    """:func:`split_words`, cached: every free-text check reads the reasoning through this cache."""
    return tuple(split_words(text))


class ClauseWords:
    """The words of a clause split at single spaces and stripped of punctuation, with offsets on demand.

    ``words[i]`` is the i-th non-empty word; ``offset(i)`` the character offset of its first letter
    in the clause. Splitting and stripping run in C; the offsets, which only the few words near an
    anchor need, are computed when asked for.
    """

    __slots__ = ("_prefix", "_raws", "_stripped", "_where", "words")

    def __init__(self, clause: str):
        self._raws = clause.split(" ")
        self._stripped = list(map(str.strip, self._raws, repeat(_PUNCTUATION)))
        self.words = list(filter(None, self._stripped))
        self._where: list[int] | None = None  # index in _raws of each word
        self._prefix: list[int] = []

    def offset(self, i: int) -> int:
        if self._where is None:
            self._where = list(compress(count(), self._stripped))
            self._prefix = list(accumulate(map(len, self._raws), initial=0))
        k = self._where[i]
        return self._prefix[k] + k + self._raws[k].find(self.words[i][0])  # k spaces before raw k


def negated(window: Sequence[str], negators: frozenset[str], pairs: frozenset[tuple[str, str]]) -> bool:
    """Whether the words just before a word (its negation window) negate it: a negator, an "n't"
    word, or a negating pair ("rather than"). The label and the acoustic claims each pass their own."""
    if any(w in negators or w.endswith("n't") for w in window):
        return True
    return any(pair in pairs for pair in pairwise(window))


def suggests_text(answer: RationaleAnswer) -> str:
    """The evidence items' ``suggests`` texts one per line (no clause or phrase spans two fields)."""
    return "\n".join([item.suggests for item in answer.evidence])
