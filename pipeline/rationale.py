"""The teacher's answer format. Its JSON schema is the structured-output constraint sent to the LLM.

Bounds are deliberately generous for a good teacher and tight enough that a runaway small model
hits them: schema validation is stage two's first check.
"""

from __future__ import annotations

from enum import Enum

from pydantic import BaseModel, ConfigDict, Field

ANSWER_SCHEMA_VERSION = "rationale-v1"


class EvidenceKind(str, Enum):
    lexical = "lexical"  # a quote from the transcript
    acoustic = "acoustic"  # a measured cue of the voice, as given in the prompt
    contextual = "contextual"  # a quote or reference to a previous turn of the dialogue


class Evidence(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: EvidenceKind
    cue: str = Field(
        min_length=1,
        max_length=300,
        description="lexical: an exact quote from the transcript; acoustic: the measured cue; "
        "contextual: a quote from an earlier turn",
    )
    suggests: str = Field(min_length=1, max_length=300, description="what this evidence suggests about the emotion")


class RationaleAnswer(BaseModel):
    """What the teacher returns for one utterance."""

    model_config = ConfigDict(extra="forbid")

    evidence: list[Evidence] = Field(min_length=1, max_length=8)
    reasoning: str = Field(min_length=1, max_length=2000)
    emotion: str = Field(min_length=1, max_length=40, description="the concluded emotion, one word")


class BlindAnswer(BaseModel):
    """Label-blind answer: the same evidence, no gold label given ('which emotion, and why')."""

    model_config = ConfigDict(extra="forbid")

    evidence: list[Evidence] = Field(min_length=1, max_length=8)
    reasoning: str = Field(min_length=1, max_length=2000)
    emotion: str = Field(min_length=1, max_length=40)
