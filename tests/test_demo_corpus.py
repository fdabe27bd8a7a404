"""The bundled demo corpus: complete, consistent, speaker-disjoint, and its voices follow the emotions."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import parselmouth
import pytest

from pipeline.audio import load_audio
from pipeline.datasets import load_dataset
from pipeline.datasets.demo import BUNDLED
from pipeline.labels import PROTOCOLS
from pipeline.records import Gender

# The corpus is committed: keep it small enough for every clone.
MAX_AUDIO_MB = 8


@pytest.fixture(scope="module")
def demo():
    return load_dataset("demo")


def test_loads_without_rejects_and_covers_every_emotion(demo):
    assert demo.rejects == [] and 120 <= len(demo.utterances) <= 200
    assert {u.label_protocol for u in demo.utterances} == {"all"}
    for split in ("train", "dev", "test"):
        emotions = {u.emotion for u in demo.utterances if u.split == split}
        assert emotions == set(PROTOCOLS["all"].labels), split


def test_speakers_genders_and_disjoint_splits(demo):
    speakers = defaultdict(set)
    for u in demo.utterances:
        speakers[u.split].add(u.speaker)
    assert sum(len(s) for s in speakers.values()) >= 6
    assert not (speakers["train"] & speakers["dev"]) and not (speakers["train"] & speakers["test"])
    assert not (speakers["dev"] & speakers["test"])
    for split in speakers:
        assert {u.gender for u in demo.utterances if u.split == split} == {Gender.female, Gender.male}


def test_dialogues_carry_context(demo):
    dialogue = sorted((u for u in demo.utterances if u.dialogue_id == "dlg1"), key=lambda u: u.turn)
    assert len(dialogue) == 6 and dialogue[0].context == []
    assert [c.text for c in dialogue[3].context] == [u.transcript for u in dialogue[:3]]
    assert len({u.speaker for u in dialogue}) == 2
    assert len({u.dialogue_id for u in demo.utterances if u.dialogue_id}) >= 3


def test_manifest_and_audio_folder_agree_and_stay_small():
    rows = [json.loads(line) for line in (BUNDLED / "utterances.jsonl").read_text().splitlines()]
    files = {p.name for p in (BUNDLED / "audio").glob("*.flac")}
    assert files == {Path(r["file"]).name for r in rows}
    assert len({r["id"] for r in rows}) == len(rows)
    # transcripts with and without lexical cues, so the voice has to matter for some
    assert {r["lexical_cue"] for r in rows} == {True, False}
    size = sum((BUNDLED / "audio" / name).stat().st_size for name in files)
    assert size < MAX_AUDIO_MB * 2**20


def test_audio_decodes_with_sane_durations(demo):
    for u in demo.utterances:
        audio = load_audio(u.audio_path)
        assert u.sample_rate == 16000 and 1.0 <= u.duration_s <= 4.0, u.id
        assert len(audio) == pytest.approx(u.duration_s * 16000, abs=1)
        assert np.sqrt(np.mean(audio**2)) > 0.005 and np.abs(audio).max() <= 1.0, u.id


def pitch(audio: np.ndarray) -> np.ndarray:
    """Voiced F0 values (Hz) with Praat's default settings, as the acoustic profile reads them."""
    f0 = parselmouth.Sound(audio.astype(np.float64), 16000).to_pitch().selected_array["frequency"]
    return f0[f0 > 0]


def test_voice_follows_the_emotion_for_every_speaker(demo):
    """What the acoustic profile will measure: per speaker, angry is louder, faster and higher than
    sad, neutral lies between them in pitch, and sad intonation is flatter than neutral."""
    level, rate, f0, spread = (defaultdict(list) for _ in range(4))
    for u in demo.utterances:
        if u.emotion.value in ("angry", "sad", "neutral"):
            audio = load_audio(u.audio_path)
            voiced = pitch(audio)
            key = u.speaker, u.emotion.value
            level[key].append(20 * np.log10(np.sqrt(np.mean(audio**2))))
            rate[key].append(len(u.transcript.split()) / u.duration_s)
            f0[key].append(np.median(voiced))
            spread[key].append(12 * np.log2(np.percentile(voiced, 90) / np.percentile(voiced, 10)))  # semitones
    for speaker in {s for s, _ in level}:

        def mean(table, emotion, speaker=speaker):
            return np.mean(table[speaker, emotion])

        assert mean(level, "angry") > mean(level, "sad") + 6, speaker
        assert mean(rate, "angry") > mean(rate, "sad"), speaker
        assert mean(f0, "angry") > mean(f0, "neutral") > mean(f0, "sad") > 75, speaker
        assert mean(spread, "sad") < mean(spread, "neutral"), speaker


def test_split_filter_and_other_root(demo, tmp_path):
    test = load_dataset("demo", splits="test")
    assert {u.split for u in test.utterances} == {"test"}
    assert len(test.utterances) == sum(u.split == "test" for u in demo.utterances)
    (tmp_path / "audio").mkdir()
    (tmp_path / "utterances.jsonl").write_text(
        '{"id": "x", "speaker": "a", "gender": "male", "split": "train", "transcript": "Hi.", "emotion": "bored", "file": "audio/x.flac"}\n'
        '{"id": "y", "speaker": "a", "gender": "male", "split": "train", "transcript": "Hi.", "emotion": "calm", "file": "audio/y.flac"}\n'
        '{"id": "z", "speaker": "a"}\n'
    )
    result = load_dataset("demo", tmp_path)
    assert result.utterances == []
    assert [r.reason for r in result.rejects] == ["bad_row", "unknown_label", "missing_audio"]
