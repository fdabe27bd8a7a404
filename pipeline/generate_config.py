"""Stage one's configuration: what the teacher is asked, how, and where the answers go.

Its own module because both the request builder (:mod:`pipeline.generate_slots`) and the run
(:mod:`pipeline.generate`) read it; neither has to import the other for it.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from pipeline.evidence_plan import PlanMode
from pipeline.llm.base import Sampling
from pipeline.llm.config import LLMConfig
from pipeline.llm.embedded import EMBEDDED

# style -> template id; a config may point a style at another version (e.g. elaborate.v2).
STYLE_TEMPLATES: dict[str, str] = {
    "elaborate": "rationale/elaborate.v1",
    "summarize": "rationale/summarize.v1",
    "label_only": "rationale/label_only.v1",
    "acoustic": "rationale/acoustic.v2",
    "blind": "rationale/blind.v1",
}
DEFAULT_CANDIDATES = 2  # stage two keeps the best of n; two already halves the rejects of a weak teacher


class GenerateConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    styles: list[str] | None = Field(
        None, description="target styles; default: ['acoustic'] when profiles are given, else ['elaborate']"
    )
    templates: dict[str, str] = Field(default_factory=lambda: dict(STYLE_TEMPLATES), description="style -> template id")
    prompts_dir: str | None = Field(None, description="where templates live; default: the project's prompts/")
    sampling: Sampling = Field(
        Sampling(n=DEFAULT_CANDIDATES), description="sampling.n = candidates per utterance and style"
    )
    llm: LLMConfig = Field(default_factory=LLMConfig)
    grounded: bool = Field(
        True,
        description="grounded decoding (pipeline.grounded): a per-utterance answer schema whose cues can only be "
        "transcript spans, measured cues or earlier turns, and whose emotion is the gold label; needs a backend "
        "that honours a JSON schema (all three do; turn it off for an API that rejects the schema's keywords)",
    )
    evidence_plan: PlanMode = Field(
        PlanMode.supporting,
        description="which evidence the teacher is offered for its gold label (pipeline.evidence_plan): "
        "supporting = only the cues that point toward it, all = every cue, supporting first, off = as measured; "
        "needs the run's relevance table",
    )
    framed: bool | None = Field(
        None,
        description="under grounded decoding, a reasoning built from the offered cues, a connector and the emotion "
        "(pipeline.grounded.ReasoningFrame) instead of free words; None = on for the embedded teacher only",
    )
    max_parse_retries: int = Field(2, ge=0, description="re-asks of a candidate that does not parse")
    max_context_turns: int = Field(8, ge=0, description="earlier dialogue turns shown to the teacher")
    limit: int | None = Field(None, ge=1, description="only the first N utterances")
    cache_path: str | None = Field(None, description="request cache; default: <out>/cache/requests.sqlite")
    output: str = "generations.parquet"
    rejects_output: str = "generate_rejects.parquet"
    progress: bool = True

    @field_validator("sampling", mode="before")
    @classmethod
    def _default_candidates(cls, value: Any) -> Any:
        # A YAML/CLI section that sets only the temperature keeps stage one's n, not Sampling's.
        return {"n": DEFAULT_CANDIDATES, **value} if isinstance(value, dict) else value

    @field_validator("templates")
    @classmethod
    def _all_styles(cls, value: dict[str, str]) -> dict[str, str]:
        return {**STYLE_TEMPLATES, **value}

    def resolved_framed(self, model: str) -> bool:
        """Whether grounded requests to ``model`` frame the reasoning (see ``framed``)."""
        # A 135M model's free words invent scenes and listeners; a capable teacher writes its own.
        return self.framed if self.framed is not None else model == EMBEDDED

    def resolved_styles(self, have_profiles: bool) -> list[str]:
        styles = self.styles or (["acoustic"] if have_profiles else ["elaborate"])
        unknown = [s for s in styles if s not in self.templates]
        if unknown:
            raise ValueError(f"unknown style(s) {unknown}; known: {sorted(self.templates)}")
        return styles
