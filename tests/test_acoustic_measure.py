"""Raw measures on synthetic signals whose answers are known."""

from __future__ import annotations

import math

import numpy as np
import pytest
import soundfile as sf

from pipeline.acoustic.measure import (
    ProfileFlag,
    count_syllables,
    count_words,
    intensity_contour,
    measure_signal,
    theil_sen_slope,
)
from pipeline.audio import SAMPLE_RATE, load_audio

SR = SAMPLE_RATE


def voice(f0_start: float, seconds: float, f0_end: float | None = None, amplitude: float = 0.3, sr: int = SR):
    """A harmonic 'vowel' (5 harmonics, 1/k amplitudes) whose F0 glides exponentially start -> end."""
    f0_end = f0_start if f0_end is None else f0_end
    t = np.arange(int(seconds * sr)) / sr
    f0 = f0_start * (f0_end / f0_start) ** (t / seconds)  # constant semitones per second
    phase = 2 * np.pi * np.cumsum(f0) / sr
    x = sum(np.sin(k * phase) / k for k in range(1, 6))
    return (amplitude * x / np.abs(x).max()).astype(np.float32)


def silence(seconds: float, sr: int = SR) -> np.ndarray:
    return np.zeros(int(seconds * sr), dtype=np.float32)


def assert_no_nan(m) -> None:
    for name, value in m.model_dump().items():
        if isinstance(value, float):
            assert math.isfinite(value), f"{name} = {value}"


def test_steady_tone_known_f0_with_silence_trimmed():
    x = np.concatenate([silence(0.8), voice(200, 1.5), silence(0.8)])
    m = measure_signal(x)
    assert m.flags == []
    assert m.duration_s == pytest.approx(3.1, abs=0.01)
    assert m.speech_span_s == pytest.approx(1.5, abs=0.06)  # the 1.6 s of silence is trimmed
    assert m.f0_median_hz == pytest.approx(200, rel=0.01)
    assert m.f0_median_st == pytest.approx(12 * math.log2(2.0), abs=0.1)
    assert m.f0_range_st < 0.3
    assert abs(m.f0_slope_st_per_s) < 0.3
    assert m.voiced_fraction > 0.9
    assert m.pause_count == 0 and m.pause_share == 0
    assert m.hnr_db > 20  # a perfectly periodic signal
    assert m.jitter < 0.005
    assert_no_nan(m)


def test_glide_known_slope_and_range():
    # 150 -> 300 Hz in 2 s: 12 semitones, 6 st/s; the 10-90 % range of a linear (in st) glide is 80 % of it.
    m = measure_signal(np.concatenate([silence(0.3), voice(150, 2.0, 300), silence(0.3)]))
    assert m.f0_slope_st_per_s == pytest.approx(6.0, abs=0.3)
    assert m.f0_range_st == pytest.approx(9.6, abs=0.5)
    assert m.f0_median_hz == pytest.approx(150 * math.sqrt(2), rel=0.02)
    falling = measure_signal(voice(300, 2.0, 150))
    assert falling.f0_slope_st_per_s == pytest.approx(-6.0, abs=0.3)


def test_loudness_absolute_and_step():
    t = np.arange(SR) / SR
    sine = 0.5 * np.sin(2 * np.pi * 200 * t)
    assert measure_signal(sine).intensity_db == pytest.approx(20 * math.log10(0.5 / math.sqrt(2)), abs=0.1)
    loud, soft = measure_signal(voice(200, 1.0, amplitude=0.4)), measure_signal(voice(200, 1.0, amplitude=0.2))
    assert loud.intensity_db - soft.intensity_db == pytest.approx(20 * math.log10(2), abs=0.1)
    assert loud.f0_median_hz == pytest.approx(soft.f0_median_hz, rel=0.005)  # level does not move pitch
    # A 12 dB step halfway: frame intensities split in two plateaus, SD ~ half the step.
    step = np.concatenate([voice(200, 1.0, amplitude=0.4), voice(200, 1.0, amplitude=0.1)])
    m = measure_signal(step)
    assert m.intensity_sd_db == pytest.approx(6.0, abs=0.6)
    assert loud.intensity_sd_db < 0.5


def test_pause_inside_speech():
    x = np.concatenate([silence(0.5), voice(180, 0.6), silence(0.5), voice(180, 0.6), silence(0.5)])
    m = measure_signal(x)
    assert m.pause_count == 1
    assert m.pause_share == pytest.approx(0.5 / 1.7, abs=0.05)
    assert m.speech_duration_s == pytest.approx(1.2, abs=0.08)
    short_gap = measure_signal(np.concatenate([voice(180, 0.6), silence(0.1), voice(180, 0.6)]))
    assert short_gap.pause_count == 0  # under MIN_PAUSE_S: a stop closure, not a pause


def test_speaking_rate_from_transcript_and_from_signal():
    assert count_syllables("Kids are talking by the door") == 7
    assert count_syllables("Dogs are sitting by the door.") == 7
    assert count_syllables("123 ...") is None and count_syllables(None) is None
    assert count_words("I don't know, Joey!") == 4
    # Five 150 ms syllables separated by 80 ms dips (too short to be pauses).
    parts = []
    for _ in range(5):
        parts += [voice(200, 0.15), silence(0.08)]
    x = np.concatenate([silence(0.3), *parts[:-1], silence(0.3)])
    from_signal = measure_signal(x)
    assert from_signal.speaking_rate_source == "signal"
    assert from_signal.speaking_rate_sps * from_signal.speech_duration_s == pytest.approx(5, abs=0.01)
    from_text = measure_signal(x, transcript="one two three four five six")
    assert from_text.speaking_rate_source == "transcript"
    assert from_text.speaking_rate_sps * from_text.speech_duration_s == pytest.approx(6, abs=0.01)
    assert from_text.words_per_s == pytest.approx(from_text.speaking_rate_sps)


@pytest.mark.parametrize("x", [silence(1.0), np.full(SR, 1e-6, dtype=np.float32), np.zeros(0, dtype=np.float32)])
def test_silence_gives_none_and_flag(x):
    m = measure_signal(x)
    assert m.flags == [ProfileFlag.silent.value]
    assert m.intensity_db is None and m.f0_median_hz is None and m.speaking_rate_sps is None
    assert_no_nan(m)


def test_noise_is_unvoiced():
    noise = 0.1 * np.random.default_rng(0).standard_normal(SR).astype(np.float32)
    m = measure_signal(noise)
    assert ProfileFlag.unvoiced.value in m.flags
    assert m.f0_median_hz is None and m.hnr_db is None and m.speaking_rate_sps is None
    assert m.intensity_db == pytest.approx(-20, abs=0.5)
    assert_no_nan(m)


def test_very_short_audio():
    m = measure_signal(voice(200, 0.1))
    assert ProfileFlag.too_short.value in m.flags
    assert m.intensity_db is not None and m.f0_median_hz is None and m.pause_count is None
    assert_no_nan(m)


def test_clipped_audio_keeps_pitch_drops_voice_quality():
    clean = voice(200, 1.0, amplitude=1.0)
    clipped = np.clip(3.0 * clean, -1.0, 1.0)
    m = measure_signal(clipped)
    assert ProfileFlag.clipped.value in m.flags
    assert m.f0_median_hz == pytest.approx(200, rel=0.01)
    assert m.hnr_db is None and m.jitter is None and m.shimmer is None
    assert ProfileFlag.clipped.value not in measure_signal(clean).flags


@pytest.mark.parametrize(("sr", "channels"), [(8000, 1), (48000, 2)])
def test_files_at_other_rates_and_channels(tmp_path, sr, channels):
    x = np.concatenate([silence(0.3, sr), voice(220, 1.2, amplitude=0.3, sr=sr), silence(0.3, sr)])
    data = np.stack([x] * channels, axis=1) if channels > 1 else x
    path = tmp_path / f"tone_{sr}_{channels}.wav"
    sf.write(path, data, sr, subtype="PCM_16")
    m = measure_signal(load_audio(path))
    reference = measure_signal(np.concatenate([silence(0.3), voice(220, 1.2, amplitude=0.3), silence(0.3)]))
    assert m.f0_median_hz == pytest.approx(220, rel=0.01)
    assert m.duration_s == pytest.approx(1.8, abs=0.01)
    # 8 kHz keeps only harmonics below 4 kHz: a fraction of a dB of the level
    assert m.intensity_db == pytest.approx(reference.intensity_db, abs=0.5)
    assert m.flags == []


def test_intensity_contour_frames_and_floor():
    db = intensity_contour(np.zeros(SR))
    assert db.shape == (97,)  # (16000 - 640) // 160 + 1 frames of 40 ms every 10 ms
    assert np.all(db == -100.0)


def test_theil_sen_ignores_octave_jumps():
    t = np.linspace(0, 2, 200)
    y = 3.0 * t
    y[::5] += 12.0  # 20 % of frames an octave too high
    assert theil_sen_slope(t, y) == pytest.approx(3.0, abs=0.05)
