"""Per-speaker z-scores of feature vectors (model.speaker_norm)."""

from __future__ import annotations

import numpy as np
import pytest

from model.speaker_norm import speaker_zscores


def test_each_speaker_is_measured_against_their_own_utterances():
    rng = np.random.default_rng(0)
    a = rng.normal(100.0, 5.0, (12, 3))  # a loud, high voice ...
    b = rng.normal(-3.0, 0.5, (10, 3))  # ... and a quiet one: raw values never overlap
    z = speaker_zscores(np.vstack([a, b]), ["a"] * 12 + ["b"] * 10)
    for rows in (slice(0, 12), slice(12, 22)):
        assert z[rows].mean(axis=0) == pytest.approx(0.0, abs=1e-9)
        assert z[rows].std(axis=0) == pytest.approx(1.0)
    # the same relative position in each voice gives the same z, whatever the voice's level
    assert speaker_zscores(np.vstack([a, a / 50 - 9]), ["a"] * 12 + ["b"] * 12)[12:] == pytest.approx(
        speaker_zscores(a, ["a"] * 12)
    )


def test_small_speakers_use_the_pooled_statistics_and_nan_stays_nan():
    x = np.array([[1.0, 5.0], [3.0, 5.0], [np.nan, 5.0]])
    z = speaker_zscores(x, ["s1", "s2", "s2"], min_utterances=10)  # nobody has 10: pooled over all rows
    assert z[:2, 0] == pytest.approx([-1.0, 1.0])
    assert np.isnan(z[2, 0]) and (z[:, 1] == 0).all()  # a constant feature: z = 0, no division by zero
    with pytest.raises(ValueError, match="do not match 2 speakers"):
        speaker_zscores(x, ["s1", "s2"])
