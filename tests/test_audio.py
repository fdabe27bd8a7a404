"""Audio loading: any rate and channel count -> 16 kHz mono float32, bad files -> AudioError with a reason."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from pipeline.audio import SAMPLE_RATE, AudioError, audio_duration, load_audio, to_mono_16k


def tone(rate: int, seconds: float, channels: int = 1) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    wave = 0.5 * np.sin(2 * np.pi * 440.0 * t).astype(np.float32)
    return np.stack([wave] * channels, axis=1) if channels > 1 else wave


@pytest.mark.parametrize(("rate", "channels", "fmt"), [(8000, 1, "wav"), (48000, 2, "flac"), (16000, 1, "flac")])
def test_any_rate_and_channels_become_16k_mono(tmp_path, rate, channels, fmt):
    path = tmp_path / f"a.{fmt}"
    sf.write(path, tone(rate, 1.5, channels), rate)
    audio = load_audio(path)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert abs(len(audio) - int(1.5 * SAMPLE_RATE)) <= 2
    # the tone keeps its level through mixing and resampling
    assert 0.3 < np.sqrt(np.mean(audio[2000:-2000] ** 2)) < 0.4
    assert audio_duration(path) == (pytest.approx(1.5), rate)


def test_stereo_channels_are_averaged(tmp_path):
    left = tone(SAMPLE_RATE, 0.5)
    path = tmp_path / "lr.wav"
    sf.write(path, np.stack([left, np.zeros_like(left)], axis=1), SAMPLE_RATE)
    np.testing.assert_allclose(load_audio(path), left / 2, atol=1e-4)


def test_span(tmp_path):
    path = tmp_path / "a.wav"
    sf.write(path, tone(48000, 2.0), 48000)
    assert abs(len(load_audio(path, start_s=0.5, end_s=1.25)) - int(0.75 * SAMPLE_RATE)) <= 2


def reason_of(path) -> str:
    with pytest.raises(AudioError) as err:
        load_audio(path)
    assert str(path) in str(err.value)
    return err.value.reason


def test_missing_file(tmp_path):
    assert reason_of(tmp_path / "nope.wav") == "missing_audio"


def test_corrupt_file(tmp_path):
    path = tmp_path / "bad.wav"
    path.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunk" * 4)
    assert reason_of(path) == "corrupt_audio"
    with pytest.raises(AudioError) as err:
        audio_duration(path)
    assert err.value.reason == "corrupt_audio"


def test_zero_byte_file(tmp_path):
    path = tmp_path / "zero.wav"
    path.write_bytes(b"")
    assert reason_of(path) == "corrupt_audio"


def test_file_without_samples(tmp_path):
    path = tmp_path / "empty.wav"
    sf.write(path, np.zeros(0, dtype=np.float32), SAMPLE_RATE)
    assert reason_of(path) == "empty_audio"


def test_nan_samples(tmp_path):
    path = tmp_path / "nan.wav"
    samples = tone(SAMPLE_RATE, 0.2)
    samples[100] = np.nan
    sf.write(path, samples, SAMPLE_RATE, subtype="FLOAT")
    assert reason_of(path) == "nan_audio"


def test_to_mono_16k_rejects_bad_arrays():
    with pytest.raises(AudioError) as err:
        to_mono_16k(np.zeros((2, 2, 2)), SAMPLE_RATE)
    assert err.value.reason == "bad_shape"
