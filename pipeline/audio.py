"""Audio loading: any file soundfile reads -> 16 kHz mono float32, or a clear AudioError.

Callers quarantine the error as a Reject (reason = ``AudioError.reason``); nothing here drops
a record silently.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

SAMPLE_RATE = 16_000


class AudioError(ValueError):
    """Audio that cannot be used, with a short reason code for the rejects table."""

    def __init__(self, path: str | Path, reason: str, detail: str):
        self.path, self.reason = str(path), reason
        super().__init__(f"{path}: {detail}")


def to_mono_16k(samples: np.ndarray, sample_rate: int, path: str | Path = "<array>") -> np.ndarray:
    """Mix channels down and resample to 16 kHz (soxr, high quality)."""
    samples = np.asarray(samples, dtype=np.float32)
    if samples.ndim == 2:
        # soundfile gives (frames, channels)
        samples = samples.mean(axis=1)
    if samples.ndim != 1:
        raise AudioError(path, "bad_shape", f"expected mono or (frames, channels) audio, got shape {samples.shape}")
    if samples.size == 0:
        raise AudioError(path, "empty_audio", "the file holds no samples")
    if not np.isfinite(samples).all():
        raise AudioError(path, "nan_audio", "the audio holds NaN or infinite samples")
    if sample_rate != SAMPLE_RATE:
        samples = soxr.resample(samples, sample_rate, SAMPLE_RATE, quality="HQ").astype(np.float32)
    return samples


def load_audio(path: str | Path, start_s: float | None = None, end_s: float | None = None) -> np.ndarray:
    """Read ``path`` (optionally the span start_s..end_s) as 16 kHz mono float32 in [-1, 1]."""
    path = Path(path)
    if not path.is_file():
        raise AudioError(path, "missing_audio", "no such file")
    try:
        info = sf.info(str(path))
        start = int(round((start_s or 0.0) * info.samplerate))
        stop = int(round(end_s * info.samplerate)) if end_s is not None else None
        samples, sample_rate = sf.read(str(path), start=start, stop=stop, dtype="float32", always_2d=False)
    except (sf.LibsndfileError, RuntimeError, TypeError) as err:
        raise AudioError(path, "corrupt_audio", f"cannot decode audio: {err}") from err
    return to_mono_16k(samples, sample_rate, path)


def audio_duration(path: str | Path) -> tuple[float, int]:
    """(duration in seconds, native sample rate) from the header, without decoding."""
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError) as err:
        raise AudioError(path, "corrupt_audio", f"cannot read audio header: {err}") from err
    return info.frames / info.samplerate, info.samplerate
