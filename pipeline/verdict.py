"""The vocabulary of stage two's verdicts: the names of the checks, and what a check says.

A check returns a :class:`CheckResult`: it passed, failed, or did not apply. A failure, and a
check that did not apply, carry a :class:`Reason`: the check, a reason *code* from that check's
own ``Code`` enum (in its file under ``pipeline/checks/``) or from :class:`CommonCode`, and a
detail for people ("not in transcript: 'I never said that'"). Consumers group and filter by
``(check, code)``; they never parse the detail.

``CheckName`` is half of the check registry: the other half, what runs under each name, is
``pipeline.checks.registry.REGISTRY`` (see docs/stage-two.md, "Adding a check"). The names live here, apart
from the checks, because the records (pipeline.records) store them and the checks read records.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class CheckName(StrEnum):
    """Every check of stage two, in the order they run and are stored in ``VerifiedRecord.checks``."""

    schema = "schema"
    label = "label"
    quote_grounding = "quote_grounding"
    acoustic_grounding = "acoustic_grounding"
    context_grounding = "context_grounding"
    leakage = "leakage"
    degeneracy = "degeneracy"
    duplicate = "duplicate"
    blind_consistency = "blind_consistency"
    injection = "injection"
    relevance = "relevance"
    reasoning = "reasoning"
    judge = "judge"


class CommonCode(StrEnum):
    """Reason codes any check may carry: the verifier sets them, not the check."""

    disabled = "disabled"  # the run's configuration turned the check off
    no_answer = "no_answer"  # the candidate has no parsed answer (schema says why)
    unknown_utterance = "unknown_utterance"  # the dataset has no such utterance: nothing to check against


class Reason(BaseModel):
    """Why a check failed or did not apply."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    check: CheckName
    code: str = Field(description="a code of the check's Code enum (pipeline/checks/<check>.py) or a CommonCode")
    detail: str = Field("", description="for people: what failed (the quote, the claim, ...)")

    def __str__(self) -> str:
        return f"{self.check.value}: {self.detail}"


class CheckResult(BaseModel):
    """One check's verdict on one candidate."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: CheckName
    passed: bool
    applicable: bool = Field(True, description="false: the check had nothing to judge (a pass that says nothing)")
    reason: Reason | None = Field(None, description="why it failed or did not apply; none for a real pass")
