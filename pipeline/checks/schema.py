"""Schema: the teacher's answer is a valid RationaleAnswer with real content.

Stage one already parses answers; a row with ``error`` (request failure, unparseable JSON)
fails here with that error, or, when the JSON is unparseable because the answer used its whole
``max_tokens`` budget, as cut off (with the last words it wrote). A row without a parsed answer is re-validated from ``raw_text`` so
the reason names the offending field. Beyond the pydantic bounds (1–8 evidence items, reasoning
≤ 2000 characters, emotion ≤ 40), whitespace-only text, which ``min_length`` lets through, fails.
"""

from __future__ import annotations

from pydantic import ValidationError

from pipeline.checks.base import CheckInput, clip, cut_at_max_tokens, failed, max_tokens, passed
from pipeline.checks.text import has_words
from pipeline.rationale import RationaleAnswer
from pipeline.records import CheckResult, GenerationRecord

NAME = "schema"
MAX_EMOTION_WORDS = 3  # "mildly annoyed" is an answer, a sentence is not


def _first_error(error: ValidationError) -> str:
    item = error.errors()[0]
    where = ".".join(str(p) for p in item["loc"]) or "answer"
    return f"{where}: {item['msg']} ({error.error_count()} error(s))"


def check_schema(record: GenerationRecord, evidence: CheckInput) -> CheckResult:
    if record.error:
        if record.error.startswith("invalid_answer") and cut_at_max_tokens(record):
            limit = max_tokens(record.sampling)
            # Nearly every unparsable answer of a small teacher: a loop ran into the token limit.
            # Pydantic's message ("EOF while parsing a string at line 1 column 445") hides that.
            return failed(
                NAME,
                f"cut off: the answer used all {limit} tokens before its JSON closed, ending {clip(record.raw_text[-40:], 40)!r}",
            )
        return failed(NAME, f"stage one: {clip(record.error, 160)}")
    answer = record.answer
    if answer is None:
        if not record.raw_text.strip():
            return failed(NAME, "empty answer")
        try:
            RationaleAnswer.model_validate_json(record.raw_text)
        except ValidationError as error:
            return failed(NAME, f"invalid answer: {_first_error(error)}")
        return failed(NAME, "answer validates but stage one stored none")
    if not has_words(answer.reasoning):
        return failed(NAME, "reasoning has no words")
    if not has_words(answer.emotion) or len(answer.emotion.split()) > MAX_EMOTION_WORDS:
        return failed(NAME, f"emotion is not a word: {clip(answer.emotion)!r}")
    for i, item in enumerate(answer.evidence):
        if not has_words(item.cue):
            return failed(NAME, f"evidence[{i}].cue has no words")
        if not has_words(item.suggests):
            return failed(NAME, f"evidence[{i}].suggests has no words")
    return passed(NAME)
