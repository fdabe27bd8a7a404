"""Acoustic profile: measured, speaker-normalised prosody of each utterance, as numbers and cues.

measure.py (raw measures of one signal) -> normalise.py (per-speaker z-scores) -> cues.py
(z -> plain-word cues) -> profile.py (the AcousticProfile record) ; compute.py runs it over a
dataset, in parallel and resumably. See docs/acoustic.md.
"""

from pipeline.acoustic.compute import ProfileRun, compute_profiles
from pipeline.acoustic.measure import Measurements, ProfileFlag, measure_signal
from pipeline.acoustic.profile import AcousticProfile, load_profiles

__all__ = [
    "AcousticProfile",
    "Measurements",
    "ProfileFlag",
    "ProfileRun",
    "compute_profiles",
    "load_profiles",
    "measure_signal",
]
