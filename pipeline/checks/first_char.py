"""Dispatch of a regex alternation on the first character of the text at the match position.

Python's regex engine tries every alternative of an alternation in turn, at ~4 µs per attempt for
the acoustic lexicon on this VM, although at a given position only the alternatives that can start
with the character there can match. :class:`FirstCharDispatch` compiles, for each possible first
character, the alternation of just those alternatives, in their original order and with their
group names, so ``match`` returns what the whole alternation's ``match`` returns (the first
alternative that matches wins in both). An alternative whose first character cannot be read off
its parsed form (a class like ``\\w``, an empty match) is kept for every character.
"""

from __future__ import annotations

import re

try:  # the parser and its opcodes: the public re module does not expose them
    from re import _constants as sre
    from re import _parser as sre_parse
except ImportError:  # Python 3.10
    import sre_constants as sre  # type: ignore[no-redef]
    import sre_parse  # type: ignore[no-redef]

_ZERO_WIDTH = (sre.AT,)  # \b, ^ and $ consume nothing
_REPEATS = (sre.MAX_REPEAT, sre.MIN_REPEAT, getattr(sre, "POSSESSIVE_REPEAT", sre.MAX_REPEAT))
_MAX_RANGE = 256  # a literal range wider than this is treated as "any character"


def first_chars(pattern: str) -> frozenset[str] | None:
    """The characters a match of ``pattern`` can start with, or None when it can start with any
    (or match the empty string). Conservative: None whenever the parsed form is not understood."""
    try:
        chars, nullable = _first(list(sre_parse.parse(pattern)))
    except (TypeError, ValueError, AttributeError):  # a construct this reader does not know
        return None
    return None if chars is None or nullable else frozenset(chars)


def _first(items: list) -> tuple[set[str] | None, bool]:
    """(first characters, whether the sequence can match empty) of parsed items."""
    out: set[str] = set()
    for op, av in items:
        chars, nullable = _first_item(op, av)
        if chars is None:
            return None, False
        out |= chars
        if not nullable:
            return out, False
    return out, True


def _first_item(op: object, av: object) -> tuple[set[str] | None, bool]:
    if op is sre.LITERAL:
        return {chr(av)}, False
    if op is sre.IN:
        chars: set[str] = set()
        for kind, value in av:
            if kind is sre.LITERAL:
                chars.add(chr(value))
            elif kind is sre.RANGE and value[1] - value[0] <= _MAX_RANGE:
                chars.update(map(chr, range(value[0], value[1] + 1)))
            else:  # NEGATE, CATEGORY (\w, \s ...), a wide range
                return None, False
        return chars, False
    if op in _ZERO_WIDTH:
        return set(), True
    if op is sre.SUBPATTERN:
        _group, add_flags, del_flags, body = av
        if add_flags or del_flags:  # (?i:...) and the like change what a literal matches
            return None, False
        return _first(list(body))
    if op is sre.BRANCH:
        out: set[str] = set()
        nullable = False
        for branch in av[1]:
            chars, empty = _first(list(branch))
            if chars is None:
                return None, False
            out |= chars
            nullable |= empty
        return out, nullable
    if op in _REPEATS:
        low, _high, body = av
        chars, empty = _first(list(body))
        return chars, empty or low == 0
    return None, False  # ANY, NOT_LITERAL, CATEGORY, GROUPREF, lookarounds: anything may follow


class FirstCharDispatch:
    """``match(text, pos)`` of ``"|".join(f"(?P<{name}>{alternative})" ...)``, tried only with the
    alternatives that can start with ``text[pos]``."""

    def __init__(self, alternatives: list[tuple[str, str]], flags: int = 0):
        if flags & re.IGNORECASE:
            raise ValueError("first-character dispatch needs case-sensitive patterns (lowercase the text)")
        firsts = [first_chars(pattern) for _, pattern in alternatives]
        self._any = [i for i, chars in enumerate(firsts) if chars is None]

        def compiled(indices: list[int]) -> re.Pattern[str] | None:
            if not indices:
                return None
            return re.compile("|".join(f"(?P<{alternatives[i][0]}>{alternatives[i][1]})" for i in indices), flags)

        by_char: dict[str, re.Pattern[str] | None] = {}
        for char in sorted(set().union(*(chars for chars in firsts if chars is not None))):
            by_char[char] = compiled([i for i, chars in enumerate(firsts) if chars is None or char in chars])
        self._by_char = by_char
        self._other = compiled(self._any)

    def match(self, text: str, pos: int = 0) -> re.Match[str] | None:
        pattern = self._by_char.get(text[pos : pos + 1], self._other)
        return pattern.match(text, pos) if pattern is not None else None
