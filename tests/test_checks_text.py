"""The fast text paths of the checks equal their straightforward definitions.

plain_words / split_words take a bytes.translate shortcut for ASCII text and
has_words a first-character shortcut; the references below are the regex and str.translate
definitions they replaced. Random strings mix letters, digits, every ASCII punctuation mark,
apostrophes between and around words, control characters that str.split treats as whitespace,
and a few non-ASCII characters (which must take the general path). The clause splitter and the
clause word lists (read by the label, acoustic and leakage checks) are compared the same way.
"""

from __future__ import annotations

import random
import string

from pipeline.checks.text import (
    _CLAUSE_END,
    _NOT_WORDS,
    _PUNCTUATION,
    _PUNCTUATION_TO_SPACE,
    ClauseWords,
    NormText,
    _split_clauses,
    has_words,
    plain_words,
    quote_parts,
    split_words,
    strip_word,
    stripped_words,
)
from pipeline.normalise import normalise
from pipeline.quality import quote_in_transcript

ALPHABET = string.ascii_letters + string.digits + string.punctuation + " \t\n'''___\x1c\x1f\x0b" + "’é—…“ßİ"


def reference_plain_words(text: str) -> tuple[str, ...]:
    return tuple(text.lower().translate(_PUNCTUATION_TO_SPACE).split())


def reference_has_words(text: str) -> bool:
    stripped = text.strip(_NOT_WORDS)
    return bool(stripped) and any(c.isalnum() for c in stripped)


def random_texts(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    texts = ["", " ", "'", "a'b", "He’s LOST it!!", "don't-stop", "x_y", "...", "Ünïcode 'quoted' text"]
    texts += ["".join(rng.choice(ALPHABET) for _ in range(rng.randint(1, 40))) for _ in range(n)]
    return texts


def test_fast_paths_equal_the_reference_definitions():
    for text in random_texts(20_000):
        assert plain_words(text) == reference_plain_words(text), repr(text)
        assert tuple(split_words(text)) == reference_plain_words(text), repr(text)
        assert has_words(text) == reference_has_words(text), repr(text)


def test_split_words_holds_every_stripped_word():
    # The clause prefilters rely on it: no clause is skipped that the exact word pass would read.
    for text in random_texts(20_000, seed=1):
        lowered = text.lower()
        loose = set(split_words(lowered))
        stripped = {w for w in map(strip_word, lowered.split()) if w and not any(c in _PUNCTUATION for c in w)}
        assert stripped <= loose, repr(text)


def test_quote_parts_split_at_ellipses_and_drop_empty_parts():
    assert quote_parts("I bit him ... on the touchy") == ("i bit him", "on the touchy")
    assert quote_parts("Wait… what?") == ("wait", "what")
    assert quote_parts("!!!") == ()
    assert quote_parts("He’s LOST it") == ("hes lost it",)


def reference_clause_words(clause: str) -> list[tuple[int, str]]:
    out, offset = [], 0
    for raw in clause.split(" "):
        word = raw.strip(_PUNCTUATION)
        if word:
            out.append((offset + raw.find(word[0]), word))
        offset += len(raw) + 1
    return out


def test_clause_splitting_equals_the_regex():
    # translate + split unless a spaced dash needs the regex; dashes, odd spaces and every separator
    rng = random.Random(2)
    alphabet = "ab -–—,.;:!?\n\t\u00a0\u2003'\""
    texts = ["a - b", "a -b", "a- b", "well-known", " - ", "-", "a\t-\u00a0b", "x — y – z", "a - - b"]
    texts += ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 16))) for _ in range(50_000)]
    texts += random_texts(5_000, seed=3)
    for text in texts:
        assert _split_clauses(text) == _CLAUSE_END.split(text), repr(text)


def test_clause_words_and_offsets_equal_the_word_by_word_definition():
    for text in random_texts(20_000, seed=4):
        words = ClauseWords(text)
        expected = reference_clause_words(text)
        assert words.words == [w for _, w in expected], repr(text)
        assert [words.offset(i) for i in range(len(expected))] == [o for o, _ in expected], repr(text)
        assert stripped_words(text) == [w for w in map(strip_word, text.split()) if w], repr(text)


def test_one_normaliser_for_the_quote_check_and_the_quotation_rate():
    # A backtick is an apostrophe wherever it is (it was one only in non-ASCII text before).
    assert normalise("He’s LOST it!!") == normalise("he's lost it") == normalise("he`s lost it") == "hes lost it"
    assert normalise("x_y — «z»") == "x y z"
    for quote in ("he`s LOST it", "He’s lost it!", "lost  it"):
        assert NormText.of("Oh, he's lost it.").contains(quote) and quote_in_transcript(quote, "Oh, he's lost it.")
    assert not quote_in_transcript("he is lost", "Oh, he's lost it.")
