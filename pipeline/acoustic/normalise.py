"""Per-speaker z-scores of the raw measures, with gender- and corpus-level fallbacks.

Why per speaker: a voice's absolute level says little (a deep voice is not a sad one; RAVDESS
keeps recording gain while other corpora peak-normalise each file, so absolute loudness cues
invert across corpora: ../shared/DESIGN.md). Relative to the same speaker's other utterances,
"louder", "higher" and "faster" mean what a listener hears.

Statistics use every utterance profiled together (labels are never looked at), the usual
speaker-level normalisation of emotion recognition: a held-out speaker is normalised by their own
unlabelled utterances.

A speaker with fewer than MIN_SPEAKER_UTTERANCES measured utterances is normalised by the
statistics of their gender within the dataset, or of the whole dataset; the profile's `basis`
names which one was used.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from enum import Enum

from pydantic import Field

from pipeline.acoustic.measure import Measurements
from pipeline.records import Measure, Record

# Features z-scored for every profile, in the fixed order of AcousticProfile.vector().
FEATURES: tuple[str, ...] = (
    "f0_median_st",  # semitones, not Hz: pitch differences are heard (and distributed) on a log scale
    "f0_range_st",
    "f0_slope_st_per_s",
    "voiced_fraction",
    "intensity_db",
    "intensity_sd_db",
    "speaking_rate_sps",
    "pause_count",
    "pause_share",
    "jitter",
    "shimmer",
    "hnr_db",
    "speech_duration_s",
)

# Which feature speaks for each citable measure (the vocabulary of stage one and stage two).
MEASURE_FEATURE: dict[Measure, str] = {
    Measure.pitch_level: "f0_median_st",
    Measure.pitch_range: "f0_range_st",
    Measure.pitch_slope: "f0_slope_st_per_s",
    Measure.loudness: "intensity_db",
    Measure.loudness_variability: "intensity_sd_db",
    Measure.speaking_rate: "speaking_rate_sps",
    Measure.pauses: "pause_share",
    # HNR, not jitter/shimmer: it is the steadiest of the three over short utterances, and on a
    # clipped or barely voiced signal it is None (measure.py) so no voice-quality cue is made up.
    Measure.voice_quality: "hnr_db",
}

# Below this many measured utterances a speaker's mean and spread are too noisy to normalise by
# (the standard error of a standard deviation from n values is ~1/sqrt(2(n-1)): 24 % at n = 10).
MIN_SPEAKER_UTTERANCES = 10
MIN_FEATURE_VALUES = 3  # fewer values of one feature in the chosen group: that z-score is None

# Smallest spread credited to a group, in the feature's units. A speaker whose pitch barely moves
# across their utterances would otherwise turn measurement noise into "pitch well above usual".
# Roughly one just-noticeable difference or one measurement step of each feature.
SD_FLOOR: dict[str, float] = {
    "f0_median_st": 0.5,  # half a semitone: about the JND of pitch in running speech
    "f0_range_st": 0.5,
    "f0_slope_st_per_s": 0.5,
    "voiced_fraction": 0.02,
    "intensity_db": 1.0,  # ~1 dB: the JND of loudness
    "intensity_sd_db": 0.5,
    "speaking_rate_sps": 0.2,  # one syllable in a 5 s utterance
    "pause_count": 0.5,
    "pause_share": 0.02,
    "jitter": 0.002,
    "shimmer": 0.01,
    "hnr_db": 0.5,
    "speech_duration_s": 0.1,
}


class Basis(str, Enum):
    speaker = "speaker"
    gender = "gender"
    corpus = "corpus"
    none = "none"  # not even the dataset has enough measured utterances: no z-scores


class FeatureStats(Record):
    mean: float
    sd: float = Field(description="sample standard deviation, floored at SD_FLOOR")
    n: int


class GroupStats(Record):
    utterances: int = Field(description="measured (non-silent) utterances in the group")
    features: dict[str, FeatureStats]


class Normaliser(Record):
    """Statistics of every speaker, gender and dataset; keys 'speaker/<dataset>/<speaker>' etc."""

    groups: dict[str, GroupStats] = Field(default_factory=dict)

    @classmethod
    def fit(cls, items: Iterable[tuple[str, str, str | None, Measurements]]) -> Normaliser:
        """Fit from (dataset, speaker, gender or None, measurements) of every profiled utterance."""
        values: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
        counts: dict[str, int] = defaultdict(int)
        for dataset, speaker, gender, m in items:
            keys = [_key(Basis.speaker, dataset, speaker), _key(Basis.corpus, dataset)]
            if gender is not None:
                keys.append(_key(Basis.gender, dataset, gender))
            measured = m.intensity_db is not None
            for key in keys:
                counts[key] += measured
                for name in FEATURES:
                    value = getattr(m, name)
                    if value is not None:
                        values[key][name].append(float(value))
        groups = {key: GroupStats(utterances=counts[key], features=_stats(values[key])) for key in counts}
        return cls(groups=groups)

    def basis_for(self, dataset: str, speaker: str, gender: str | None) -> tuple[Basis, GroupStats | None]:
        """The most specific group with enough measured utterances."""
        candidates = [(Basis.speaker, _key(Basis.speaker, dataset, speaker))]
        if gender is not None:
            candidates.append((Basis.gender, _key(Basis.gender, dataset, gender)))
        candidates.append((Basis.corpus, _key(Basis.corpus, dataset)))
        for basis, key in candidates:
            group = self.groups.get(key)
            if group is not None and group.utterances >= MIN_SPEAKER_UTTERANCES:
                return basis, group
        return Basis.none, None

    def zscores(self, m: Measurements, group: GroupStats | None) -> dict[str, float | None]:
        """z of every feature in FEATURES (None where the value or the group's statistics are missing)."""
        out: dict[str, float | None] = {}
        for name in FEATURES:
            value = getattr(m, name)
            stats = group.features.get(name) if group is not None else None
            if value is None or stats is None or stats.n < MIN_FEATURE_VALUES:
                out[name] = None
            else:
                out[name] = (float(value) - stats.mean) / stats.sd
        return out


def _key(basis: Basis, dataset: str, name: str | None = None) -> str:
    return f"{basis.value}/{dataset}" + (f"/{name}" if name is not None else "")


def _stats(values: dict[str, list[float]]) -> dict[str, FeatureStats]:
    out = {}
    for name, xs in values.items():
        n = len(xs)
        mean = math.fsum(xs) / n
        var = math.fsum((x - mean) ** 2 for x in xs) / (n - 1) if n > 1 else 0.0
        out[name] = FeatureStats(mean=mean, sd=max(math.sqrt(var), SD_FLOOR[name]), n=n)
    return out
