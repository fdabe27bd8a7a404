"""The acoustic claim lexicon, read from ``acoustic_lexicon.yaml`` (shipped with the package).

Each entry maps a phrase pattern to a (:class:`~pipeline.records.Measure`, direction); the file's
header says how patterns are written. The words a claim can start with (its *start words*) are
read off each pattern's beginning, so the prefilter of :mod:`pipeline.checks.acoustic_claims`
(which clause words are worth a regex) is derived from the data and cannot disagree with it.
A pattern whose start cannot be read that way is an error naming the file and line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

import yaml

from pipeline.records import Measure

LEXICON_FILE = "acoustic_lexicon.yaml"
DIRECTIONS = {"up": 1, "down": -1}
_REFERENCE = re.compile(r"\{([a-z_]+)\}")
# A literal start word: letters, digits, apostrophes and hyphens, optionally joined to the next
# word by "[- ]" (hyphen or space) or by a space inside a group alternative ("rise in").
_LITERAL = re.compile(r"([\w'-]+)(?:\[- \]([\w'-]+))?")
_LITERAL_ALTERNATIVE = re.compile(r"[\w'-]+(?:(?:\[- \]| )[\w'-]+)*")
# What may follow a top-level literal start word: the end, an escape (\s, \b), a "[- ]" join or a
# {reference}. Anything else (a quantifier, a group) could change which word the claim starts with.
_AFTER_LITERAL = re.compile(r"$|\\|\[- \]|\{[a-z_]+\}")


class LexiconError(ValueError):
    """The lexicon file is malformed; the message names the file and line."""


@dataclass(frozen=True)
class LexiconEntry:
    measure: Measure
    direction: int  # +1 above the speaker's usual, -1 below
    pattern: str  # with {references} expanded
    regex: re.Pattern[str]  # the pattern from a word start
    start_words: frozenset[str]  # clause words a match can begin at
    examples: tuple[str, ...]
    line: int  # in the lexicon file, for messages


@dataclass(frozen=True)
class Lexicon:
    entries: tuple[LexiconEntry, ...]  # in priority order
    # clause word -> indices of the entries that can start there, in priority order
    starts: dict[str, tuple[int, ...]]

    @property
    def start_words(self) -> frozenset[str]:
        """Every word a claim can start at: the prefilter."""
        return frozenset(self.starts)


def _literal_keys(alternative: str) -> set[str]:
    """The clause words a literal alternative begins with: "high[- ]pitched" -> high-pitched, high."""
    m = _LITERAL.match(alternative)
    assert m is not None  # callers validated the alternative
    keys = {m[1]}
    if m[2]:
        keys.add(f"{m[1]}-{m[2]}")
    return keys


def _start_words(pattern: str, words: dict[str, list[str]], where: str) -> set[str]:
    """The words a match of ``pattern`` (unexpanded) begins with (see the file's header)."""

    def alternative_keys(alternative: str) -> set[str]:
        ref = re.fullmatch(r"\{([a-z_]+)\}", alternative)
        if ref:
            if ref[1] not in words:
                raise LexiconError(f"{where}: the pattern starts with {{{ref[1]}}}, which is not a word list")
            return set().union(*(alternative_keys(w) for w in words[ref[1]]))
        if not _LITERAL_ALTERNATIVE.fullmatch(alternative):
            raise LexiconError(
                f"{where}: start alternative {alternative!r} is not a literal word: spell every form out "
                "(loud|loudly, not loud(?:ly)?)"
            )
        return _literal_keys(alternative)

    if pattern.startswith("(?:"):
        end = pattern.find(")")
        if end < 0 or "(" in pattern[3:end]:
            raise LexiconError(f"{where}: the pattern's first group must be flat: (?:word|word|{{list}})")
        return set().union(*(alternative_keys(a) for a in pattern[3:end].split("|")))
    ref = re.match(r"\{([a-z_]+)\}", pattern)
    if ref:
        return alternative_keys(ref[0])
    m = _LITERAL.match(pattern)
    if m is None or not _AFTER_LITERAL.match(pattern, m.end()):
        raise LexiconError(f"{where}: the pattern must begin with a literal word, a {{word list}} or a flat group")
    return _literal_keys(m[0])


def _expand(pattern: str, words: dict[str, list[str]], fragments: dict[str, str], where: str) -> str:
    def replace(m: re.Match[str]) -> str:
        name = m[1]
        if name in words:
            return "(?:" + "|".join(_expand(w, words, fragments, where) for w in words[name]) + ")"
        if name in fragments:
            return fragments[name]
        raise LexiconError(f"{where}: unknown reference {{{name}}}")

    return _REFERENCE.sub(replace, pattern)


def parse(text: str, source: str) -> Lexicon:
    """The lexicon in ``text`` (YAML); ``source`` names it in errors."""
    try:
        root = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise LexiconError(f"{source}: not valid YAML: {e}") from e
    if not isinstance(data, dict) or not isinstance(data.get("claims"), list):
        raise LexiconError(f"{source}: expected a mapping with a 'claims' list")
    words = {str(k): [str(w) for w in v] for k, v in (data.get("words") or {}).items()}
    fragments = {str(k): str(v) for k, v in (data.get("fragments") or {}).items()}
    claims_node = next(v for k, v in root.value if k.value == "claims")
    entries: list[LexiconEntry] = []
    starts: dict[str, list[int]] = {}
    for index, (item, node) in enumerate(zip(data["claims"], claims_node.value, strict=True)):
        line = node.start_mark.line + 1
        where = f"{source}:{line}"
        if not isinstance(item, dict) or set(item) != {"measure", "direction", "pattern", "examples"}:
            raise LexiconError(f"{where}: an entry has exactly measure, direction, pattern and examples")
        try:
            measure = Measure(item["measure"])
        except ValueError:
            raise LexiconError(f"{where}: unknown measure {item['measure']!r}") from None
        if item["direction"] not in DIRECTIONS:
            raise LexiconError(f"{where}: direction must be up or down, not {item['direction']!r}")
        examples = item["examples"]
        if not isinstance(examples, list) or not examples:
            raise LexiconError(f"{where}: give at least one example phrase")
        pattern = str(item["pattern"])
        start_words = _start_words(pattern, words, where)
        expanded = _expand(pattern, words, fragments, where)
        try:
            regex = re.compile(rf"\b(?:{expanded})")
        except re.error as e:
            raise LexiconError(f"{where}: the pattern is not a valid regex: {e}") from e
        entries.append(
            LexiconEntry(
                measure, DIRECTIONS[item["direction"]], expanded, regex, frozenset(start_words),
                tuple(map(str, examples)), line,
            )
        )  # fmt: skip
        for word in start_words:
            starts.setdefault(word, []).append(index)
    return Lexicon(tuple(entries), {word: tuple(indices) for word, indices in starts.items()})


def load(path: str | Path | None = None) -> Lexicon:
    """The lexicon at ``path``, by default the one shipped with the package."""
    if path is None:
        return _packaged()
    return parse(Path(path).read_text(encoding="utf-8"), str(path))


@cache
def _packaged() -> Lexicon:
    source = resources.files("pipeline.checks").joinpath(LEXICON_FILE)
    return parse(source.read_text(encoding="utf-8"), f"pipeline/checks/{LEXICON_FILE}")
