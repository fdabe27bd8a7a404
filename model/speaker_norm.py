"""Per-speaker z-scores of feature vectors: each voice measured against itself.

    x = speaker_zscores(features, [u.speaker for u in utterances])   # (N, D) -> (N, D)

Transductive, like the acoustic profile (pipeline.acoustic.normalise): a speaker's mean and
spread come from their own utterances in the set given, labels never looked at, so a speaker the
model has never heard is normalised by nothing more than unlabelled audio of them. Normalise the
training set and the test set each on its own: a test speaker's statistics come from the test set.

A speaker with fewer than MIN_SPEAKER_UTTERANCES rows is normalised by the statistics of the whole
set (their mean and spread would be mostly noise), as the acoustic profile falls back to the corpus.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np

from pipeline.acoustic.normalise import MIN_SPEAKER_UTTERANCES

SD_EPSILON = 1e-8  # a feature constant within a speaker: z = 0, never a division by zero


def _z(x: np.ndarray, mean: np.ndarray, sd: np.ndarray) -> np.ndarray:
    return (x - mean) / np.where(sd > SD_EPSILON, sd, 1.0)


def speaker_zscores(
    features: np.ndarray, speakers: Sequence[str], min_utterances: int = MIN_SPEAKER_UTTERANCES
) -> np.ndarray:
    """``features`` (N, D) with each row z-scored by its speaker's statistics (NaN-aware)."""
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] != len(speakers):
        raise ValueError(f"features of shape {x.shape} do not match {len(speakers)} speakers")
    out = np.empty_like(x)
    if not len(speakers):
        return out
    with warnings.catch_warnings():  # a column all NaN for one speaker stays NaN (imputed downstream)
        warnings.simplefilter("ignore", RuntimeWarning)
        pooled = (np.nanmean(x, axis=0), np.nanstd(x, axis=0))
        names = np.asarray(speakers)
        for speaker in dict.fromkeys(speakers):
            rows = names == speaker
            if rows.sum() >= min_utterances:
                stats = (np.nanmean(x[rows], axis=0), np.nanstd(x[rows], axis=0))
            else:
                stats = pooled
            out[rows] = _z(x[rows], *stats)
    return out
