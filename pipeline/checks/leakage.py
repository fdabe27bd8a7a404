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
from enum import StrEnum
from functools import cache

from pipeline.checks.base import CheckInput, Problem, clip, passed, verdict_of
from pipeline.checks.text import clauses, stripped_words, suggests_text
from pipeline.records import GenerationRecord
from pipeline.verdict import CheckName, CheckResult

NAME = CheckName.leakage


class Code(StrEnum):
    mentions_annotation = "mentions_annotation"  # "the label is", "annotated as", "we are told"
    quoted_label = "quoted_label"  # the gold label's name in quotes, not from the transcript


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
    for clause in clauses(text):
        if not _ANCHORS.isdisjoint(stripped_words(clause)):
            match = _LEAK.search(clause)
            if match:
                return match.group(0).strip()
    return None


@cache  # a corpus has a few label names
def _quoted_label(names: tuple[str, ...]) -> re.Pattern[str]:
    alternatives = "|".join(re.escape(n) for n in names)
    return re.compile(rf"[\"'“‘]\s*({alternatives})\s*[\"'”’]", re.IGNORECASE)


def _quoted_labels(record: GenerationRecord, evidence: CheckInput, joined: str) -> list[Problem]:
    """The gold label's name (or the dataset's raw label) in quotes, when the transcript does not say it."""
    utterance = evidence.utterance
    names = {record.emotion.value}
    if utterance is not None:
        names.add(utterance.raw_label.lower())
    pattern = _quoted_label(tuple(sorted(names)))
    transcript = evidence.transcript
    return [
        Problem(Code.quoted_label, f"names the label in quotes: {match.group(0)!r}")
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
            problems.append(Problem(Code.mentions_annotation, f"mentions the annotation: {clip(leaked)!r}"))
    problems += _quoted_labels(record, evidence, f"{answer.reasoning}\n{joined}")
    return verdict_of(NAME, problems, unique=True)
