"""Schema: the teacher's answer is a valid RationaleAnswer with real content.

Stage one already parses answers; a row with ``error`` (request failure, unparseable JSON)
fails here with that error, or, when the JSON is unparseable because the answer used its whole
``max_tokens`` budget, as cut off (with the last words it wrote). A row without a parsed answer is re-validated from ``raw_text`` so
the reason names the offending field. Beyond the pydantic bounds (1–8 evidence items, reasoning
≤ 2000 characters, emotion ≤ 40), whitespace-only text, which ``min_length`` lets through, fails.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import ValidationError

from pipeline.checks.base import CheckInput, clip, cut_at_max_tokens, failed, max_tokens, passed
from pipeline.checks.text import has_words
from pipeline.rationale import RationaleAnswer
from pipeline.records import GenerationRecord
from pipeline.verdict import CheckName, CheckResult

NAME = CheckName.schema
MAX_EMOTION_WORDS = 3  # "mildly annoyed" is an answer, a sentence is not


class Code(StrEnum):
    unknown_utterance = "unknown_utterance"  # the dataset has no utterance of this id
    cut_off = "cut_off"  # the JSON never closed: the answer ran into max_tokens
    stage_one_error = "stage_one_error"  # stage one recorded an error (request failed, unparsable answer)
    empty_answer = "empty_answer"  # the teacher wrote nothing
    invalid_answer = "invalid_answer"  # the text does not validate as an answer
    not_stored = "not_stored"  # the text validates but stage one stored no answer
    no_reasoning = "no_reasoning"  # the reasoning has no words
    emotion_not_a_word = "emotion_not_a_word"  # the emotion field is empty or a sentence
    empty_evidence = "empty_evidence"  # an evidence item's cue or suggests has no words


def _first_error(error: ValidationError) -> str:
    item = error.errors()[0]
    where = ".".join(str(p) for p in item["loc"]) or "answer"
    return f"{where}: {item['msg']} ({error.error_count()} error(s))"


def check_schema(record: GenerationRecord, evidence: CheckInput) -> CheckResult:
    if evidence.utterance is None:  # nothing to check against: every other check is n/a
        return failed(NAME, Code.unknown_utterance, f"utterance {record.utterance_id!r} is not in the dataset")
    if record.error:
        if record.error.startswith("invalid_answer") and cut_at_max_tokens(record):
            limit = max_tokens(record.sampling)
            # Nearly every unparsable answer of a small teacher: a loop ran into the token limit.
            # Pydantic's message ("EOF while parsing a string at line 1 column 445") hides that.
            return failed(
                NAME,
                Code.cut_off,
                f"cut off: the answer used all {limit} tokens before its JSON closed, ending {clip(record.raw_text[-40:], 40)!r}",
            )
        return failed(NAME, Code.stage_one_error, f"stage one: {clip(record.error, 160)}")
    answer = record.answer
    if answer is None:
        if not record.raw_text.strip():
            return failed(NAME, Code.empty_answer, "empty answer")
        try:
            RationaleAnswer.model_validate_json(record.raw_text)
        except ValidationError as error:
            return failed(NAME, Code.invalid_answer, f"invalid answer: {_first_error(error)}")
        return failed(NAME, Code.not_stored, "answer validates but stage one stored none")
    if not has_words(answer.reasoning):
        return failed(NAME, Code.no_reasoning, "reasoning has no words")
    if not has_words(answer.emotion) or len(answer.emotion.split()) > MAX_EMOTION_WORDS:
        return failed(NAME, Code.emotion_not_a_word, f"emotion is not a word: {clip(answer.emotion)!r}")
    for i, item in enumerate(answer.evidence):
        if not has_words(item.cue):
            return failed(NAME, Code.empty_evidence, f"evidence[{i}].cue has no words")
        if not has_words(item.suggests):
            return failed(NAME, Code.empty_evidence, f"evidence[{i}].suggests has no words")
    return passed(NAME)
