"""Audio loading: any audio file, or the audio of a video -> 16 kHz mono float32, or a clear AudioError.

soundfile (libsndfile) reads WAV, FLAC, OGG, MP3 and kin: the fast path. Anything it cannot read
(MP4/M4A/MOV/MKV/WebM containers, e.g. MELD's video clips) is decoded with PyAV (FFmpeg,
bundled in its wheel): the first audio stream, channels averaged and resampled like the rest.
Callers quarantine the error as a Reject (reason = ``AudioError.reason``); nothing here drops
a record silently.
"""

from __future__ import annotations

import struct
from enum import Enum
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

SAMPLE_RATE = 16_000
# Level targets (dBFS). Peak: -1 dB leaves headroom for resampling overshoot. RMS: -23 dBFS is the
# EBU R128 programme level, about where speech recorded with care sits.
PEAK_TARGET_DBFS = -1.0
RMS_TARGET_DBFS = -23.0


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


# Suffixes adapters look for when they search a folder for a clip, preferred first: extracted
# audio (the fast soundfile path) before the containers PyAV decodes.
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".mp4", ".m4a", ".mkv", ".webm", ".mov")


def load_audio(path: str | Path, start_s: float | None = None, end_s: float | None = None) -> np.ndarray:
    """Read ``path`` (optionally the span start_s..end_s) as 16 kHz mono float32 in [-1, 1]."""
    path = Path(path)
    if not path.is_file():
        raise AudioError(path, "missing_audio", "no such file")
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, TypeError) as err:
        samples, sample_rate = _decode_av(path, start_s, end_s, soundfile_error=err)
        return to_mono_16k(samples, sample_rate, path)
    try:
        start = int(round((start_s or 0.0) * info.samplerate))
        stop = int(round(end_s * info.samplerate)) if end_s is not None else None
        samples, sample_rate = sf.read(str(path), start=start, stop=stop, dtype="float32", always_2d=False)
    except (sf.LibsndfileError, RuntimeError, TypeError) as err:
        raise AudioError(path, "corrupt_audio", f"cannot decode audio: {err}") from err
    return to_mono_16k(samples, sample_rate, path)


def audio_duration(path: str | Path) -> tuple[float, int]:
    """(duration in seconds, native sample rate) from the header, without decoding.

    A WAV file cut short (its header declares more audio than the file holds) is an AudioError
    ``truncated_audio``: libsndfile quietly reads what is there, and a transcript of the whole
    clip over half its audio makes a false "speaking fast" cue."""
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError) as err:
        return _duration_av(Path(path), soundfile_error=err)
    declared = wav_declared_frames(path)
    if declared is not None and declared > info.frames:
        raise AudioError(
            path,
            "truncated_audio",
            f"header declares {declared / info.samplerate:.2f} s, the file holds {info.frames / info.samplerate:.2f} s "
            "(cut short while copying?)",
        )
    return info.frames / info.samplerate, info.samplerate


def _open_av(path: Path, soundfile_error: Exception):
    """(container, its first audio stream) with PyAV, or AudioError naming both decoders' complaints."""
    import av  # FFmpeg bindings: imported only for files soundfile cannot read

    try:
        container = av.open(str(path))
    except (av.FFmpegError, UnicodeDecodeError) as err:
        detail = f"cannot decode audio: soundfile: {soundfile_error}; PyAV: {err}"
        raise AudioError(path, "corrupt_audio", detail) from err
    if not container.streams.audio:
        container.close()
        raise AudioError(path, "no_audio_stream", "the file holds no audio stream (video only?)")
    return container, container.streams.audio[0]


def _duration_av(path: Path, soundfile_error: Exception) -> tuple[float, int]:
    import av

    container, stream = _open_av(path, soundfile_error)
    with container:
        rate = stream.codec_context.sample_rate
        if stream.duration is not None:
            return float(stream.duration * stream.time_base), rate
        if container.duration is not None:  # in av.time_base units (microseconds)
            return container.duration / av.time_base, rate
        try:  # no duration in the header (e.g. some WebM files): count the samples
            return sum(frame.samples for frame in container.decode(stream)) / rate, rate
        except av.FFmpegError as err:
            raise AudioError(path, "corrupt_audio", f"cannot decode audio: {err}") from err


def _decode_av(
    path: Path, start_s: float | None, end_s: float | None, soundfile_error: Exception
) -> tuple[np.ndarray, int]:
    """(samples (frames, channels) float32 at the native rate, that rate) of the first audio stream."""
    import av

    container, stream = _open_av(path, soundfile_error)
    with container:
        rate = stream.codec_context.sample_rate
        # Planar float at the stream's own rate and layout: downmix and resampling stay with
        # to_mono_16k (soxr), exactly as for files soundfile reads.
        convert = av.AudioResampler(format="fltp", rate=rate)
        chunks, first_s = [], None
        try:
            if start_s:
                # Seeks to a packet at or before start_s; the samples before it are cut below.
                container.seek(int(start_s / stream.time_base), stream=stream, backward=True)
            for frame in container.decode(stream):
                if first_s is None:
                    first_s = float(frame.time or 0.0)
                for out in convert.resample(frame):
                    chunks.append(out.to_ndarray())  # (channels, samples)
                if end_s is not None and first_s + sum(c.shape[1] for c in chunks) / rate >= end_s:
                    break
            for out in convert.resample(None):
                chunks.append(out.to_ndarray())
        except av.FFmpegError as err:
            raise AudioError(path, "corrupt_audio", f"cannot decode audio: {err}") from err
        if not chunks:
            raise AudioError(path, "empty_audio", "the audio stream holds no samples")
        samples = np.concatenate(chunks, axis=1).T  # (frames, channels)
        first_s = first_s or 0.0
        # The last AAC packet is padded to a whole frame: keep what the stream says it holds.
        if stream.duration is not None:
            samples = samples[: int(round((float(stream.duration * stream.time_base) - first_s) * rate))]
        start = max(0, int(round(((start_s or 0.0) - first_s) * rate)))
        stop = int(round((end_s - first_s) * rate)) if end_s is not None else None
        return np.ascontiguousarray(samples[start:stop]), rate


# Streaming writers that do not know the length put 0 or 0xFFFFFFFF in the data chunk's size.
_UNKNOWN_SIZES = (0, 0xFFFFFFFF)


def wav_declared_frames(path: str | Path) -> int | None:
    """Frames a RIFF/WAVE header declares in its data chunk; None for other formats or an unknown size."""
    with open(path, "rb") as f:
        head = f.read(12)
        if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return None
        block_align = None
        while header := f.read(8):
            if len(header) < 8:
                return None
            chunk, size = header[:4], struct.unpack("<I", header[4:])[0]
            if chunk == b"fmt ":
                fmt = f.read(size + size % 2)
                block_align = struct.unpack("<H", fmt[12:14])[0] if len(fmt) >= 14 else None
            elif chunk == b"data":
                if size in _UNKNOWN_SIZES or not block_align:
                    return None
                return size // block_align
            else:
                f.seek(size + size % 2, 1)  # chunks are word-aligned
    return None


class Level(str, Enum):
    """How a waveform's level is set before measuring it or encoding it.

    Corpora differ in recording gain: RAVDESS keeps it (angry is loud) while other corpora peak-
    normalise every file, so absolute loudness cues learned on one invert on the other
    (../shared/DESIGN.md). Normalising every clip the same way on both sides removes that cue.
    """

    none = "none"  # as recorded
    peak = "peak"  # loudest sample at PEAK_TARGET_DBFS
    rms = "rms"  # root mean square over the clip at RMS_TARGET_DBFS (values may exceed 1: floats, never clipped)


def normalise_level(samples: np.ndarray, level: Level | str) -> np.ndarray:
    """``samples`` scaled to ``level``'s target; digital silence is returned unchanged."""
    level = Level(level)
    if level is Level.none:
        return samples
    x = samples.astype(np.float64)
    reference = np.abs(x).max() if level is Level.peak else np.sqrt(np.mean(x**2))
    if reference == 0.0:
        return samples
    target = PEAK_TARGET_DBFS if level is Level.peak else RMS_TARGET_DBFS
    return (x * (10 ** (target / 20) / reference)).astype(np.float32)
