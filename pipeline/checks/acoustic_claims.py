"""Acoustic claims: the phrases of a text that say something about the voice.

A rationale's acoustic claims are phrases such as "high-pitched", "speaks quickly", "long
pauses", "a shaky voice"; each maps to one :class:`~pipeline.records.Measure` and a direction
(+1: above the speaker's usual, -1: below). The phrases are the entries of the lexicon
(:mod:`pipeline.checks.acoustic_lexicon`, a data file), tried in its order at each clause word a
claim can start with (a *start word*, read off the lexicon's patterns), so each span is read
once and the earlier entry wins ("pitch range" before "pitch"). A claim within
``NEGATION_WINDOW`` words after a negator ("not loud", "no long pauses", "without shouting",
"less loud") is *negated*: it only says the measure is not high (or not low).

Direction of ``voice_quality``: the profile measures it as the harmonics-to-noise ratio
(pipeline.acoustic.normalise), so +1 is a clearer, more periodic voice and a shaky, breathy,
hoarse or strained voice is -1 ("down" in the lexicon file).

Words are only read as claims with a voice noun nearby ("fast speech", "speaks quickly", not
"quickly became angry"), except a few that are about the voice by themselves ("loud",
"high-pitched", "whispering"); those are not claims in a clause that names another sound and
neither the voice nor a person ("despite the loud music", ``OTHER_SOUNDS``). Double-quoted
transcript words are blanked before scanning. Only clauses holding a start word are scanned, and
only at those words: a claim starts at a whole word ("quietly", not the "quiet" of "quietness");
a hyphenated or apostrophised word is also tried as its first part ("loud-mouthed" as "loud").
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

from pipeline.checks.acoustic_lexicon import load
from pipeline.checks.text import TEXT_CACHE, ClauseWords, clauses, negated, own_words, split_words
from pipeline.records import Measure

NEGATION_WINDOW = 3

LEXICON = load()
_ENTRIES = LEXICON.entries
_STARTS = LEXICON.starts
# The prefilter: a clause is scanned only when it holds one of these words (or a word whose first
# part, before a hyphen or apostrophe, is one).
START_WORDS = LEXICON.start_words
_JOINED = str.maketrans("-'", "  ")
NEGATORS = frozenset({"not", "no", "never", "without", "nor", "hardly", "lacks", "lacking", "less"})  # "less loud"
NEGATING_PAIRS = frozenset({("rather", "than"), ("instead", "of"), ("lack", "of"), ("absence", "of")})
# A voice word used bare ("loud", "high-pitched", "shouting") can describe another sound: "despite
# the loud music", "the dog's bark is high-pitched". In a clause that names another sound and
# neither the voice nor a person, such a phrase is not a claim about the speaker.
_OTHER_SOUNDS_WORDS = """noise noises music song sound sounds bang bangs crash bark barks barking traffic tv
    television radio party alarm siren engine thunder"""
OTHER_SOUNDS = frozenset(_OTHER_SOUNDS_WORDS.split())
_SPEAKER_WORDS = """voice voices tone speaker speakers speaks speaking speak spoke said says talks talking delivery
    she he her his him they them their i me my you we"""
SPEAKER_WORDS = frozenset(_SPEAKER_WORDS.split())
_NAMES_THE_VOICE = re.compile(
    r"voice|tone|speech|speak|spoke|talk|deliver|pace|rate|tempo|volume|intensity|loudness|intonation|prosody"
    r"|melody|phonation|energy|effort|f0"
)


@dataclass(frozen=True, slots=True)
class Claim:
    measure: Measure
    direction: int  # +1 above the speaker's usual, -1 below
    phrase: str
    negated: bool = False


def _about_another_sound(phrase: str, clause_words: list[str]) -> bool:
    """Whether a bare voice word describes another sound the clause names (see OTHER_SOUNDS)."""
    return (
        _NAMES_THE_VOICE.search(phrase) is None
        and not OTHER_SOUNDS.isdisjoint(clause_words)
        and SPEAKER_WORDS.isdisjoint(clause_words)
    )


def _entries_at(word: str) -> tuple[int, ...]:
    """Indices of the entries that can start at a clause word, in priority order."""
    found = _STARTS.get(word, ())
    if "-" in word or "'" in word:  # "loud-mouthed" can start a claim that "loud" starts
        head = word.translate(_JOINED).split(maxsplit=1)[0] if word[0] not in "-'" else ""
        more = _STARTS.get(head, ())
        if more:
            found = tuple(sorted(set(found) | set(more)))
    return found


def _has_start_word(words: Iterable[str]) -> bool:
    """Whether any of ``words`` is, or begins (before a hyphen or apostrophe) with, a start word."""
    if not START_WORDS.isdisjoint(words):
        return True
    return any(_entries_at(w) for w in words if "-" in w or "'" in w)


def _clause_claims(clause: str, words: ClauseWords) -> list[Claim]:
    claims = []
    covered_to = -1
    for i, word in enumerate(words.words):
        entries = _entries_at(word)
        if not entries:
            continue
        offset = words.offset(i)
        if offset < covered_to:
            continue
        for index in entries:
            match = _ENTRIES[index].regex.match(clause, offset)
            if match is not None:
                break
        else:
            continue
        covered_to = match.end()
        if _about_another_sound(match.group(0), words.words):
            continue
        entry = _ENTRIES[index]
        window = words.words[max(0, i - NEGATION_WINDOW) : i]
        claims.append(Claim(entry.measure, entry.direction, match.group(0), negated(window, NEGATORS, NEGATING_PAIRS)))
    return claims


def find_claims(text: str) -> tuple[Claim, ...]:
    """Acoustic claims a text makes in its own words, in order."""
    if not _has_start_word(own_words(text)):  # most texts: no need to look in the cache
        return ()
    return _claims(text)


@lru_cache(maxsize=TEXT_CACHE)
def _claims(text: str) -> tuple[Claim, ...]:
    claims: list[Claim] = []
    for clause in clauses(text):
        if not _has_start_word(split_words(clause)):  # start words are then found word by word
            continue
        claims.extend(_clause_claims(clause, ClauseWords(clause)))
    return tuple(claims)
