"""First-character dispatch of a regex alternation returns what the whole alternation returns."""

from __future__ import annotations

import random
import re

import pytest

from pipeline.checks.first_char import FirstCharDispatch, first_chars

ALTERNATIVES = [
    ("a0", r"\b(?:loud|louder)\b"),
    ("a1", r"(?:very\s+)?quiet"),  # an optional first word: both first letters
    ("a2", r"\w+ly"),  # a class: tried at every character
    ("a3", r"x?"),  # can match empty: tried at every character
    ("a4", r"[b-d]ab"),
    ("a5", r"lo"),  # after a0: wins only where a0 fails
]


def test_first_characters_of_parsed_patterns():
    assert first_chars(r"\b(?:loud|louder)") == frozenset("l")
    assert first_chars(r"(?:very\s+)?quiet") == frozenset("vq")
    assert first_chars(r"[b-d]ab|e") == frozenset("bcde")
    assert first_chars(r"\w+") is None and first_chars(r"x?") is None and first_chars(r"(?i:a)") is None


def test_dispatch_equals_the_whole_alternation_everywhere():
    whole = re.compile("|".join(f"(?P<{name}>{pattern})" for name, pattern in ALTERNATIVES))
    dispatch = FirstCharDispatch(ALTERNATIVES)
    rng = random.Random(0)
    pieces = ["loud", "louder", "lo", "very ", "quiet", "softly", "bab", "cab", "x", " ", ".", "é"]
    for _ in range(3_000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 6)))
        for pos in range(len(text) + 1):
            a, b = whole.match(text, pos), dispatch.match(text, pos)
            assert (a and (a.lastgroup, a.span())) == (b and (b.lastgroup, b.span())), (text, pos)


def test_case_insensitive_patterns_are_refused():
    with pytest.raises(ValueError, match="case-sensitive"):
        FirstCharDispatch([("a", "x")], flags=re.IGNORECASE)
