"""Leakage: the rationale does not reveal that it was told the answer.

The teacher sees the gold label; a rationale that mentions the annotation ("the label is",
"annotated as", "the given emotion", "we are told", "ground truth") teaches the student to
expect a label in its input. Also a leak: the gold label's name (or the dataset's raw label)
in quotes when those words are not in the transcript ("'anger'", "\\"joy\\""); concluding in
plain words ("so the speaker is angry") is not. The reasoning and every evidence text are
scanned, case-insensitively.
"""

from __future__ import annotations

import re
from functools import lru_cache

from pipeline.checks.base import CheckInput, clip, failed, passed
from pipeline.checks.text import clauses, own_words, split_words, stripped_words, suggests_text
from pipeline.records import CheckResult, GenerationRecord

NAME = "leakage"

_ANNOTATION_PHRASES = (
    r"(?:the|this|its|a|their)\s+(?:gold|given|provided|assigned|annotated|target|true|correct|reference|expected)"
    r"\s+(?:label|emotion|answer|class|category|tag)",
    r"(?:gold|ground[- ]truth)\s+(?:label|emotion|annotation|standard)|ground[- ]truth",
    r"the\s+label\s+(?:is|was|says|reads|of)",
    r"(?:annotated|labell?ed|tagged)\s+(?:as|with)",
    r"annotators?|annotations?",
    r"(?:we|i)\s+(?:are|am|were|was)\s+told",
    r"as\s+(?:stated|given|provided|indicated|specified)\s+(?:in|by)\s+the\s+"
    r"(?:prompt|instructions?|task|annotation|question|data)",
    r"(?:the\s+)?(?:prompt|instructions?|task)\s+(?:says|states|tells|indicates|specifies)",
)
_LEAK = re.compile(r"\b(?:" + "|".join(_ANNOTATION_PHRASES) + r")\b")  # run on lowercased clauses
# Every phrase above holds one of these words; clauses without one are not searched.
_ANCHORS_WORDS = """label labels labeled labelled annotated annotation annotations annotator annotators gold ground ground-truth
    truth told tagged prompt instruction instructions task emotion answer class category tag"""
_ANCHORS = frozenset(_ANCHORS_WORDS.split())


def _leak(text: str) -> str | None:
    if _ANCHORS.isdisjoint(own_words(text)):
        return None
    for clause in clauses(text):
        # split_words holds every stripped word (and a few more): a C-speed filter before the exact test
        if not _ANCHORS.isdisjoint(split_words(clause)) and not _ANCHORS.isdisjoint(stripped_words(clause)):
            match = _LEAK.search(clause)
            if match:
                return match.group(0).strip()
    return None


_OPENING_QUOTES = ('"', "'", "“", "‘")  # the opening class of _quoted_label's pattern


@lru_cache(maxsize=1024)
def _quoted_label(names: tuple[str, ...]) -> re.Pattern[str]:
    alternatives = "|".join(re.escape(n) for n in names)
    return re.compile(rf"[\"'“‘]\s*({alternatives})\s*[\"'”’]", re.IGNORECASE)


def _quoted_labels(record: GenerationRecord, evidence: CheckInput, joined: str) -> list[str]:
    """The gold label's name (or the dataset's raw label) in quotes, when the transcript does not say it."""
    utterance = evidence.utterance
    names = {record.emotion.value}
    if utterance is not None:
        names.add(utterance.raw_label.lower())
    lowered = joined.lower()
    if not any([name in lowered for name in names]):  # nearly always: then no regex and no transcript
        return []
    pattern = _quoted_label(tuple(sorted(names)))
    transcript = evidence.transcript
    return [
        f"names the label in quotes: {match.group(0)!r}"
        for match in pattern.finditer(joined)
        if transcript is None or f" {match.group(1).lower()} " not in transcript.padded
    ]


def check_leakage(record: GenerationRecord, evidence: CheckInput) -> CheckResult:
    answer = record.answer
    if answer is None:
        return passed(NAME)  # nothing to leak; schema reports the missing answer
    # The reasoning (its words are cached for every check) and the evidence texts, one line each:
    # clauses never span two fields.
    joined = suggests_text(answer)
    problems = []
    for text in (answer.reasoning, joined):
        leaked = _leak(text)
        if leaked:
            problems.append(f"mentions the annotation: {clip(leaked)!r}")
    reasoning = answer.reasoning
    if any([quote in reasoning or quote in joined for quote in _OPENING_QUOTES]):  # most texts have none
        problems += _quoted_labels(record, evidence, f"{reasoning}\n{joined}")
    if problems:
        return failed(NAME, "; ".join(dict.fromkeys(problems)))
    return passed(NAME)
