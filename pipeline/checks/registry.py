"""The registry of stage two's checks: which run, in what order, with which reason codes.

Each check is a pure function ``(record, evidence) -> CheckResult`` in its own file, with the
``Code`` enum of the reasons it gives. ``REGISTRY`` lists one :class:`CheckSpec` per
:class:`~pipeline.verdict.CheckName`, in the order they run; every consumer (verify, the audit,
the quality metrics, the evaluation) reads names and properties from here. ``duplicate`` is
corpus-level (:class:`~pipeline.checks.duplicates.DuplicateIndex`): verify runs it over a batch,
on the records that passed everything else. Adding a check: docs/stage-two.md.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from pipeline.checks import (
    acoustic,
    blind,
    context,
    degeneracy,
    duplicates,
    injection,
    judged,
    label,
    leakage,
    quotes,
    reasoning,
    relevance,
    schema,
)
from pipeline.checks.base import CheckInput
from pipeline.rationale import EvidenceKind
from pipeline.records import GenerationRecord
from pipeline.verdict import CheckName, CheckResult, CommonCode

Check = Callable[[GenerationRecord, CheckInput], CheckResult]


@dataclass(frozen=True)
class CheckSpec:
    """What the registry knows of one check."""

    name: CheckName
    run: Check | None  # None: corpus-level, run by verify over a batch (duplicate)
    codes: type[StrEnum]  # the reasons it gives, beyond pipeline.verdict.CommonCode
    optional: bool = False  # needs something beyond the record: off unless asked (VerifyConfig.blind / .judge)
    grounds: EvidenceKind | None = None  # the evidence kind whose items it verifies (best-of-n counts them)
    judges_answers: bool = False  # applies to any answer, a model's too (the evaluation's reasoning metrics)


REGISTRY: dict[CheckName, CheckSpec] = {
    spec.name: spec
    for spec in (
        CheckSpec(CheckName.schema, schema.check_schema, schema.Code),
        CheckSpec(CheckName.label, label.check_label, label.Code, judges_answers=True),
        CheckSpec(
            CheckName.quote_grounding,
            quotes.check_quotes,
            quotes.Code,
            grounds=EvidenceKind.lexical,
            judges_answers=True,
        ),
        CheckSpec(
            CheckName.acoustic_grounding,
            acoustic.check_acoustic,
            acoustic.Code,
            grounds=EvidenceKind.acoustic,
            judges_answers=True,
        ),
        CheckSpec(
            CheckName.context_grounding,
            context.check_context,
            context.Code,
            grounds=EvidenceKind.contextual,
            judges_answers=True,
        ),
        CheckSpec(CheckName.leakage, leakage.check_leakage, leakage.Code),
        CheckSpec(CheckName.degeneracy, degeneracy.check_degeneracy, degeneracy.Code),
        CheckSpec(CheckName.duplicate, None, duplicates.Code),
        CheckSpec(CheckName.blind_consistency, blind.check_blind, blind.Code, optional=True),
        CheckSpec(CheckName.injection, injection.check_injection, injection.Code),
        CheckSpec(CheckName.relevance, relevance.check_relevance, relevance.Code),
        CheckSpec(CheckName.reasoning, reasoning.check_reasoning, reasoning.Code),
        CheckSpec(CheckName.judge, judged.check_judge, judged.Code, optional=True),
    )
}

# Views of the registry that consumers read.
CHECK_NAMES: tuple[CheckName, ...] = tuple(REGISTRY)
CHECKS: dict[CheckName, Check] = {name: spec.run for name, spec in REGISTRY.items() if spec.run is not None}
OPTIONAL_CHECKS = frozenset(name for name, spec in REGISTRY.items() if spec.optional)
GROUNDING_OF_KIND: dict[EvidenceKind, CheckName] = {
    spec.grounds: name for name, spec in REGISTRY.items() if spec.grounds is not None
}
ANSWER_CHECKS: tuple[CheckName, ...] = tuple(name for name, spec in REGISTRY.items() if spec.judges_answers)


def reason_codes(name: CheckName) -> frozenset[str]:
    """Every reason code check ``name`` may carry: its own and the common ones."""
    return frozenset(REGISTRY[name].codes) | frozenset(CommonCode)
