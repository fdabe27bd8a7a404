"""What every stage-two check sees and returns.

A check is a pure function ``(record, evidence) -> CheckResult``: ``record`` is one stage-one row
(one teacher candidate), ``evidence`` is a :class:`CheckInput` holding what the rationale is
checked *against* (the utterance, its acoustic profile, the label protocol, thresholds). One
``CheckInput`` is built per utterance and shared by its candidates, so per-utterance work
(normalising the transcript and context, scanning the transcript for injected instructions) is
done once, on first use.

A check that does not apply passes with ``applicable=False`` and a reason saying why, so the audit
can count it apart from a real pass; a failed check's reason carries the check's reason code and
names what failed (the quote, the claim, ...). See pipeline.verdict.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cache, cached_property, lru_cache
from typing import NamedTuple, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from pipeline.checks.directives import InjectionFinding, find_injection
from pipeline.checks.text import NormText
from pipeline.labels import Protocol as LabelProtocol
from pipeline.records import AcousticCue, GenerationRecord, Measure, Utterance
from pipeline.relevance import RelevanceTable
from pipeline.verdict import CheckName, CheckResult, Reason


@runtime_checkable
class ProfileLike(Protocol):
    """What stage two needs of an acoustic profile (pipeline.acoustic.profile.AcousticProfile)."""

    cues: list[AcousticCue]

    def z_of(self, measure: Measure) -> float | None: ...

    def cue_of(self, measure: Measure) -> AcousticCue | None: ...


class CheckSettings(BaseModel):
    """Thresholds of the checks. Defaults are documented in docs/stage-two.md."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    quote_similarity: float = Field(
        0.9,
        ge=0.5,
        le=1.0,
        description="fuzzy quote tolerance: character similarity of a quote to its best transcript window",
    )
    acoustic_z_tolerance: float = Field(
        0.5, ge=0.0, description="a claim 'high X' needs z(X) >= +this (a 'low X' claim z <= -this)"
    )
    repetition_ngram: int = Field(3, ge=2, description="n of the word n-grams whose repetition marks a loop")
    max_repeated_ngram_share: float = Field(
        0.3, gt=0.0, le=1.0, description="share of repeated word n-grams above which a text is a loop"
    )
    min_tokens_for_repetition: int = Field(20, ge=5, description="shorter texts are not judged for loops")
    min_ascii_letter_share: float = Field(0.9, ge=0.0, le=1.0, description="below: not English")
    min_stopword_share: float = Field(0.12, ge=0.0, le=1.0, description="below (over >= 12 words): not English")
    duplicate_threshold: float = Field(
        0.7, gt=0.0, le=1.0, description="estimated Jaccard of reasoning shingles at which a rationale is a copy"
    )
    duplicate_recall_weight: float = Field(
        0.9, gt=0.0, lt=1.0, description="weight of missed copies vs. extra candidates when banding the LSH"
    )
    duplicate_num_perm: int = Field(64, ge=16, le=256, description="MinHash permutations")
    duplicate_shingle: int = Field(3, ge=1, description="word n-gram shingles of the reasoning")
    min_judged_relevance: int = Field(2, ge=0, le=2, description="the judge check's pass mark on the paper's 0-2 scale")


DEFAULT_SETTINGS = CheckSettings()


@dataclass(frozen=True)
class JudgedRelevance:
    """The LLM judge's Relevance of one rationale (0-2, the paper's scale); None when its reply failed."""

    relevance: int | None
    explanation: str = ""
    error: str | None = None


@dataclass(eq=False)
class CheckInput:
    """Everything a rationale is checked against, for one utterance."""

    utterance: Utterance | None
    protocol: LabelProtocol
    profile: ProfileLike | None = None
    settings: CheckSettings = DEFAULT_SETTINGS
    blind_emotion: str | None = None
    blind_enabled: bool = False
    relevance: RelevanceTable | None = None  # which way each cue points (pipeline.relevance)
    judged: Mapping[str, JudgedRelevance] | None = None  # record id -> the judge's verdict (the judge check)
    extra: dict[str, object] = field(default_factory=dict)  # reserved for callers; checks ignore it

    @cached_property
    def transcript(self) -> NormText | None:
        text = self.utterance.transcript if self.utterance is not None else None
        return NormText.of(text) if text else None

    @cached_property
    def context(self) -> list[tuple[int, str, NormText]]:
        """(turn, speaker, normalised text) of each previous turn."""
        if self.utterance is None:
            return []
        return [(t.turn, t.speaker, NormText.of(t.text)) for t in self.utterance.context]

    @cached_property
    def injection(self) -> InjectionFinding | None:
        """Instructions hidden in the dialogue (the injection check reads them)."""
        return find_injection(self.utterance, self.protocol)


class Problem(NamedTuple):
    """One thing a check found wrong: its reason code and what to tell people."""

    code: StrEnum
    text: str


# Results are frozen, so equal ones are shared: most checks pass or do not apply in the same words,
# and validating a fresh result each time was a tenth of stage two's CPU (docs/benchmarks.md).
@cache
def passed(name: CheckName) -> CheckResult:
    return CheckResult(name=name, passed=True)


def failed(name: CheckName, code: StrEnum, detail: str) -> CheckResult:
    return CheckResult(name=name, passed=False, reason=Reason(check=name, code=code, detail=detail))


@lru_cache(maxsize=4096)
def not_applicable(name: CheckName, code: StrEnum, detail: str) -> CheckResult:
    """A pass that did not apply: the check had nothing to judge."""
    return CheckResult(name=name, passed=True, applicable=False, reason=Reason(check=name, code=code, detail=detail))


def verdict_of(name: CheckName, problems: Sequence[Problem], *, unique: bool = False) -> CheckResult:
    """Passed without problems; else failed with the first problem's code and every problem's text
    (each once, in order, when ``unique``)."""
    if not problems:
        return passed(name)
    texts = [p.text for p in problems]
    return failed(name, problems[0].code, "; ".join(dict.fromkeys(texts) if unique else texts))


def max_tokens(sampling: str) -> int | None:
    """The ``max_tokens`` of a record's sampling (JSON), None when it sets none."""
    try:
        value = json.loads(sampling).get("max_tokens")
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, int) else None


def _sampling_n(sampling: str) -> int:
    try:
        value = json.loads(sampling).get("n")
    except (ValueError, AttributeError):
        return 1
    return value if isinstance(value, int) and value >= 1 else 1


def cut_at_max_tokens(record: GenerationRecord) -> bool:
    """Whether the teacher stopped this candidate at its sampling's ``max_tokens``.

    The candidate's finish reason says so ("length"). Rows without one (written before it was
    recorded) fall back to the candidate's share of the request's completion tokens: APIs report
    them summed over the request's ``n`` candidates, so the total alone marks a request of two
    short answers as cut.
    """
    if record.finish_reason:
        return record.finish_reason == "length"
    limit = max_tokens(record.sampling)
    return limit is not None and record.completion_tokens / _sampling_n(record.sampling) >= limit


def clip(text: str, limit: int = 60) -> str:
    """A short, single-line rendering of a quote or claim for a reason string."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
