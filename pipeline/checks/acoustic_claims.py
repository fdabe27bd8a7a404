"""The lexicon from words about the voice to (measure, direction).

A rationale's acoustic claims are phrases such as "high-pitched", "speaks quickly", "long
pauses", "a shaky voice"; each maps to one :class:`~pipeline.records.Measure` and a direction
(+1: above the speaker's usual, -1: below). The phrases are compiled into one alternation
regex, scanned once per text; more specific phrases come first ("pitch range" before "pitch"),
so each span is read once. A claim within ``NEGATION_WINDOW`` words after a negator ("not
loud", "no long pauses", "without shouting", "less loud") is *negated*: it only says the measure is not
high (or not low).

Direction of ``voice_quality``: the profile measures it as the harmonics-to-noise ratio
(pipeline.acoustic.normalise), so +1 is a clearer, more periodic voice and a shaky, breathy,
hoarse or strained voice is -1 (``VOICE_QUALITY_IRREGULAR``).

Words are only read as claims with a voice noun nearby ("fast speech", "speaks quickly", not
"quickly became angry"), except a few that are about the voice by themselves ("loud",
"high-pitched", "whispering"); those are not claims in a clause that names another sound and
neither the voice nor a person ("despite the loud music", ``OTHER_SOUNDS``). Double-quoted
transcript words are blanked before scanning. Only
clauses holding an ``ANCHORS`` word are matched, and only at the few words before each anchor.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from itertools import compress, count

from pipeline.checks.first_char import FirstCharDispatch
from pipeline.checks.text import TEXT_CACHE, ClauseWords, clauses, negated, own_words, split_words
from pipeline.records import Measure

VOICE_QUALITY_IRREGULAR = -1  # z(voice_quality) is HNR: a shaky/breathy/hoarse voice has it low
NEGATION_WINDOW = 3

_GAP = r"(?:\s+(?!and\b|but\b|while\b|with\b|or\b|though\b)[\w'-]+){0,3}?\s+"  # <= 3 words, same clause
_BE = r"(?:\s+(?:is|was|are|were|seems|sounds|remains|stays|gets|becomes|rises|drops|falls|sits|lies)){0,1}"
UP_WORDS = "high|higher|raised|elevated|heightened|increased|above"
DOWN_WORDS = "low|lower|lowered|reduced|decreased|below"
UP, DOWN = f"(?:{UP_WORDS})", f"(?:{DOWN_WORDS})"
SPEAK = r"(?:speaks|speaking|spoken|speak|talks|talking|talk|says|said|delivers|delivered|delivering|utters|uttered)"
PACE = r"(?:speech rate|speaking rate|rate of speech|speech|pace|tempo|delivery|articulation rate)"
VOICE = r"(?:voice|tone|delivery|vocal quality|voice quality|phonation|quality)"
IRREGULAR = (
    r"(?:shaky|shaking|trembling|tremulous|quivering|quavering|wavering|wobbly|breaking|cracking|cracked|"
    r"strained|tense|tight|harsh|rough|rougher|noisy|noisier|hoarse|raspy|gravelly|creaky|breathy|choked|husky|unsteady)"
)

# (pattern, measure, direction); order matters: earlier alternatives win at the same position.
LEXICON: tuple[tuple[str, Measure, int], ...] = (
    # pitch range before pitch level
    (
        r"(?:wide|wider|broad|large|expanded|varied|dynamic|animated)\s+(?:pitch|f0)\s+(?:range|variation|contour)",
        Measure.pitch_range,
        1,
    ),
    (
        r"(?:narrow|narrower|small|reduced|limited|little|restricted)\s+(?:pitch|f0)\s+(?:range|variation)",
        Measure.pitch_range,
        -1,
    ),
    (r"(?:pitch|f0)\s+(?:range|variation)" + _BE + _GAP + rf"(?:wide|broad|large|{UP_WORDS})", Measure.pitch_range, 1),
    (
        r"(?:pitch|f0)\s+(?:range|variation)" + _BE + _GAP + rf"(?:narrow|small|limited|{DOWN_WORDS})",
        Measure.pitch_range,
        -1,
    ),
    (r"(?:animated|expressive|lively|sing-?song|exaggerated)\s+(?:intonation|melody|prosody)", Measure.pitch_range, 1),
    (
        r"monoton(?:e|ous|ic|ously)|flat\s+(?:intonation|pitch|tone|voice|delivery|prosody|affect)",
        Measure.pitch_range,
        -1,
    ),
    # pitch slope
    (r"(?:rising|upward|rise in)\s+(?:pitch|intonation|inflection|contour|tone|f0)", Measure.pitch_slope, 1),
    (r"(?:pitch|intonation|f0|voice)\s+(?:rises|rising|goes up|climbs|lifts)", Measure.pitch_slope, 1),
    (r"less\s+(?:pitch\s+)?fall", Measure.pitch_slope, 1),
    (
        r"(?:falling|downward|drop in|fall in)\s+(?:pitch|intonation|inflection|contour|tone|f0)",
        Measure.pitch_slope,
        -1,
    ),
    (r"(?:pitch|intonation|f0|voice)\s+(?:falls|falling|drops|dropping|goes down|sinks)", Measure.pitch_slope, -1),
    # pitch level
    (r"high[- ]pitched|(?:high|higher|raised|elevated|heightened|increased)\s+(?:pitch|f0)", Measure.pitch_level, 1),
    (
        r"low[- ]pitched|deep(?:er)?\s+voice|(?:low|lower|lowered|reduced|deep|deeper)\s+(?:pitch|f0)",
        Measure.pitch_level,
        -1,
    ),
    (r"(?:pitch|f0)" + _BE + _GAP + UP, Measure.pitch_level, 1),
    (r"(?:pitch|f0)" + _BE + _GAP + DOWN, Measure.pitch_level, -1),
    # loudness variability before loudness
    (
        r"(?:varying|varied|fluctuating|uneven|changing)\s+(?:loudness|volume|intensity)|(?:loudness|volume|intensity)\s+(?:varies|fluctuates)",
        Measure.loudness_variability,
        1,
    ),
    (r"(?:steady|even|constant|stable|uniform)\s+(?:loudness|volume|intensity)", Measure.loudness_variability, -1),
    # loudness
    (
        r"loud(?:ly|er|est)?\b|raised\s+voice|shout(?:s|ing|ed)?|yell(?:s|ing|ed)?|scream(?:s|ing|ed)?|forceful(?:ly)?",
        Measure.loudness,
        1,
    ),
    (
        r"(?:high|increased|elevated|strong|great)\s+(?:volume|intensity|loudness|vocal energy|vocal effort)",
        Measure.loudness,
        1,
    ),
    (r"(?:volume|intensity|loudness|vocal energy)" + _BE + _GAP + UP, Measure.loudness, 1),
    (
        r"quiet(?:ly|er)?|softer|soft(?:ly)?\s*(?:"
        + SPEAK
        + "|"
        + VOICE
        + r"|spoken)|softly|whisper(?:s|ing|ed|y)?|hushed|murmur(?:s|ing|ed)?",
        Measure.loudness,
        -1,
    ),
    (
        r"(?:low|reduced|decreased|weak|little)\s+(?:volume|intensity|loudness|vocal energy|vocal effort)|subdued\s+"
        + VOICE
        + r"|muted\s+"
        + VOICE,
        Measure.loudness,
        -1,
    ),
    (r"(?:volume|intensity|loudness|vocal energy)" + _BE + _GAP + DOWN, Measure.loudness, -1),
    # speaking rate
    (
        r"(?:fast|faster|rapid|quick|quicker|hurried|rushed|accelerated|brisk|rapid-fire)\s+" + PACE,
        Measure.speaking_rate,
        1,
    ),
    (
        SPEAK + r"(?:\s+(?:very|so|too|rather|quite|really))?\s+(?:fast|quickly|rapidly|hurriedly)",
        Measure.speaking_rate,
        1,
    ),
    (PACE + _BE + _GAP + rf"(?:fast|quick|rapid|hurried|rushed|{UP_WORDS})", Measure.speaking_rate, 1),
    (
        r"(?:slow|slower|slowed|sluggish|unhurried|leisurely|measured|deliberate|drawn[- ]out)\s+" + PACE,
        Measure.speaking_rate,
        -1,
    ),
    (SPEAK + r"(?:\s+(?:very|so|too|rather|quite|really))?\s+slowly|drawl(?:s|ed|ing)?", Measure.speaking_rate, -1),
    (PACE + _BE + _GAP + rf"(?:slow|slower|sluggish|{DOWN_WORDS})", Measure.speaking_rate, -1),
    # pauses ("no pauses" is a negated +1 claim)
    (
        r"(?:long|longer|frequent|many|several|noticeable|extended|lengthy)\s+(?:pauses?|silences?)|paus(?:es|ed|ing)\b|pause\b|halting",
        Measure.pauses,
        1,
    ),
    (r"(?:fluent|fluid|uninterrupted|continuous|unbroken)\s+(?:speech|delivery|flow)", Measure.pauses, -1),
    (r"(?:fewer|few|less|shorter|no)\s+(?:pauses?|pausing|silences?)", Measure.pauses, -1),
    # voice quality
    (IRREGULAR + r"\s+" + VOICE, Measure.voice_quality, VOICE_QUALITY_IRREGULAR),
    (
        r"voice\s+(?:shakes|trembles|quivers|wavers|breaks|cracks|quavers)",
        Measure.voice_quality,
        VOICE_QUALITY_IRREGULAR,
    ),
    (
        r"voice" + _BE + r"(?:\s+(?:very|so|too|rather|quite|slightly|a bit))?\s+" + IRREGULAR,
        Measure.voice_quality,
        VOICE_QUALITY_IRREGULAR,
    ),
    (
        r"(?:clear|clearer|smooth|smoother|steady|steadier|stable|resonant)\s+(?:voice|voice quality|phonation)",
        Measure.voice_quality,
        -VOICE_QUALITY_IRREGULAR,
    ),
)

_CLAIMS = re.compile("|".join(rf"(?P<c{i}>\b(?:{pattern}))" for i, (pattern, _, _) in enumerate(LEXICON)))
# The same alternation, tried only with the entries that can start with the character at the
# position: what _CLAIMS.match returns, ~2x faster (tests/test_checks_acoustic.py compares them).
_CLAIMS_AT = FirstCharDispatch([(f"c{i}", rf"\b(?:{pattern})") for i, (pattern, _, _) in enumerate(LEXICON)])

# Every claim contains one of these words; a clause without one is not scanned. A claim starts
# at most ANCHOR_LOOKBACK words before its anchor ("a very rough or breathy voice": "breathy").
_ANCHORS_WORDS = """pitch pitched high-pitched low-pitched f0 intonation inflection contour tone voice loud louder loudly loudest
    loudness shout shouts shouting shouted yell yells yelling yelled scream screams screaming screamed forceful
    forcefully volume intensity energy effort quiet quietly quieter soft softly softer whisper whispers whispering
    whispered whispery hushed murmur murmurs murmuring murmured speech pace tempo delivery rate articulation speaks
    speaking spoken speak talks talking talk says said delivers delivered delivering utters uttered drawl drawls
    drawled drawling pause pauses paused pausing silence silences halting monotone monotonous monotonic monotonously
    prosody melody phonation quality fall"""
ANCHORS = frozenset(_ANCHORS_WORDS.split())
ANCHOR_LOOKBACK = 2
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


def _clause_claims(clause: str, words: ClauseWords, anchors: list[int]) -> list[Claim]:
    claims = []
    tried: set[int] = set()
    covered_to = -1
    for a in anchors:
        for i in range(max(0, a - ANCHOR_LOOKBACK), a + 1):
            offset = words.offset(i)
            if i in tried or offset < covered_to:
                continue
            tried.add(i)
            match = _CLAIMS_AT.match(clause, offset)
            if match is None:
                continue
            covered_to = match.end()
            if _about_another_sound(match.group(0), words.words):
                break
            _, measure, direction = LEXICON[int(match.lastgroup[1:])]
            window = words.words[max(0, i - NEGATION_WINDOW) : i]
            claims.append(Claim(measure, direction, match.group(0), negated(window, NEGATORS, NEGATING_PAIRS)))
            break
    return claims


def find_claims(text: str) -> tuple[Claim, ...]:
    """Acoustic claims a text makes in its own words, in order."""
    if ANCHORS.isdisjoint(own_words(text)):  # most texts: no need to look in the cache
        return ()
    return _claims(text)


@lru_cache(maxsize=TEXT_CACHE)
def _claims(text: str) -> tuple[Claim, ...]:
    claims: list[Claim] = []
    for clause in clauses(text):
        if ANCHORS.isdisjoint(split_words(clause)):  # anchors are then found word by word
            continue
        words = ClauseWords(clause)
        anchors = list(compress(count(), map(ANCHORS.__contains__, words.words)))
        if anchors:
            claims.extend(_clause_claims(clause, words, anchors))
    return tuple(claims)
