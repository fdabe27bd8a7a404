"""Per-speaker z-scores of feature vectors: each voice measured against itself.

    x = speaker_zscores(features, [u.speaker for u in utterances])   # (N, D) -> (N, D)

The same idea inside the AudioLLM (``adapter.speaker_norm``): ``SpeakerNorm`` z-scores a
stream's encoder states, each hidden layer it reads, by the speaker's mean and spread over every
valid frame of their clips, before the layer mix and the adapter. ``SpeakerMoments`` gathers
those statistics from unlabelled clips; ``speaker_key`` names a speaker across datasets.

Transductive, like the acoustic profile (pipeline.acoustic.normalise): a speaker's mean and
spread come from their own utterances in the set given, labels never looked at, so a speaker the
model has never heard is normalised by nothing more than unlabelled audio of them. Normalise the
training set and the test set each on its own: a test speaker's statistics come from the test set.

A speaker with fewer than MIN_SPEAKER_UTTERANCES rows is normalised by the statistics of the whole
set (their mean and spread would be mostly noise), as the acoustic profile falls back to the corpus.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from pipeline.acoustic.normalise import MIN_SPEAKER_UTTERANCES

SD_EPSILON = 1e-8  # a feature constant within a speaker: z = 0, never a division by zero
MIN_STATE_STD = 1e-4  # an encoder feature (nearly) constant over a speaker's frames is centred, not blown up
UNKNOWN_SPEAKER = ""  # a clip whose speaker is not known is normalised by the pooled statistics


def _z(x: np.ndarray, mean: np.ndarray, sd: np.ndarray) -> np.ndarray:
    return (x - mean) / np.where(sd > SD_EPSILON, sd, 1.0)


def speaker_zscores(
    features: np.ndarray, speakers: Sequence[str], min_utterances: int = MIN_SPEAKER_UTTERANCES
) -> np.ndarray:
    """``features`` (N, D) with each row z-scored by its speaker's statistics (NaN-aware)."""
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] != len(speakers):
        raise ValueError(f"features of shape {x.shape} do not match {len(speakers)} speakers")
    out = np.empty_like(x)
    if not len(speakers):
        return out
    with warnings.catch_warnings():  # a column all NaN for one speaker stays NaN (imputed downstream)
        warnings.simplefilter("ignore", RuntimeWarning)
        pooled = (np.nanmean(x, axis=0), np.nanstd(x, axis=0))
        names = np.asarray(speakers)
        for speaker in dict.fromkeys(speakers):
            rows = names == speaker
            if rows.sum() >= min_utterances:
                stats = (np.nanmean(x[rows], axis=0), np.nanstd(x[rows], axis=0))
            else:
                stats = pooled
            out[rows] = _z(x[rows], *stats)
    return out


def speaker_key(dataset: str, speaker: str) -> str:
    """One speaker across datasets ('Actor_01' in RAVDESS is not 'Actor_01' elsewhere)."""
    return f"{dataset}/{speaker}" if speaker else UNKNOWN_SPEAKER


@dataclass
class _Sums:
    clips: int = 0
    frames: int = 0
    total: torch.Tensor | float = 0.0  # (L, D) once a clip is added
    squares: torch.Tensor | float = 0.0

    def moments(self) -> tuple[torch.Tensor, torch.Tensor]:
        mean = self.total / self.frames
        std = (self.squares / self.frames - mean * mean).clamp(min=0).sqrt().clamp(min=MIN_STATE_STD)
        return mean.float(), std.float()


class SpeakerMoments:
    """Running per-speaker sums of encoder states: frames, sum and sum of squares per layer.

    ``add`` takes one batch's states, a list of L tensors (B, T, D), the valid frames per clip
    and the clip's speaker key; ``stats`` turns them into means and spreads. With every clip given
    one key, ``pooled`` is the plain mean and spread over all frames (the adapters' input_norm)."""

    def __init__(self) -> None:
        self._sums: dict[str, _Sums] = {}

    def add(self, states: list[torch.Tensor], valid: torch.Tensor, speakers: list[str]) -> None:
        stacked = torch.stack(states, dim=1).double()  # (B, L, T, D)
        keep = torch.arange(stacked.shape[2], device=stacked.device)[None, :] < valid[:, None]  # (B, T)
        for i, speaker in enumerate(speakers):
            x = stacked[i][:, keep[i]]  # (L, frames, D)
            acc = self._sums.setdefault(speaker, _Sums())
            acc.clips += 1
            acc.frames += x.shape[1]
            acc.total = acc.total + x.sum(1).cpu()
            acc.squares = acc.squares + (x * x).sum(1).cpu()

    @property
    def clips(self) -> int:
        return sum(acc.clips for acc in self._sums.values())

    def pooled(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, std), each (L, D), over every frame added."""
        if not self._sums:
            raise ValueError("no clips to measure speakers on")
        everyone = _Sums(
            frames=sum(acc.frames for acc in self._sums.values()),
            total=sum(acc.total for acc in self._sums.values()),
            squares=sum(acc.squares for acc in self._sums.values()),
        )
        return everyone.moments()

    def stats(
        self, min_clips: int = MIN_SPEAKER_UTTERANCES
    ) -> tuple[dict[str, tuple[torch.Tensor, torch.Tensor]], tuple[torch.Tensor, torch.Tensor]]:
        """(per speaker with at least ``min_clips`` clips: (mean, std) each (L, D); pooled (mean, std))."""
        pooled = self.pooled()
        table = {
            speaker: acc.moments()
            for speaker, acc in self._sums.items()
            if acc.clips >= min_clips and speaker != UNKNOWN_SPEAKER
        }
        return table, pooled


class SpeakerNorm(nn.Module):
    """Z-scores one stream's encoder states by their speaker's statistics, layer by layer.

    The pooled statistics (every training clip) are buffers saved with the model: a speaker with
    too few clips, or none known (``predict`` on loose files), is normalised by them. The
    per-speaker table is not saved: it is measured on the clips at hand (the trainer measures the
    training and evaluation speakers, ``emoreason eval`` the test speakers), labels never read."""

    def __init__(self, layers: int, dim: int):
        super().__init__()
        self.register_buffer("pooled_mean", torch.zeros(layers, dim))
        self.register_buffer("pooled_std", torch.ones(layers, dim))
        self.register_buffer("fitted", torch.tensor(False))
        self.table: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def set_pooled(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        self.pooled_mean.copy_(mean)
        self.pooled_std.copy_(std)
        self.fitted.fill_(True)

    def forward(self, states: list[torch.Tensor], speakers: list[str]) -> list[torch.Tensor]:
        if not bool(self.fitted):
            raise ValueError(
                "adapter.speaker_norm is on but its statistics were never fitted: train with model.train "
                "(which fits them first) or call AudioLLM.fit_speaker_norm"
            )
        stats = [self.table.get(s, (self.pooled_mean, self.pooled_std)) for s in speakers]
        mean = torch.stack([m for m, _ in stats]).to(states[0].device, states[0].dtype)  # (B, L, D)
        std = torch.stack([sd for _, sd in stats]).to(states[0].device, states[0].dtype)
        return [(h - mean[:, layer, None, :]) / std[:, layer, None, :] for layer, h in enumerate(states)]
