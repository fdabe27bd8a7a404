"""Adapters: group encoder frames to a token budget, then an MLP (two hidden layers, SiLU).

The budget is a rate: ``tokens_per_30s`` (paper: 100 speech, 10 emotion) gives a group size of
frames per token (1500 / 100 = 15 Whisper frames stacked into one token). In the fixed window
every clip gets the full window's tokens; in the variable window the count scales with the
clip's duration (a 4 s clip: 200 Whisper frames -> 14 speech tokens). ``TokenCounter`` is that
arithmetic as plain numbers, so the collator (in a data-loader worker) can count placeholders
without the model; the adapters then emit exactly that many tokens per clip.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from model.config import AudioLLMConfig
from model.encoders.base import FrameSpec

SEPARATOR_INIT_STD = 0.02  # like token embeddings of most decoders
INPUT_NORM_MIN_STD = 1e-4  # a feature constant over the fitting clips is centred, not blown up


def group_size(spec: FrameSpec, tokens_per_30s: int, stream: str) -> int:
    if spec.frames_per_30s % tokens_per_30s:
        raise ValueError(
            f"{stream}: tokens_per_30s={tokens_per_30s} does not divide the encoder's "
            f"{spec.frames_per_30s} frames per 30 s; pick a divisor (e.g. 100 -> groups of 15)"
        )
    return spec.frames_per_30s // tokens_per_30s


@dataclass(frozen=True)
class StreamPlan:
    spec: FrameSpec
    window: str
    group: int

    def tokens(self, num_samples: int) -> int:
        n = self.spec.window_samples if self.window == "fixed" else num_samples
        return max(1, math.ceil(self.spec.frames(n) / self.group))


@dataclass(frozen=True)
class TokenCounter:
    """Audio tokens per clip, from the number of samples alone (picklable; no weights)."""

    speech: StreamPlan
    emotion: StreamPlan
    fusion: str
    separators: bool

    @property
    def max_samples(self) -> int:
        """Longer clips are truncated (Whisper cannot see past its window)."""
        return min(self.speech.spec.window_samples, self.emotion.spec.window_samples)

    def stream_tokens(self, num_samples: int) -> tuple[int, int]:
        speech = self.speech.tokens(num_samples)
        # Feature fusion pairs tokens one to one: the emotion stream follows the speech count.
        emotion = speech if self.fusion == "feature" else self.emotion.tokens(num_samples)
        return speech, emotion

    def __call__(self, num_samples: int) -> int:
        speech, emotion = self.stream_tokens(num_samples)
        if self.fusion == "feature":
            return speech
        return speech + emotion + (2 if self.separators else 0)


def build_counter(cfg: AudioLLMConfig, speech_spec: FrameSpec, emotion_spec: FrameSpec) -> TokenCounter:
    speech_group = group_size(speech_spec, cfg.speech.tokens_per_30s, "speech")
    # In feature fusion the emotion stream is grouped at the speech token rate.
    emotion_rate = cfg.speech.tokens_per_30s if cfg.fusion.mode == "feature" else cfg.emotion.tokens_per_30s
    return TokenCounter(
        speech=StreamPlan(speech_spec, cfg.speech.window, speech_group),
        emotion=StreamPlan(emotion_spec, cfg.emotion.window, group_size(emotion_spec, emotion_rate, "emotion")),
        fusion=cfg.fusion.mode,
        separators=cfg.fusion.separators and cfg.fusion.mode == "sequence",
    )


class Adapter(nn.Module):
    """(B, T, D) frames -> (B, N, out) tokens; clip i's first ``counts[i]`` tokens are its own."""

    def __init__(
        self,
        in_dim: int,
        group: int,
        grouping: str,
        hidden: list[int],
        out_dim: int,
        separator: bool,
        input_norm: bool = False,
    ):
        super().__init__()
        self.group, self.grouping = group, grouping
        self.input_norm = input_norm
        if input_norm:  # fitted by set_input_norm before training; saved with the checkpoint
            self.register_buffer("input_mean", torch.zeros(in_dim))
            self.register_buffer("input_std", torch.ones(in_dim))
            self.register_buffer("input_norm_fitted", torch.tensor(False))
        width = in_dim * group if grouping == "stack" else in_dim
        h1, h2 = hidden
        self.mlp = nn.Sequential(nn.Linear(width, h1), nn.SiLU(), nn.Linear(h1, h2), nn.SiLU(), nn.Linear(h2, out_dim))
        self.separator = nn.Parameter(torch.randn(out_dim) * SEPARATOR_INIT_STD) if separator else None

    def set_input_norm(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        if not self.input_norm:
            raise ValueError("this adapter was built without input_norm")
        self.input_mean.copy_(mean)
        self.input_std.copy_(std.clamp(min=INPUT_NORM_MIN_STD))
        self.input_norm_fitted.fill_(True)

    def forward(self, frames: torch.Tensor, lengths: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
        if self.input_norm:
            if not bool(self.input_norm_fitted):
                raise ValueError(
                    "adapter.input_norm is on but its statistics were never fitted: train with model.train "
                    "(which fits them first) or call AudioLLM.fit_input_norm"
                )
            frames = (frames - self.input_mean.to(frames.dtype)) / self.input_std.to(frames.dtype)
        batch, _, dim = frames.shape
        n_max = int(counts.max())
        span = n_max * self.group
        x = nn.functional.pad(frames, (0, 0, 0, max(0, span - frames.shape[1])))[:, :span]  # (B, N*g, D)
        # Frames past a clip's audio (its neighbours' padding) or past its budget are zeroed.
        limit = torch.minimum(lengths, counts * self.group)
        keep = (torch.arange(span, device=x.device)[None, :] < limit[:, None]).to(x.dtype)  # (B, N*g)
        x = x * keep[..., None]
        if self.grouping == "stack":
            grouped = x.reshape(batch, n_max, self.group * dim)  # (B, N, g*D)
        else:
            total = x.reshape(batch, n_max, self.group, dim).sum(2)
            grouped = total / keep.reshape(batch, n_max, self.group).sum(2).clamp(min=1)[..., None]  # (B, N, D)
        return self.mlp(grouped)  # (B, N, out)
