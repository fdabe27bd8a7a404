"""The acoustic profile of one utterance: raw measures, speaker-normalised z-scores and cues."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import Field

from pipeline.acoustic.measure import Measurements
from pipeline.acoustic.normalise import FEATURES, MEASURE_FEATURE
from pipeline.parquet import iter_records
from pipeline.records import AcousticCue, Measure, Record

PROFILE_VERSION = "1"
PROFILES_FILE = "profiles.parquet"
NO_CUE_TEXT = "nothing unusual for this speaker"


class _Identity(Record):
    utterance_id: str
    dataset: str
    speaker: str


class AcousticProfile(Measurements, _Identity):
    """Measured prosody of one utterance (fields of Measurements), normalised against its speaker."""

    z: dict[str, float | None] = Field(description="z-score of each Measure (keyed by Measure.value)")
    feature_z: dict[str, float | None] = Field(description="z-score of every raw feature in normalise.FEATURES")
    cues: list[AcousticCue] = Field(default_factory=list, description="one per non-typical Measure")
    basis: str = Field(description="statistics that normalised it: speaker / gender / corpus / none")
    versions: dict[str, str] = Field(default_factory=dict, description="profile, parselmouth, praat, numpy")

    # Fixed column order of vector(): z-scores (missing -> 0, the speaker's mean) then indicators,
    # so a classifier can tell "typical" from "not measurable".
    MISSING_COLUMNS: ClassVar[tuple[tuple[str, str], ...]] = (
        ("missing_pitch", "f0_median_st"),
        ("missing_voice_quality", "hnr_db"),
        ("missing_rate", "speaking_rate_sps"),
    )
    VECTOR_COLUMNS: ClassVar[tuple[str, ...]] = tuple(f"z_{name}" for name in FEATURES) + tuple(
        column for column, _ in MISSING_COLUMNS
    )

    def z_of(self, measure: Measure) -> float | None:
        return self.z.get(Measure(measure).value)

    def cue_of(self, measure: Measure) -> AcousticCue | None:
        measure = Measure(measure)
        return next((c for c in self.cues if c.measure is measure), None)

    def vector(self) -> list[float]:
        """Numbers for a classical classifier, in VECTOR_COLUMNS order; never NaN."""
        values = [self.feature_z.get(name) for name in FEATURES]
        out = [0.0 if v is None else float(v) for v in values]
        out += [1.0 if getattr(self, field) is None else 0.0 for _, field in self.MISSING_COLUMNS]
        return out

    def describe(self) -> str:
        """The cues as one line for a prompt: 'louder than usual; speaking fast'."""
        return "; ".join(c.phrase for c in self.cues) or NO_CUE_TEXT


def z_by_measure(feature_z: dict[str, float | None]) -> dict[Measure, float | None]:
    return {measure: feature_z.get(feature) for measure, feature in MEASURE_FEATURE.items()}


def load_profiles(path: str | Path) -> dict[str, AcousticProfile]:
    """Profiles by utterance id, from a profiles parquet or the folder `emoreason profile` wrote."""
    path = Path(path)
    if path.is_dir():
        path = path / PROFILES_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no acoustic profiles at {path} (run `emoreason profile DATASET` first)")
    return {p.utterance_id: p for p in iter_records(path, AcousticProfile)}
