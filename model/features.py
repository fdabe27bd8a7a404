"""Batched Whisper log-mel front end in torch, equal to transformers' WhisperFeatureExtractor.

Same mel filters (taken from the extractor itself), window, hop and normalisation (clamp at the
clip's maximum minus 8 log10 units, then (x + 4) / 4). Two windows:

- ``fixed``: what the extractor's default path (zero-padding to 30 s) returns, without computing
  the STFT of the padding: frames past the audio are all-zero windows, whose value is exactly the
  clip's floor, so we compute the real frames (plus the few that straddle the end) and fill.
- ``variable``: what the extractor returns for the clip alone (``padding="longest"``): frames
  over the real length, the end reflect-padded like ``torch.stft(center=True)``.

Frames beyond a clip's length in a batch hold the clip's floor value, i.e. what silence gives.
Runs on whatever device the waveforms are on (a GPU computes a batch in well under a millisecond).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
from transformers import WhisperFeatureExtractor

from pipeline.audio import PEAK_TARGET_DBFS, RMS_TARGET_DBFS, Level

SAMPLE_RATE = 16_000
N_FFT = 400  # 25 ms window at 16 kHz (Whisper)
HOP = 160  # 10 ms hop: 100 mel frames per second
WINDOW_S = 30  # Whisper's context: 30 s = 3000 mel frames = 1500 encoder frames
DYNAMIC_RANGE = 8.0  # log10 units kept below each clip's maximum (Whisper's normalisation)
LOG_FLOOR = 1e-10  # clamp before log10, as Whisper
MIN_SAMPLES = N_FFT // 2 + 1  # reflect padding needs more samples than the half window
OFFSET, SCALE = 4.0, 4.0  # (log_spec + 4) / 4 maps speech to about [-1, 1]


def mel_frames(num_samples: int) -> int:
    """Frames the extractor returns for ``num_samples`` (it drops the STFT's last frame)."""
    return num_samples // HOP


@lru_cache(maxsize=4)
def _mel_filters(n_mels: int) -> torch.Tensor:
    # Take the filters from the extractor itself so any change upstream is followed here.
    filters = WhisperFeatureExtractor(feature_size=n_mels, sampling_rate=SAMPLE_RATE, n_fft=N_FFT).mel_filters
    return torch.from_numpy(np.ascontiguousarray(filters.T)).float()  # (n_mels, n_fft // 2 + 1)


@dataclass(frozen=True)
class LogMel:
    features: torch.Tensor  # (B, n_mels, T) float32
    lengths: torch.Tensor  # (B,) real frames per clip (int64)


def log_mel(
    waveforms: torch.Tensor,
    lengths: torch.Tensor,
    n_mels: int = 80,
    window: str = "variable",
    num_frames: int | None = None,
) -> LogMel:
    """Log-mel of a zero-padded batch ``waveforms`` (B, S) with real sample counts ``lengths``.

    ``num_frames`` sets the output length (default: the longest clip's frames, or 30 s for the
    fixed window); frames past a clip's audio hold its floor value.
    """
    if window not in ("fixed", "variable"):
        raise ValueError(f"window must be 'fixed' or 'variable', got {window!r}")
    waveforms = waveforms.float()
    device = waveforms.device
    lengths = lengths.to(device=device, dtype=torch.long)
    if int(lengths.min().item()) < MIN_SAMPLES:
        raise ValueError(
            f"clips need at least {MIN_SAMPLES} samples for the STFT's reflect padding, got {lengths.tolist()}"
        )
    frames = lengths // HOP  # (B,)
    if num_frames is None:
        num_frames = mel_frames(WINDOW_S * SAMPLE_RATE) if window == "fixed" else int(frames.max().item())
    half = N_FFT // 2
    # Frames 0..max_real+1 are the only ones that touch audio; compute just those (plus one for
    # the dropped last STFT frame), then fill the rest with each clip's floor.
    computed = min(num_frames, int(frames.max().item()) + 2)
    span = computed * HOP + 2 * half  # samples the STFT (center=False) needs for `computed` frames
    # Build every clip's STFT input with one gather: sample j = p - half of clip i, reflected at
    # the start (torch.stft(center=True)) and, in the variable window, at the clip's own end; the
    # fixed window sees zeros past the end, as the extractor's 30 s zero padding.
    j = torch.arange(span, device=device)[None, :] - half  # (1, span)
    n = lengths[:, None]  # (B, 1)
    idx = j.abs()
    if window == "variable":
        idx = torch.where(idx >= n, 2 * (n - 1) - idx, idx)
        inside = j < n + half
    else:
        inside = j < n
    idx = idx.clamp(0, waveforms.shape[1] - 1).expand(waveforms.shape[0], -1)
    padded = torch.gather(waveforms, 1, idx) * inside
    hann = torch.hann_window(N_FFT, device=device)
    stft = torch.stft(padded, N_FFT, HOP, window=hann, center=False, return_complex=True)  # (B, F, frames+1)
    power = (stft[..., :computed].abs() ** 2).contiguous()
    mel = _mel_filters(n_mels).to(device) @ power  # (B, n_mels, computed)
    log_spec = torch.clamp(mel, min=LOG_FLOOR).log10()
    frame_idx = torch.arange(computed, device=device)
    real = frame_idx[None, :] < frames[:, None]  # (B, computed)
    if window == "variable":
        log_spec = log_spec.masked_fill(~real[:, None, :], -torch.inf)
    peak = log_spec.amax(dim=(1, 2), keepdim=True)  # (B, 1, 1)
    floor = peak - DYNAMIC_RANGE
    log_spec = torch.maximum(log_spec, floor)
    # What an all-zero window gives: the clamp, or the clip's floor when that is higher.
    floor = torch.clamp(floor, min=math.log10(LOG_FLOOR))
    # Normalise the computed frames, then fill the rest (most of a 30 s window) with one write.
    out = torch.empty(waveforms.shape[0], n_mels, num_frames, device=device)
    out[..., :computed] = (log_spec[..., :num_frames] + OFFSET) / SCALE
    silence = (floor + OFFSET) / SCALE  # (B, 1, 1)
    out[..., computed:] = silence
    if window == "variable":
        # Frames past the clip (longer clips in the batch) read as silence.
        past = torch.arange(num_frames, device=device)[None, None, :] >= frames[:, None, None]
        out = torch.where(past, silence, out)
    return LogMel(features=out, lengths=torch.clamp(frames, max=num_frames))


def level_waveforms(waveforms: torch.Tensor, lengths: torch.Tensor, level: Level) -> torch.Tensor:
    """Each clip of a zero-padded batch (B, S) scaled to ``level``'s target over its real samples
    (as ``pipeline.audio.normalise_level`` does for one clip); digital silence is left as it is."""
    level = Level(level)
    if level is Level.none:
        return waveforms
    valid = (torch.arange(waveforms.shape[1], device=waveforms.device)[None, :] < lengths[:, None]).to(waveforms.dtype)
    x = waveforms.double() * valid
    if level is Level.peak:
        reference, target = x.abs().amax(dim=1), PEAK_TARGET_DBFS
    else:
        reference, target = (x.square().sum(dim=1) / lengths.clamp(min=1)).sqrt(), RMS_TARGET_DBFS
    scale = torch.where(reference > 0, 10 ** (target / 20) / reference.clamp(min=1e-30), torch.ones_like(reference))
    return (x * scale[:, None]).to(waveforms.dtype)
