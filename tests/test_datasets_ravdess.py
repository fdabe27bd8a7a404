"""RAVDESS adapter: the real 16 kHz copy (when present) and synthetic file names for the edge cases."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import soundfile as sf

from pipeline.datasets import load_dataset
from pipeline.records import Gender


@pytest.mark.data
def test_real_ravdess_counts_splits_and_speakers(ravdess_dir):
    result = load_dataset("ravdess", ravdess_dir)
    assert len(result.utterances) == 1200 and result.rejects == []
    counts = Counter(u.emotion.value for u in result.utterances)
    assert counts == {e: 80 if e == "neutral" else 160 for e in counts} and len(counts) == 8
    test_speakers = {u.speaker for u in result.utterances if u.split == "test"}
    assert test_speakers == {"Actor_17", "Actor_18", "Actor_19", "Actor_20"}
    assert Counter(u.split for u in result.utterances) == {"train": 960, "test": 240}
    u = next(u for u in result.utterances if u.id == "ravdess/03-01-05-01-01-01-01")
    assert (u.speaker, u.gender, u.emotion.value, u.raw_label) == ("Actor_01", Gender.male, "angry", "05")
    assert u.transcript == "Kids are talking by the door." and u.sample_rate == 16000 and 2.5 < u.duration_s < 5
    assert {u.gender for u in result.utterances if u.speaker == "Actor_18"} == {Gender.female}


def make(root, names):
    for name in names:
        actor = root / f"Actor_{name[-2:]}"
        actor.mkdir(parents=True, exist_ok=True)
        sf.write(actor / name, np.zeros(48000, np.float32), 48000)  # 1 s: a plausible clip


def test_options_and_rejects(tmp_path):
    make(tmp_path, ["03-01-01-01-01-01-01.wav", "03-02-03-01-01-01-02.wav", "03-01-09-01-01-01-03.wav", "readme.wav"])
    (tmp_path / "Actor_04").mkdir()
    (tmp_path / "Actor_04" / "03-01-04-02-02-01-04.wav").write_bytes(b"garbage")
    result = load_dataset("ravdess", tmp_path, test_actors=[1], dev_actors=[3])
    (u,) = result.utterances
    assert (u.split, u.sample_rate, u.duration_s) == ("test", 48000, pytest.approx(1.0))
    reasons = {r.record_id.split("/")[1]: r.reason for r in result.rejects}
    assert reasons == {
        "03-02-03-01-01-01-02": "song",
        "03-01-09-01-01-01-03": "unknown_label",
        "readme": "bad_file_name",
        "03-01-04-02-02-01-04": "corrupt_audio",
    }
    with_song = load_dataset("ravdess", tmp_path, include_song=True)
    assert "ravdess/03-02-03-01-01-01-02" in {u.id for u in with_song.utterances}


def test_bad_root_and_overlapping_splits(tmp_path):
    with pytest.raises(FileNotFoundError, match="Actor_"):
        load_dataset("ravdess", tmp_path)
    make(tmp_path, ["03-01-01-01-01-01-01.wav"])
    with pytest.raises(ValueError, match="both"):
        load_dataset("ravdess", tmp_path, test_actors=[1], dev_actors=[1])
    with pytest.raises(ValueError, match="no option"):
        load_dataset("ravdess", tmp_path, test_actor=[1])
