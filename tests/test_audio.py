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


# ---- containers soundfile cannot read (MELD's mp4 clips): decoded with PyAV ----


def write_mp4(path, seconds: float, freqs=(440.0,), rate: int = 44_100, channels: int = 2, video: bool = True):
    """An MP4 (or .m4a) with an AAC audio stream of sines (one per equal part of the clip), and
    optionally an H.264 video stream, as MELD ships its clips. Written with PyAV, in the test."""
    import av

    n = int(rate * seconds)
    part = np.minimum(np.arange(n) * len(freqs) // n, len(freqs) - 1)
    wave = (0.5 * np.sin(2 * np.pi * np.asarray(freqs)[part] * np.arange(n) / rate)).astype(np.float32)
    layout = "stereo" if channels == 2 else "mono"
    with av.open(str(path), "w", format="mp4") as container:
        # Every stream is added before the first packet is written (the header lists them).
        picture = container.add_stream("libx264", rate=10) if video else None
        audio = container.add_stream("aac", rate=rate, layout=layout) if channels else None
        if picture is not None:
            picture.width, picture.height, picture.pix_fmt = 32, 32, "yuv420p"
            for i in range(int(seconds * 10)):
                frame = av.VideoFrame.from_ndarray(np.full((32, 32, 3), 8 * i % 256, np.uint8), format="rgb24")
                frame.pts = i
                container.mux(picture.encode(frame))
            container.mux(picture.encode(None))
        if audio is not None:
            planar = np.stack([wave] * channels)
            for start in range(0, n, 1024):  # AAC frames hold 1024 samples
                chunk = np.ascontiguousarray(planar[:, start : start + 1024])
                frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout=layout)
                frame.sample_rate, frame.pts = rate, start
                container.mux(audio.encode(frame))
            container.mux(audio.encode(None))
    return path


def peak_hz(samples: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / SAMPLE_RATE)[spectrum.argmax()])


@pytest.mark.parametrize(
    ("name", "video", "channels", "rate"), [("clip.mp4", True, 2, 44_100), ("a.m4a", False, 1, 48_000)]
)
def test_mp4_and_m4a_decode_to_16k_mono(tmp_path, name, video, channels, rate):
    path = write_mp4(tmp_path / name, 1.5, freqs=(330.0,), rate=rate, channels=channels, video=video)
    with pytest.raises(sf.LibsndfileError):
        sf.info(str(path))  # the case for PyAV: soundfile cannot read it
    audio = load_audio(path)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert abs(len(audio) - int(1.5 * SAMPLE_RATE)) <= 2  # AAC's padding trimmed
    assert peak_hz(audio[1600:-1600]) == pytest.approx(330.0, abs=2)
    assert 0.3 < np.sqrt(np.mean(audio[1600:-1600] ** 2)) < 0.4  # level kept (AAC is lossy)
    duration, native = audio_duration(path)
    assert duration == pytest.approx(1.5, abs=1e-3) and native == rate


def test_mp4_span(tmp_path):
    path = write_mp4(tmp_path / "two.mp4", 2.0, freqs=(300.0, 600.0))
    span = load_audio(path, start_s=1.2, end_s=1.9)
    assert abs(len(span) - int(0.7 * SAMPLE_RATE)) <= 2
    assert peak_hz(span) == pytest.approx(600.0, abs=3)
    assert peak_hz(load_audio(path, start_s=0.1, end_s=0.9)) == pytest.approx(300.0, abs=3)


def test_video_without_audio_and_corrupt_mp4(tmp_path):
    assert reason_of(write_mp4(tmp_path / "silent.mp4", 1.0, channels=0)) == "no_audio_stream"
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"junk" * 64)
    assert reason_of(bad) == "corrupt_audio"
    with pytest.raises(AudioError) as err:
        audio_duration(bad)
    assert err.value.reason == "corrupt_audio" and "PyAV" in str(err.value)


def test_normalise_level_sets_peak_or_rms_and_leaves_silence():
    from pipeline.audio import PEAK_TARGET_DBFS, RMS_TARGET_DBFS, normalise_level

    x = (0.01 * np.sin(np.arange(16000) / 5)).astype(np.float32)
    assert normalise_level(x, "none") is x
    peak = normalise_level(x, "peak")
    assert 20 * np.log10(np.abs(peak).max()) == pytest.approx(PEAK_TARGET_DBFS, abs=1e-4)
    rms = normalise_level(x, "rms")
    assert 20 * np.log10(np.sqrt(np.mean(rms.astype(np.float64) ** 2))) == pytest.approx(RMS_TARGET_DBFS, abs=1e-3)
    assert peak.dtype == rms.dtype == np.float32
    # one gain per clip: the waveform's shape is kept
    assert np.corrcoef(peak, x)[0, 1] == pytest.approx(1.0)
    silence = np.zeros(100, np.float32)
    assert not normalise_level(silence, "peak").any()
    with pytest.raises(ValueError):
        normalise_level(x, "loud")
