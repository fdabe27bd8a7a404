"""Label-blind self-consistency (optional): a label-blind answer agrees with the gold label.

Stage one can also ask the teacher, without the gold label, which emotion the utterance
shows (style ``blind``). When the blind answer names a different emotion, the gold label is
one the evidence alone does not lead to: a rationale written for it is a rationalisation.
Off by default (it costs an LLM call per utterance). The agreement is stored in
``VerifiedRecord.blind_emotion`` / ``blind_agrees`` whenever a blind answer exists.
"""

from __future__ import annotations

from enum import StrEnum

from pipeline.checks.base import CheckInput, clip, failed, not_applicable, passed
from pipeline.checks.label import concluded_emotion, gold_emotion
from pipeline.labels import Protocol
from pipeline.records import GenerationRecord
from pipeline.verdict import CheckName, CheckResult, CommonCode

NAME = CheckName.blind_consistency


class Code(StrEnum):
    no_blind_answer = "no_blind_answer"  # n/a: the teacher gave no label-blind answer for this utterance
    disagrees = "disagrees"  # the label-blind answer names another emotion than gold


def blind_agrees(blind_emotion: str, record: GenerationRecord, proto: Protocol) -> bool:
    return concluded_emotion(blind_emotion, proto) == gold_emotion(record, proto)


def check_blind(record: GenerationRecord, evidence: CheckInput) -> CheckResult:
    if not evidence.blind_enabled:
        return not_applicable(NAME, CommonCode.disabled, "disabled")
    if evidence.blind_emotion is None:
        return not_applicable(NAME, Code.no_blind_answer, "no label-blind answer for this utterance")
    if blind_agrees(evidence.blind_emotion, record, evidence.protocol):
        return passed(NAME)
    gold = gold_emotion(record, evidence.protocol).value
    return failed(NAME, Code.disagrees, f"label-blind answer is {clip(evidence.blind_emotion)!r}, gold is {gold}")
