"""Paralinguistic encoder kinds, by name. Adding one is one ``register``.

A kind says how to build the encoder from a checkpoint path or from a config dict (random
weights, for CPU runs and tests), and how many frames it gives for n samples, from the config
alone (the collator counts audio tokens without loading weights).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from transformers import AutoConfig, WhisperConfig

from model.config import ParalinguisticEncoderConfig
from model.embedded import resolve_path
from model.encoders import emotion2vec
from model.encoders.base import FrameEncoder, FrameSpec
from model.encoders.paralinguistic import WaveformFrames, conv_frame_spec
from model.encoders.speech import WhisperFrames, whisper_frame_spec, whisper_spec_from_path


@dataclass(frozen=True)
class EncoderKind:
    name: str
    build: Callable[[ParalinguisticEncoderConfig, int], FrameEncoder]  # (config, sample_rate)
    frame_spec: Callable[[ParalinguisticEncoderConfig, int], FrameSpec]
    # Linear layers LoRA wraps by default. They must be *called* as modules: WavLM feeds its
    # q/k/v weights to torch's functional attention, so LoRA there would never run.
    lora_targets: tuple[str, ...] = ("q_proj", "v_proj")


REGISTRY: dict[str, EncoderKind] = {}


def register(kind: EncoderKind) -> EncoderKind:
    REGISTRY[kind.name] = kind
    return kind


def get_kind(name: str) -> EncoderKind:
    if name not in REGISTRY:
        raise ValueError(f"unknown emotion encoder kind {name!r}; registered: {', '.join(sorted(REGISTRY))}")
    return REGISTRY[name]


def _whisper_build(cfg: ParalinguisticEncoderConfig, sample_rate: int) -> FrameEncoder:
    return WhisperFrames.from_config(cfg.init) if cfg.init is not None else WhisperFrames.from_pretrained(cfg.path)


def _whisper_spec(cfg: ParalinguisticEncoderConfig, sample_rate: int) -> FrameSpec:
    return whisper_frame_spec(WhisperConfig(**cfg.init)) if cfg.init is not None else whisper_spec_from_path(cfg.path)


def _waveform_kind(name: str, model_type: str, lora_targets: tuple[str, ...] = ("q_proj", "v_proj")) -> EncoderKind:
    def build(cfg: ParalinguisticEncoderConfig, sample_rate: int) -> FrameEncoder:
        if cfg.init is not None:
            return WaveformFrames.from_config(model_type, cfg.init, sample_rate, cfg.normalize_waveform)
        return WaveformFrames.from_pretrained(cfg.path, sample_rate, cfg.normalize_waveform)

    def spec(cfg: ParalinguisticEncoderConfig, sample_rate: int) -> FrameSpec:
        if cfg.init is not None:
            config = AutoConfig.for_model(model_type, **cfg.init)
        else:
            config = AutoConfig.from_pretrained(resolve_path(cfg.path))
        return conv_frame_spec(config, sample_rate)

    return EncoderKind(name=name, build=build, frame_spec=spec, lora_targets=lora_targets)


def _emotion2vec_config(cfg: ParalinguisticEncoderConfig) -> emotion2vec.Emotion2vecConfig:
    if cfg.init is not None:
        return emotion2vec.Emotion2vecConfig(**cfg.init)
    return emotion2vec.read_config(resolve_path(cfg.path))


def _emotion2vec_build(cfg: ParalinguisticEncoderConfig, sample_rate: int) -> FrameEncoder:
    if cfg.init is not None:
        return emotion2vec.Emotion2vecFrames(emotion2vec.Emotion2vec(_emotion2vec_config(cfg)), sample_rate)
    return emotion2vec.Emotion2vecFrames.from_pretrained(resolve_path(cfg.path), sample_rate)


def _emotion2vec_spec(cfg: ParalinguisticEncoderConfig, sample_rate: int) -> FrameSpec:
    return emotion2vec.frame_spec(_emotion2vec_config(cfg), sample_rate)


register(EncoderKind(name="whisper", build=_whisper_build, frame_spec=_whisper_spec))
# emotion2vec / emotion2vec+ (the paper's encoder): `path` is a folder written by
# model/encoders/emotion2vec_convert.py; it normalises the waveform itself (config.normalize).
register(
    EncoderKind(
        name="emotion2vec", build=_emotion2vec_build, frame_spec=_emotion2vec_spec, lora_targets=("qkv", "out_proj")
    )
)
register(_waveform_kind("wavlm", "wavlm", lora_targets=("intermediate_dense", "output_dense")))
register(_waveform_kind("hubert", "hubert"))
register(_waveform_kind("wav2vec2", "wav2vec2"))
register(_waveform_kind("data2vec-audio", "data2vec-audio"))
