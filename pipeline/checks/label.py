"""Label: the rationale concludes the gold emotion and does not argue for another one.

The gold label of the record must still be the dataset's (a stale generation fails). The
concluded ``emotion`` is read through the synonym table and the protocol's merge
(``furious`` -> angry; ``excited`` -> happy under iemocap4); a multi-word answer ("mild
anger") counts when exactly one emotion word is in it. It must equal the gold label.

The reasoning is then scanned for emotion words in its own voice (double-quoted transcript
words are skipped) that are not negated ("not angry", "rather than sad", "no sign of fear":
a negator within ``NEGATION_WINDOW`` words before, in the same clause). Words the protocol excludes are ignored (a 7-class
MELD rationale may say "frustrated" about an angry speaker). Words too ambiguous to read as an
emotion in free text (``AMBIGUOUS_IN_REASONING``: "the content of", "upset") are ignored, and
"calm" ("calm on the surface") never argues against the gold label but supports gold calm: a
calm clip's rationale says it. The reasoning argues for a
different emotion, and fails, when another label is asserted and either (a) it is asserted
more often than the gold label, or (b) it is the last emotion the reasoning asserts (its
conclusion).
"""

from __future__ import annotations

import re
from collections import Counter
from functools import lru_cache
from itertools import compress, count

from pipeline.checks.base import CheckInput, clip, failed, passed
from pipeline.checks.text import TEXT_CACHE, clauses, negated, own_words, split_words, stripped_words
from pipeline.labels import PROTOCOLS, SYNONYMS, Emotion, Protocol, emotion_from_word, protocol
from pipeline.records import CheckResult, GenerationRecord

NAME = "label"
CONCLUDED_CACHE = 4096  # distinct concluded words ("angry", "mild anger") seen in a corpus are few
NEGATION_WINDOW = 3  # words: "not at all angry", "no sign of anger"
NEGATORS = frozenset({"not", "no", "never", "without", "nor", "neither", "nothing", "hardly", "isn't", "wasn't"})
NEGATING_PAIRS = frozenset({("rather", "than"), ("instead", "of"), ("lack", "of"), ("absence", "of"), ("far", "from")})
# Synonyms too ambiguous to read as an emotion in free text ("the content of", "upset" is sad or angry).
AMBIGUOUS_IN_REASONING = frozenset({"content", "upset", "mad", "calm", "calmness"})
GOLD_ONLY = frozenset({"calm", "calmness"})  # of those, the words that still count for the gold label

_FIRST_WORDS = frozenset(w.split()[0] for w in SYNONYMS)  # "grossed out" starts with "grossed"
_EMOTION_WORD = re.compile(
    r"\b(" + "|".join(re.escape(w) for w in sorted(SYNONYMS, key=len, reverse=True)) + r")\b", re.IGNORECASE
)


def concluded_emotion(word: str, proto: Protocol) -> Emotion | None:
    """The concluded emotion under ``proto``, or None when it is not (exactly) one emotion."""
    if PROTOCOLS.get(proto.name) is proto:  # a registered protocol: cached by name (a few words recur)
        return _concluded(word, proto.name)
    return _read_concluded(word, proto)


@lru_cache(maxsize=CONCLUDED_CACHE)
def _concluded(word: str, proto_name: str) -> Emotion | None:
    return _read_concluded(word, PROTOCOLS[proto_name])


def _read_concluded(word: str, proto: Protocol) -> Emotion | None:
    found = emotion_from_word(word, proto)
    if found is not None:
        return found
    hits = {emotion_from_word(m.group(1), proto) for m in _EMOTION_WORD.finditer(word)} - {None}
    return hits.pop() if len(hits) == 1 else None


def gold_emotion(record: GenerationRecord, proto: Protocol) -> Emotion:
    return proto.apply(record.emotion) or record.emotion


def asserted_emotions(reasoning: str, proto: Protocol, gold: Emotion | None = None) -> tuple[Emotion, ...]:
    """Emotions the reasoning asserts in its own words, in order (see module doc); a ``GOLD_ONLY``
    word counts only when it names ``gold``."""
    if _FIRST_WORDS.isdisjoint(own_words(reasoning)):  # most texts: no need to look in the cache
        return ()
    return tuple(emotion for emotion, gold_only in _asserted(reasoning, proto.name) if not gold_only or emotion == gold)


@lru_cache(maxsize=TEXT_CACHE)
def _asserted(reasoning: str, proto_name: str) -> tuple[tuple[Emotion, bool], ...]:
    """(emotion, whether it counts only for the gold label) of each assertion."""
    proto = protocol(proto_name)  # Protocol holds a dict, so it is not hashable: cache by name
    found = []
    for clause in clauses(reasoning):
        if _FIRST_WORDS.isdisjoint(split_words(clause)):  # a superset of the words below: a C-speed filter
            continue
        words = stripped_words(clause)
        if _FIRST_WORDS.isdisjoint(words):
            continue
        for i in compress(count(), map(_FIRST_WORDS.__contains__, words)):  # the emotion words' positions
            word = words[i]
            pair = f"{word} {words[i + 1]}" if i + 1 < len(words) else ""
            name = pair if pair in SYNONYMS else word if word in SYNONYMS else None
            if name is None or (name in AMBIGUOUS_IN_REASONING and name not in GOLD_ONLY):
                continue
            if negated(words[max(0, i - NEGATION_WINDOW) : i], NEGATORS, NEGATING_PAIRS):
                continue
            emotion = emotion_from_word(name, proto)
            if emotion is not None:
                found.append((emotion, name in GOLD_ONLY))
    return tuple(found)


def check_label(record: GenerationRecord, evidence: CheckInput) -> CheckResult:
    answer = record.answer
    if answer is None:
        return failed(NAME, "no answer")
    proto = evidence.protocol
    gold = gold_emotion(record, proto)
    if evidence.utterance is not None and evidence.utterance.emotion != record.emotion:
        return failed(
            NAME, f"record's gold {record.emotion.value} differs from the dataset's {evidence.utterance.emotion.value}"
        )
    concluded = concluded_emotion(answer.emotion, proto)
    if concluded is None:
        return failed(NAME, f"concluded {clip(answer.emotion)!r} is not a {proto.name} label (gold {gold.value})")
    if concluded != gold:
        return failed(NAME, f"concluded {concluded.value} but gold is {gold.value}")
    asserted = asserted_emotions(answer.reasoning, proto, gold)
    others = Counter(e for e in asserted if e != gold) if asserted else None
    if others:
        other, count = others.most_common(1)[0]
        gold_count = len(asserted) - sum(others.values())
        if count > gold_count:
            return failed(NAME, f"reasoning argues for {other.value} ({count}x) over gold {gold.value} ({gold_count}x)")
        if asserted[-1] != gold:
            return failed(NAME, f"reasoning concludes {asserted[-1].value} but gold is {gold.value}")
    return passed(NAME)
