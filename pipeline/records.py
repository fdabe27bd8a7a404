"""Records that cross a stage boundary. Parquet schemas are derived from these models.

Vocabulary: an *utterance* is one spoken turn with its labels; its *acoustic profile* is what we
measured of the voice; a *rationale* is the teacher's explanation; a *verdict* is stage two's
judgement of it; a *record* is a row of a stage's output; a *task* is a training objective; an
*example* is one training row for one task. A *reject* is a record a stage could not use, kept
with its reason.
"""

from __future__ import annotations

import datetime
from enum import Enum

from pydantic import BaseModel, ConfigDict, Field

from pipeline.labels import Emotion, Sentiment
from pipeline.rationale import RationaleAnswer
from pipeline.verdict import CheckResult, Reason

SCHEMA_VERSION = "1"


class Record(BaseModel):
    """Base for every stage record: immutable, no unknown fields."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class Gender(str, Enum):
    female = "female"
    male = "male"


class ContextTurn(Record):
    """A previous turn of the same dialogue, oldest first."""

    turn: int
    speaker: str
    text: str


class Utterance(Record):
    id: str = Field(description="stable and unique within the dataset, e.g. 'ravdess/03-01-05-01-01-01-01'")
    dataset: str
    split: str = Field(description="train / dev / test, or a fold / session name")
    audio_path: str | None = Field(
        None,
        description="absolute when loaded; in a run folder relative to the dataset's audio root "
        "(pipeline.audio_roots); None when the dataset ships no audio",
    )
    start_s: float | None = None
    end_s: float | None = None
    transcript: str | None = None
    speaker: str = Field(description="unique within the dataset, e.g. 'Ses01F' or 'Actor_01'")
    gender: Gender | None = None
    emotion: Emotion = Field(description="canonical label under `label_protocol`")
    raw_label: str = Field(description="the dataset's own label, as released")
    label_protocol: str = Field(description="name of the pipeline.labels.Protocol applied")
    sentiment: Sentiment | None = None
    session: str | None = Field(None, description="recording session, for leave-one-session-out folds")
    dialogue_id: str | None = None
    turn: int | None = None
    context: list[ContextTurn] = Field(default_factory=list, description="previous turns, oldest first")
    duration_s: float | None = None
    sample_rate: int | None = None


class Reject(Record):
    """A record that a stage could not use; written, never dropped."""

    stage: str = Field(description="adapter / audio / profile / generate / verify / corpus")
    record_id: str
    dataset: str
    reason: str = Field(description="short, stable, groupable: 'unknown_label', 'corrupt_audio', ...")
    detail: str = Field("", description="the full error message")
    source: str = Field("", description="the offending input (row, path), for the audit")

    def line(self) -> str:
        """One line for a terminal: where, which record, why."""
        where = f"{self.source[:120]} " if self.source and self.source != self.record_id else ""
        return f"{where}[{self.record_id}] {self.reason}: {self.detail}"


# ---- acoustic cues: the shared vocabulary of stage one prompts and stage two checks ----


class Measure(str, Enum):
    pitch_level = "pitch_level"
    pitch_range = "pitch_range"
    pitch_slope = "pitch_slope"
    loudness = "loudness"
    loudness_variability = "loudness_variability"
    speaking_rate = "speaking_rate"
    pauses = "pauses"
    voice_quality = "voice_quality"


class CueLevel(str, Enum):
    """Where a speaker-normalised measure lies; 'typical' values produce no cue."""

    very_low = "very_low"
    low = "low"
    high = "high"
    very_high = "very_high"

    @property
    def direction(self) -> int:
        return 1 if self in (CueLevel.high, CueLevel.very_high) else -1


class AcousticCue(Record):
    measure: Measure
    level: CueLevel
    z: float = Field(description="speaker-normalised z-score that produced the cue")
    phrase: str = Field(description="plain words a rationale can cite, e.g. 'pitch well above this speaker's usual'")


# ---- training corpora ----


class Task(str, Enum):
    asr = "asr"
    emotion_recognition = "emotion_recognition"
    emotion_reasoning = "emotion_reasoning"
    sentiment = "sentiment"
    spoken_qa = "spoken_qa"


SPEECH_TASKS = frozenset({Task.asr, Task.spoken_qa})
EMOTION_TASKS = frozenset({Task.emotion_recognition, Task.emotion_reasoning, Task.sentiment})


class TrainingExample(Record):
    """One row of a multitask corpus: audio + instruction -> target text, for one task."""

    id: str
    task: Task
    instruction: str
    target: str
    audio_path: str  # as Utterance.audio_path
    start_s: float | None = None
    end_s: float | None = None
    utterance_id: str
    dataset: str
    split: str
    speaker: str
    emotion: Emotion | None = Field(None, description="gold label, kept for evaluation and analysis")
    label_protocol: str | None = None
    transcript: str | None = None
    duration_s: float | None = None
    source_ids: list[str] = Field(default_factory=list, description="utterance and rationale record ids")
    instruction_template: str = Field("", description="question pool id@hash the instruction came from")


# ---- stage one and stage two rows ----


class GenerationRecord(Record):
    """One teacher candidate for one utterance (stage one output row), with full provenance."""

    id: str = Field(description="'<utterance_id>#<style>#<candidate>'")
    utterance_id: str
    dataset: str
    split: str
    speaker: str
    emotion: Emotion = Field(description="gold label given to the teacher")
    label_protocol: str
    transcript: str | None = None
    style: str = Field(description="target style: elaborate / summarize / label_only / acoustic")
    candidate: int = Field(0, description="index among the n samples of one request")
    backend: str
    model: str
    template_id: str
    template_hash: str
    sampling: str = Field(description="sampling parameters as canonical JSON")
    schema_version: str
    request_key: str
    attempts: int
    prompt_tokens: int
    completion_tokens: int = Field(
        description="the request's, summed over its sampling.n candidates (as APIs report it)"
    )
    latency_s: float
    created_at: datetime.datetime
    raw_text: str = Field("", description="the teacher's raw answer, kept even when it does not parse")
    finish_reason: str = Field(
        "", description="why the teacher stopped this candidate: 'stop', 'length' (cut at max_tokens), ...; '' unknown"
    )
    answer: RationaleAnswer | None = None
    error: str | None = Field(None, description="request or parse failure; such rows are rejects")


class VerifiedRecord(GenerationRecord):
    """A stage-one row with stage two's verdict."""

    accepted: bool
    reasons: list[Reason] = Field(default_factory=list, description="every failed check's reason (check, code, detail)")
    checks: list[CheckResult] = Field(default_factory=list)
    score: float = Field(0.0, description="best-of-n score; higher is better")
    selected: bool = Field(False, description="the candidate chosen for training among its utterance's candidates")
    blind_emotion: str | None = None
    blind_agrees: bool | None = None
    judge_relevance: int | None = Field(None, description="the LLM judge's Relevance (0-2) when the judge check ran")
