"""The batched log-mel front end equals transformers' WhisperFeatureExtractor."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_model_fixtures import tone
from transformers import WhisperFeatureExtractor

from model.features import MIN_SAMPLES, log_mel

TOLERANCE = 1e-4  # the front end's target: max abs difference on the real frames


def _batch(waves: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    lengths = torch.tensor([w.size for w in waves])
    batch = torch.zeros(len(waves), int(lengths.max()))
    for i, w in enumerate(waves):
        batch[i, : w.size] = torch.from_numpy(w)
    return batch, lengths


def _check(waves: list[np.ndarray], n_mels: int = 80) -> None:
    extractor = WhisperFeatureExtractor(feature_size=n_mels)
    batch, lengths = _batch(waves)
    fixed = log_mel(batch, lengths, n_mels, "fixed").features
    variable = log_mel(batch, lengths, n_mels, "variable").features
    for i, wave in enumerate(waves):
        padded = extractor(wave, sampling_rate=16_000, return_tensors="np").input_features[0]
        alone = extractor(wave, sampling_rate=16_000, padding="longest", return_tensors="np").input_features[0]
        assert fixed.shape[1:] == padded.shape
        assert np.abs(fixed[i].numpy() - padded).max() <= TOLERANCE  # every one of the 3000 frames
        real = alone.shape[1]
        assert np.abs(variable[i, :, :real].numpy() - alone).max() <= TOLERANCE
        # Past the clip, the variable window holds the clip's silence value.
        past = variable[i, :, real:]
        assert past.numel() == 0 or torch.all(past == variable[i].min())


def test_matches_extractor_on_tones_of_mixed_lengths():
    _check([tone(0.7, 180, seed=1), tone(2.31, 260, seed=2) * 0.1, tone(1.0, 90, seed=3)])


def test_matches_extractor_with_128_mels():  # whisper-large-v3's front end
    _check([tone(1.3, 200), tone(0.4, 310)], n_mels=128)


def test_matches_extractor_on_ravdess(ravdess_dir):
    import soundfile as sf

    files = sorted(ravdess_dir.glob("Actor_0[12]/*.flac"))[::20][:6]
    _check([sf.read(f, dtype="float32")[0] for f in files])


def test_too_short_and_bad_window_are_clear_errors():
    batch, lengths = _batch([tone(0.005)])
    with pytest.raises(ValueError, match=f"at least {MIN_SAMPLES} samples"):
        log_mel(batch, lengths)
    with pytest.raises(ValueError, match="window"):
        log_mel(*_batch([tone(1.0)]), window="30s")
