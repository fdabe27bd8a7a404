"""What every audio encoder gives the adapters, and the frame arithmetic the collator needs."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

WINDOW_S = 30  # the paper's (and Whisper's) window: budgets are stated per 30 s


@dataclass
class EncodedAudio:
    hidden_states: tuple[torch.Tensor, ...]  # per layer (B, T, D); [0] = input embeddings, [-1] = output
    lengths: torch.Tensor  # (B,) valid frames per clip


@dataclass(frozen=True)
class FrameSpec:
    """Pure numbers (picklable, no weights): how many frames an encoder gives for n samples."""

    frames_per_30s: int  # frames for a 30 s window, e.g. 1500 for Whisper
    window_samples: int  # the fixed window; also the longest clip an encoder accepts in any mode
    conv_layers: tuple[tuple[int, int], ...] = ()  # (kernel, stride) of a wav2vec2-style front end
    mel_hop: int = 0  # > 0 for log-mel encoders (Whisper): frames = ceil(samples // hop / 2)
    mel_stride: int = 2  # Whisper's conv2 stride

    def frames(self, num_samples: int) -> int:
        n = min(num_samples, self.window_samples)
        if self.mel_hop:
            return math.ceil((n // self.mel_hop) / self.mel_stride)
        for kernel, stride in self.conv_layers:
            n = (n - kernel) // stride + 1
        return max(n, 0)


def masked_waveforms(waveforms: torch.Tensor, lengths: torch.Tensor, normalize: bool, eps: float) -> torch.Tensor:
    """(B, S) float waveforms, zero past each clip; with ``normalize``, zero-mean unit-variance
    over each clip's own samples (what a feature extractor does to the clip alone)."""
    keep = torch.arange(waveforms.shape[1], device=waveforms.device)[None, :] < lengths[:, None]  # (B, S)
    x = waveforms.float() * keep
    if normalize:
        count = lengths[:, None].float()
        mean = x.sum(1, keepdim=True) / count
        var = ((x - mean) * keep).pow(2).sum(1, keepdim=True) / count
        x = (x - mean) / torch.sqrt(var + eps) * keep
    return x


class FrameEncoder(nn.Module):
    """Base of the encoders: ``forward(waveforms, lengths, window) -> EncodedAudio``."""

    spec: FrameSpec
    hidden_size: int
    num_hidden_states: int  # len(EncodedAudio.hidden_states)

    def forward(self, waveforms: torch.Tensor, lengths: torch.Tensor, window: str) -> EncodedAudio:
        raise NotImplementedError
