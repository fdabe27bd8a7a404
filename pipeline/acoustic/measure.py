"""Raw prosodic measures of one signal (16 kHz mono float32), before any normalisation.

One pass per utterance, cheapest first: a numpy intensity contour finds speech and trims leading
and trailing silence; Praat's autocorrelation pitch (parselmouth) runs on the trimmed signal
only; HNR is read off that pitch track (the autocorrelation peak r of each voiced frame gives
HNR = 10·log10(r / (1 − r)), Praat's own definition), which avoids the separate harmonicity pass
that costs ~80 % of a profile (../shared/DESIGN.md). Jitter and shimmer reuse the same pitch.

Anything that cannot be measured is None with a flag saying why; nothing here returns NaN.
"""

from __future__ import annotations

import math
from enum import Enum

import numpy as np
import parselmouth
from parselmouth.praat import call
from pydantic import Field

from pipeline.audio import SAMPLE_RATE
from pipeline.plausible import LEVEL_RANGE_DBFS, RATE_RANGE_SPS, count_syllables, count_words
from pipeline.records import Record

MEASURE_VERSION = "1"  # bump when a measure's definition changes: cached raw measures are recomputed

# ---- framing of the intensity contour ----
HOP_S = 0.010  # 10 ms: Praat's default pitch/intensity time step, so both contours align
WINDOW_S = 0.040  # 40 ms: ≈ Praat's intensity window for a 75 Hz floor (3.2 / 75 Hz = 43 ms)
SILENCE_FLOOR_DB = -100.0  # dBFS given to digital silence instead of -inf

# ---- speech / silence ----
SILENT_DBFS = -60.0  # an utterance whose loudest frame stays below this holds no usable speech
PEAK_PERCENTILE = 98.0  # reference "peak" level of an utterance: robust to a few clicks
SPEECH_BELOW_PEAK_DB = 25.0  # frames within 25 dB of the peak are speech: Praat's silence default
TRIM_PAD_S = 0.050  # keep 50 ms around the speech span so pitch windows see whole onsets/offsets
MIN_SPEECH_S = 0.25  # shorter spans hold one syllable at most: no pitch range, slope or rate
MIN_PAUSE_S = 0.25  # silent pause threshold in fluency research (De Jong & Bosker 2013: 250 ms)

# ---- pitch (Praat autocorrelation) ----
PITCH_FLOOR_HZ = 75.0  # Praat default; lower floors lengthen the window (3 periods) and slow it down
PITCH_CEILING_HZ = 600.0  # emotional (angry, happy, fearful) female speech reaches 500+ Hz
PITCH_CANDIDATES = 8  # Praat's 15 is for polyphonic signals; one voice needs few (-25 % time)
REFERENCE_HZ = 100.0  # semitone reference: f0_median_st = 12·log2(F0 / 100 Hz)
MIN_VOICED_FRAMES = 10  # 100 ms of voicing: fewer frames give no meaningful median, range or slope
RANGE_PERCENTILES = (10.0, 90.0)  # pitch range between these percentiles: robust to octave errors
MAX_SLOPE_FRAMES = 150  # Theil-Sen on at most this many frames (11k pairs) keeps the slope ~1 ms

# ---- voice quality ----
MIN_VOICED_S_FOR_QUALITY = 0.5  # jitter/shimmer/HNR over less voicing than this vary too much to cite
MAX_STRENGTH = 0.9999  # caps HNR at 40 dB where the autocorrelation peak reaches 1
JITTER_ARGS = (0.0, 0.0, 0.0001, 0.02, 1.3)  # whole signal, Praat's standard period limits
SHIMMER_ARGS = (*JITTER_ARGS, 1.6)

# ---- clipping ----
NEAR_PEAK = 0.99  # a plateau sample lies within 1 % of the absolute peak ...
PLATEAU_TOLERANCE = 1e-6  # ... and repeats the previous sample (relative to the peak)
CLIPPED_SHARE = 0.001  # flag at 0.1 % of samples (48 in a 3 s clip): enough to bias voice quality

# ---- syllable nuclei (speaking rate without a transcript, after De Jong & Wempe 2009) ----
MIN_DIP_DB = 2.0  # two intensity peaks are separate syllables when the contour dips 2 dB between them


class ProfileFlag(str, Enum):
    silent = "silent"  # nothing above SILENT_DBFS: every measure but the duration is None
    too_short = "too_short"  # speech span under MIN_SPEECH_S: loudness only
    unvoiced = "unvoiced"  # under MIN_VOICED_FRAMES voiced frames: no pitch or voice quality
    clipped = "clipped"  # clipping plateaus: voice quality is None, loudness reads low
    short_voicing = "short_voicing"  # voiced, but too little for jitter/shimmer/HNR
    implausible_rate = "implausible_rate"  # speaking rate outside plausible.RATE_RANGE_SPS: dropped
    implausible_level = "implausible_level"  # speech level outside plausible.LEVEL_RANGE_DBFS: dropped


class Measurements(Record):
    """What one signal measures, in physical units; None = not measurable (see `flags`)."""

    duration_s: float = Field(description="length of the signal as given, silence included (s)")
    speech_span_s: float | None = Field(None, description="first to last speech frame, after trimming (s)")
    speech_duration_s: float | None = Field(None, description="speech span minus pauses (s)")
    f0_median_hz: float | None = Field(None, description="median F0 of voiced frames (Hz)")
    f0_median_st: float | None = Field(None, description="median F0 in semitones re 100 Hz")
    f0_range_st: float | None = Field(None, description="F0 10th-90th percentile range (semitones)")
    f0_slope_st_per_s: float | None = Field(None, description="Theil-Sen slope of F0 over time (semitones/s)")
    voiced_fraction: float | None = Field(None, description="share of pitch frames in the speech span that are voiced")
    intensity_db: float | None = Field(None, description="energy mean of speech frames (dBFS; full-scale sine = -3)")
    intensity_sd_db: float | None = Field(None, description="standard deviation of frame intensity over speech (dB)")
    speaking_rate_sps: float | None = Field(None, description="syllables per second of speech (pauses excluded)")
    speaking_rate_source: str | None = Field(None, description="'transcript' (counted syllables) or 'signal' (nuclei)")
    words_per_s: float | None = Field(None, description="transcript words per second of speech")
    pause_count: int | None = Field(None, description="silent pauses of at least 250 ms inside the speech span")
    pause_share: float | None = Field(None, description="pause time / speech span")
    jitter: float | None = Field(None, description="Praat jitter (local), ratio")
    shimmer: float | None = Field(None, description="Praat shimmer (local), ratio")
    hnr_db: float | None = Field(
        None, description="mean harmonics-to-noise ratio of voiced frames, from the pitch track (dB)"
    )
    flags: list[str] = Field(default_factory=list, description="ProfileFlag values: why measures are missing")


def intensity_contour(x: np.ndarray, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Frame intensity in dBFS (Hann-weighted mean square; a full-scale sine reads -3.01 dB)."""
    win, hop = int(round(WINDOW_S * sample_rate)), int(round(HOP_S * sample_rate))
    if x.size < win:
        x = np.pad(x, (0, win - x.size))
    frames = np.lib.stride_tricks.sliding_window_view(x, win)[::hop]  # (F, win), a view
    weights = np.hanning(win + 2)[1:-1]
    power = (frames * frames) @ weights / weights.sum()  # (F,)
    with np.errstate(divide="ignore"):
        return np.maximum(10.0 * np.log10(power), SILENCE_FLOOR_DB)


def clipped_share(x: np.ndarray) -> float:
    """Share of samples on a clipping plateau: near the absolute peak and equal to the sample before.

    A clipped recording repeats its full-scale value exactly; natural speech (and any pure tone
    above 50 Hz at 16 kHz) never holds a value near its peak for two samples. Clipping that
    happened before resampling is smeared by the resampling filter and escapes this test.
    """
    peak = float(np.abs(x).max()) if x.size else 0.0
    if peak == 0.0:
        return 0.0
    flat = np.abs(np.diff(x)) <= PLATEAU_TOLERANCE * peak
    near = np.abs(x[1:]) >= NEAR_PEAK * peak
    return float(np.count_nonzero(flat & near)) / x.size


def theil_sen_slope(t: np.ndarray, y: np.ndarray) -> float:
    """Median of pairwise slopes: ignores up to ~29 % outliers (octave jumps) where least squares would not."""
    if t.size > MAX_SLOPE_FRAMES:
        keep = np.linspace(0, t.size - 1, MAX_SLOPE_FRAMES).astype(int)
        t, y = t[keep], y[keep]
    i, j = np.triu_indices(t.size, k=1)
    return float(np.median((y[j] - y[i]) / (t[j] - t[i])))


def syllable_nuclei(db: np.ndarray, threshold: float, voiced_at: np.ndarray) -> int:
    """Intensity peaks above the speech threshold, at voiced frames, separated by a dip of MIN_DIP_DB."""
    inner = db[1:-1]
    peaks = np.flatnonzero((inner > db[:-2]) & (inner >= db[2:]) & (inner >= threshold)) + 1
    peaks = peaks[voiced_at[peaks]]
    kept: list[int] = []
    for p in peaks:
        if not kept:
            kept.append(int(p))
            continue
        k = kept[-1]
        dip = float(db[k : p + 1].min())
        if min(db[k], db[p]) - dip >= MIN_DIP_DB:
            kept.append(int(p))
        elif db[p] > db[k]:
            kept[-1] = int(p)
    return len(kept)


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(start, stop) of each run of True in a 1-D boolean array."""
    edges = np.diff(np.concatenate(([0], mask.astype(np.int8), [0])))
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1), strict=True))


def _finite(value: float) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def measure_signal(samples: np.ndarray, sample_rate: int = SAMPLE_RATE, transcript: str | None = None) -> Measurements:
    """Measure one utterance. `samples`: mono float in [-1, 1]; `transcript` gives the speaking rate."""
    x = np.asarray(samples, dtype=np.float64)
    duration = x.size / sample_rate
    flags: list[ProfileFlag] = []
    db = intensity_contour(x, sample_rate)  # (F,) one frame per HOP_S
    if x.size == 0 or db.max() < SILENT_DBFS:
        return Measurements(duration_s=duration, flags=[ProfileFlag.silent.value])
    clipped = clipped_share(x) >= CLIPPED_SHARE
    if clipped:
        flags.append(ProfileFlag.clipped)

    threshold = max(float(np.percentile(db, PEAK_PERCENTILE)) - SPEECH_BELOW_PEAK_DB, SILENT_DBFS)
    speech = db >= threshold
    first, last = int(np.argmax(speech)), int(speech.size - 1 - np.argmax(speech[::-1]))
    span_db, span_speech = db[first : last + 1], speech[first : last + 1]
    span_s = span_speech.size * HOP_S
    loud = span_db[span_speech]
    intensity = float(10.0 * np.log10(np.mean(10.0 ** (loud / 10.0))))
    values: dict[str, object] = {"speech_span_s": span_s, "intensity_db": intensity}
    if span_s < MIN_SPEECH_S:
        flags.append(ProfileFlag.too_short)
        return Measurements(duration_s=duration, **values, flags=[f.value for f in flags])

    pauses = [(a, b) for a, b in _runs(~span_speech) if (b - a) * HOP_S >= MIN_PAUSE_S]
    pause_s = sum(b - a for a, b in pauses) * HOP_S
    speech_s = span_s - pause_s
    values |= {
        "speech_duration_s": speech_s,
        "intensity_sd_db": float(loud.std()),
        "pause_count": len(pauses),
        "pause_share": pause_s / span_s,
    }

    # Pitch on the trimmed span only (about half of a RAVDESS clip is leading/trailing silence).
    hop, win, pad = (int(round(s * sample_rate)) for s in (HOP_S, WINDOW_S, TRIM_PAD_S))
    start = max(first * hop - pad, 0)
    stop = min(last * hop + win + pad, x.size)
    sound = parselmouth.Sound(x[start:stop], sampling_frequency=sample_rate)
    pitch = sound.to_pitch_ac(
        pitch_floor=PITCH_FLOOR_HZ, max_number_of_candidates=PITCH_CANDIDATES, pitch_ceiling=PITCH_CEILING_HZ
    )
    track = pitch.selected_array
    f0, strength = track["frequency"], track["strength"]
    voiced = f0 > 0
    values["voiced_fraction"] = float(voiced.mean()) if voiced.size else 0.0
    # Voicing at each intensity frame of the span, for syllable nuclei: nearest pitch frame.
    frame_t = (np.arange(first, last + 1) * hop + win / 2 - start) / sample_rate
    pitch_idx = np.clip(np.round((frame_t - pitch.x1) / pitch.dx).astype(int), 0, max(voiced.size - 1, 0))
    voiced_at = voiced[pitch_idx] if voiced.size else np.zeros(frame_t.size, dtype=bool)

    if voiced.sum() < MIN_VOICED_FRAMES:
        flags.append(ProfileFlag.unvoiced)
    else:
        st = 12.0 * np.log2(f0[voiced] / REFERENCE_HZ)
        low, high = np.percentile(st, RANGE_PERCENTILES)
        median_st = float(np.median(st))
        values |= {
            "f0_median_st": median_st,
            "f0_median_hz": REFERENCE_HZ * 2.0 ** (median_st / 12.0),
            "f0_range_st": float(high - low),
            "f0_slope_st_per_s": theil_sen_slope(pitch.xs()[voiced], st),
        }
        if voiced.sum() * pitch.dx < MIN_VOICED_S_FOR_QUALITY:
            flags.append(ProfileFlag.short_voicing)
        elif not clipped:
            r = np.clip(strength[voiced], 1.0 - MAX_STRENGTH, MAX_STRENGTH)
            points = call([sound, pitch], "To PointProcess (cc)")
            values |= {
                "hnr_db": float(np.mean(10.0 * np.log10(r / (1.0 - r)))),
                "jitter": _finite(call(points, "Get jitter (local)", *JITTER_ARGS)),
                "shimmer": _finite(call([sound, points], "Get shimmer (local)", *SHIMMER_ARGS)),
            }

    syllables, source = count_syllables(transcript), "transcript"
    if syllables is None and ProfileFlag.unvoiced not in flags:
        # Nuclei must be voiced: without voicing the signal gives no syllable count at all.
        syllables, source = syllable_nuclei(span_db, threshold, voiced_at), "signal"
    if syllables is not None:
        values |= {"speaking_rate_sps": syllables / speech_s, "speaking_rate_source": source}
    words = count_words(transcript)
    if words is not None:
        values["words_per_s"] = words / speech_s
    return Measurements(duration_s=duration, **values, flags=[f.value for f in flags])


def screen(m: Measurements) -> Measurements:
    """``m`` with every measure outside its plausible range (pipeline/plausible.py) set to None and
    flagged: such a number comes from a broken file or a transcript that is not this clip's, and a
    cue made from it ("speaking very fast" at 1,351 syllables/s) would be false."""
    update: dict[str, object] = {}
    flags = list(m.flags)
    low, high = RATE_RANGE_SPS
    if m.speaking_rate_sps is not None and not low <= m.speaking_rate_sps <= high:
        update |= {"speaking_rate_sps": None, "speaking_rate_source": None, "words_per_s": None}
        flags.append(ProfileFlag.implausible_rate.value)
    low, high = LEVEL_RANGE_DBFS
    if m.intensity_db is not None and not low <= m.intensity_db <= high:
        update["intensity_db"] = None
        flags.append(ProfileFlag.implausible_level.value)
    return m.model_copy(update=update | {"flags": flags}) if update else m
