"""What ``emoreason eval`` does: which checkpoint, on which test data, how it generates and judges.

Its fields are the command's flags (pipeline/commands/__init__.py): ``max_new_tokens`` is
``--max-new-tokens``, ``options`` is ``-o KEY=VALUE``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic_settings import CliVariadicArg

from pipeline.config import AdapterOptions, adapter_options
from pipeline.llm.config import Backend

EvalTask = Literal["emotion_reasoning", "emotion_recognition"]


class EvalConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    checkpoint: str = Field(description="saved AudioLLM, or a training run folder (final/ or latest)")
    # The test data: a dataset adapter, or a corpus.
    dataset: str = Field("ravdess", description="dataset adapter (emoreason list)")
    root: str | None = Field(None, description="dataset folder")
    protocol: str | None = Field(None, description="label protocol (default: the dataset's usual one)")
    options: AdapterOptions = adapter_options()
    corpus: str | None = Field(None, description="corpus folder/parquet of TrainingExample rows (instead of --dataset)")
    audio_root: list[str] = Field(
        default_factory=list,
        description="with --corpus: [DATASET=]PATH, the folder that holds its audio on this machine, when the "
        "dataset moved (repeatable)",
    )
    split: str = Field(
        "test", description="split to evaluate (RAVDESS test = actors 17-20); 'all': every utterance of the folder"
    )
    model_labels: str | None = Field(
        None,
        description="the label protocol the model answers in (e.g. ravdess8), when the test set's differs: the "
        "instruction lists its labels, gold labels merge onto it, gold classes it lacks count as wrong",
    )
    task: EvalTask | None = Field(
        None,
        description="instruction pool asked (dataset default: emotion_reasoning; corpus default: both if unambiguous)",
    )
    limit: int | None = Field(None, ge=1, description="first N utterances only (smoke tests)")
    # Generation.
    batch_size: int = Field(8, ge=1)
    max_new_tokens: int = Field(256, ge=1)
    device: str = Field("auto", description="auto / cpu / cuda / cuda:1")
    score_labels: bool = Field(
        False,
        description="rank the protocol's labels by the model's log-probability of answering each, instead of generating",
    )
    # The AudioBench judge and reasoning quality.
    judge_backend: Backend | None = Field(None, description="enable the LLM judge with this backend")
    judge_model: str = Field("embedded", description="hub id / path / served name ('embedded': SmolLM2)")
    judge_url: list[str] = Field(default_factory=list, description="OpenAI-compatible base URL (repeatable)")
    profiles: str | None = Field(None, description="acoustic profiles of the test utterances, for acoustic grounding")
    # Output.
    out: str | None = Field(None, description="output folder (default runs/eval-<dataset>-<split>)")
    name: str | None = Field(None, description="run name in reports (default: the checkpoint folder's name)")
    score_only: bool = Field(
        False,
        description="generate nothing: score the answers already in --out (labels re-extracted with the current rules)",
    )
    compare: CliVariadicArg[list[str]] = Field(
        default_factory=list, description="other eval/baseline folders to report beside (RUN [RUN ...])"
    )
