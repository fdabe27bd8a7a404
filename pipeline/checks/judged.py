"""Judge: the paper's LLM-judged Relevance, as an optional check (off by default).

The judge (pipeline.judge, the prompt and backends of ``emoreason eval``'s reasoning judge,
prompts/judge/reasoning.v1.md) rates each rationale's Relevance on the paper's 0-2 scale: does the
evidence support the reference emotion. :func:`pipeline.judge_relevance.judge_relevance` asks it
for every parsed candidate before verification (each request cached like stage one's); this check
reads the verdict: it passes at ``settings.min_judged_relevance`` (2: clearly supports) or above.
A judge reply that failed or did not parse fails the check with its error, so an accepted row was
always judged. The judged score is recorded per row (``VerifiedRecord.judge_relevance``) either way.
"""

from __future__ import annotations

from enum import StrEnum

from pipeline.checks.base import CheckInput, clip, failed, not_applicable, passed
from pipeline.records import GenerationRecord
from pipeline.verdict import CheckName, CheckResult, CommonCode

NAME = CheckName.judge


class Code(StrEnum):
    no_verdicts = "no_verdicts"  # n/a: the run has no judge verdicts
    not_judged = "not_judged"  # no verdict for this record
    judge_failed = "judge_failed"  # the judge's reply failed or did not parse
    low_relevance = "low_relevance"  # judged below the pass mark


def check_judge(record: GenerationRecord, evidence: CheckInput) -> CheckResult:
    if record.answer is None:
        return not_applicable(NAME, CommonCode.no_answer, "no answer")
    if evidence.judged is None:
        return not_applicable(NAME, Code.no_verdicts, "no judge verdicts")
    verdict = evidence.judged.get(record.id)
    if verdict is None:
        return failed(NAME, Code.not_judged, "not judged (no verdict for this record)")
    if verdict.relevance is None:
        return failed(NAME, Code.judge_failed, f"judge failed: {clip(verdict.error or 'no verdict', 120)}")
    need = evidence.settings.min_judged_relevance
    if verdict.relevance < need:
        return failed(
            NAME,
            Code.low_relevance,
            f"judged relevance {verdict.relevance}/2 (needs {need}): {clip(verdict.explanation, 120)}",
        )
    return passed(NAME)
