"""Stage two's checks: each a small pure function ``(record, evidence) -> CheckResult``.

``CHECKS`` lists the per-record checks in the order they run; ``duplicate`` is corpus-level
(:class:`~pipeline.checks.duplicates.DuplicateIndex`) and runs last, over a batch, on the
records that passed everything else. ``CHECK_NAMES`` is the shared vocabulary of
``VerifiedRecord.checks`` that the audit and the quality metrics read.
"""

from __future__ import annotations

from collections.abc import Callable

from pipeline.checks.acoustic import check_acoustic
from pipeline.checks.base import (
    NOT_APPLICABLE,
    CheckInput,
    CheckSettings,
    JudgedRelevance,
    ProfileLike,
    failed,
    not_applicable,
    passed,
)
from pipeline.checks.blind import check_blind
from pipeline.checks.context import check_context
from pipeline.checks.degeneracy import check_degeneracy
from pipeline.checks.duplicates import DuplicateIndex
from pipeline.checks.injection import check_injection
from pipeline.checks.judged import check_judge
from pipeline.checks.label import check_label
from pipeline.checks.leakage import check_leakage
from pipeline.checks.quotes import check_quotes
from pipeline.checks.reasoning import check_reasoning
from pipeline.checks.relevance import check_relevance
from pipeline.checks.schema import check_schema
from pipeline.records import CheckResult, GenerationRecord

Check = Callable[[GenerationRecord, CheckInput], CheckResult]

CHECKS: dict[str, Check] = {
    "schema": check_schema,
    "label": check_label,
    "quote_grounding": check_quotes,
    "acoustic_grounding": check_acoustic,
    "context_grounding": check_context,
    "leakage": check_leakage,
    "degeneracy": check_degeneracy,
    "blind_consistency": check_blind,
    "injection": check_injection,
    "relevance": check_relevance,
    "reasoning": check_reasoning,
    "judge": check_judge,
}
DUPLICATE = "duplicate"
CHECK_NAMES: tuple[str, ...] = (
    "schema",
    "label",
    "quote_grounding",
    "acoustic_grounding",
    "context_grounding",
    "leakage",
    "degeneracy",
    DUPLICATE,
    "blind_consistency",
    "injection",
    "relevance",
    "reasoning",
    "judge",
)
# Checks that need something beyond the record and are off unless asked for (VerifyConfig.blind / .judge).
OPTIONAL_CHECKS = frozenset({"blind_consistency", "judge"})
# Checks that read the parsed answer: after a schema failure they would only repeat it.
NEEDS_ANSWER = frozenset(CHECK_NAMES) - {"schema"}

__all__ = [
    "CHECKS",
    "CHECK_NAMES",
    "DUPLICATE",
    "NEEDS_ANSWER",
    "NOT_APPLICABLE",
    "OPTIONAL_CHECKS",
    "Check",
    "CheckInput",
    "CheckSettings",
    "DuplicateIndex",
    "JudgedRelevance",
    "ProfileLike",
    "failed",
    "not_applicable",
    "passed",
]
