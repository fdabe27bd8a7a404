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
from enum import StrEnum

from pipeline.checks.base import CheckInput, clip, failed, passed
from pipeline.checks.text import clauses, negated, stripped_words
from pipeline.labels import SYNONYMS, Emotion, Protocol, emotion_from_word
from pipeline.records import GenerationRecord
from pipeline.verdict import CheckName, CheckResult

NAME = CheckName.label
NEGATION_WINDOW = 3  # words: "not at all angry", "no sign of anger"
NEGATORS = frozenset({"not", "no", "never", "without", "nor", "neither", "nothing", "hardly", "isn't", "wasn't"})
NEGATING_PAIRS = frozenset({("rather", "than"), ("instead", "of"), ("lack", "of"), ("absence", "of"), ("far", "from")})
# Synonyms too ambiguous to read as an emotion in free text ("the content of", "upset" is sad or angry).
AMBIGUOUS_IN_REASONING = frozenset({"content", "upset", "mad", "calm", "calmness"})
GOLD_ONLY = frozenset({"calm", "calmness"})  # of those, the words that still count for the gold label

_EMOTION_WORD = re.compile(
    r"\b(" + "|".join(re.escape(w) for w in sorted(SYNONYMS, key=len, reverse=True)) + r")\b", re.IGNORECASE
)


class Code(StrEnum):
    no_answer = "no_answer"  # nothing parsed to conclude anything
    stale_gold = "stale_gold"  # the record's gold label is no longer the dataset's
    not_a_label = "not_a_label"  # the concluded word is not (exactly) one label of the protocol
    wrong_label = "wrong_label"  # concludes another label than gold
    argues_other = "argues_other"  # the reasoning asserts another emotion more often than gold
    concludes_other = "concludes_other"  # the last emotion the reasoning asserts is not gold


def concluded_emotion(word: str, proto: Protocol) -> Emotion | None:
    """The concluded emotion under ``proto``, or None when it is not (exactly) one emotion."""
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
    found = []
    for clause in clauses(reasoning):
        words = stripped_words(clause)
        for i, word in enumerate(words):
            pair = f"{word} {words[i + 1]}" if i + 1 < len(words) else ""  # "grossed out"
            name = pair if pair in SYNONYMS else word if word in SYNONYMS else None
            if name is None or (name in AMBIGUOUS_IN_REASONING and name not in GOLD_ONLY):
                continue
            if negated(words[max(0, i - NEGATION_WINDOW) : i], NEGATORS, NEGATING_PAIRS):
                continue
            emotion = emotion_from_word(name, proto)
            if emotion is not None and (name not in GOLD_ONLY or emotion == gold):
                found.append(emotion)
    return tuple(found)


def check_label(record: GenerationRecord, evidence: CheckInput) -> CheckResult:
    answer = record.answer
    if answer is None:
        return failed(NAME, Code.no_answer, "no answer")
    proto = evidence.protocol
    gold = gold_emotion(record, proto)
    if evidence.utterance is not None and evidence.utterance.emotion != record.emotion:
        dataset = evidence.utterance.emotion.value
        return failed(
            NAME, Code.stale_gold, f"record's gold {record.emotion.value} differs from the dataset's {dataset}"
        )
    concluded = concluded_emotion(answer.emotion, proto)
    if concluded is None:
        detail = f"concluded {clip(answer.emotion)!r} is not a {proto.name} label (gold {gold.value})"
        return failed(NAME, Code.not_a_label, detail)
    if concluded != gold:
        return failed(NAME, Code.wrong_label, f"concluded {concluded.value} but gold is {gold.value}")
    asserted = asserted_emotions(answer.reasoning, proto, gold)
    others = Counter(e for e in asserted if e != gold)
    if others:
        other, count = others.most_common(1)[0]
        gold_count = len(asserted) - sum(others.values())
        if count > gold_count:
            detail = f"reasoning argues for {other.value} ({count}x) over gold {gold.value} ({gold_count}x)"
            return failed(NAME, Code.argues_other, detail)
        if asserted[-1] != gold:
            return failed(
                NAME, Code.concludes_other, f"reasoning concludes {asserted[-1].value} but gold is {gold.value}"
            )
    return passed(NAME)
