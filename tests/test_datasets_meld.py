"""MELD adapter: the real CSVs (when present beside the project) and synthetic ones for the edge cases."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from pipeline.datasets import load_dataset
from pipeline.datasets.meld import repair_mojibake
from pipeline.labels import Sentiment
from pipeline.records import Gender

HEADER = "Sr No.,Utterance,Speaker,Emotion,Sentiment,Dialogue_ID,Utterance_ID,Season,Episode,StartTime,EndTime"


def mojibake(text: str) -> str:
    """What a UTF-8 -> cp1252 round trip does (undefined bytes come through as C1 characters)."""
    return "".join(
        bytes([b]).decode("cp1252") if b not in (0x81, 0x8D, 0x8F, 0x90, 0x9D) else chr(b) for b in text.encode()
    )


@pytest.fixture(scope="module")
def meld(meld_dir):
    return load_dataset("meld", meld_dir)


@pytest.mark.data
def test_real_csvs_all_rows_map_under_meld7(meld):
    assert Counter(u.split for u in meld.utterances) == {"train": 9989, "dev": 1109, "test": 2610}
    assert meld.rejects == []
    assert Counter(u.emotion.value for u in meld.utterances if u.split == "test") == {
        "neutral": 1256,
        "happy": 402,
        "angry": 345,
        "surprised": 281,
        "sad": 208,
        "disgusted": 68,
        "fearful": 50,
    }
    assert all(u.audio_path is None for u in meld.utterances)
    assert any("no audio_dir" in n for n in meld.notices)  # one notice, not one per row


@pytest.mark.data
def test_known_row_text_speaker_sentiment_context(meld):
    by_id = {u.id: u for u in meld.utterances}
    u = by_id["meld/train/dia0_utt1"]
    assert u.transcript == "You must’ve had your hands full."
    assert (u.speaker, u.emotion.value, u.raw_label, u.sentiment) == (
        "The Interviewer",
        "neutral",
        "neutral",
        Sentiment.neutral,
    )
    assert u.dialogue_id == "train/dia0" and u.turn == 1
    assert [(c.turn, c.speaker) for c in u.context] == [(0, "Chandler")]
    assert u.context[0].text.startswith("also I was the point person on my company’s transition")
    late = by_id["meld/test/dia5_utt8"]
    assert [c.turn for c in late.context] == [3, 4, 5, 6, 7]  # bounded to the last five
    assert late.context[-1].text == "What a coincidence, I listen in my sleep."
    assert by_id["meld/dev/dia0_utt0"].gender is Gender.female  # Phoebe
    assert by_id["meld/train/dia613_utt6"].transcript == "Nestlé Toll House?"


@pytest.mark.data
def test_mojibake_copy_of_real_csv_is_repaired(meld_dir, meld, tmp_path):
    text = (meld_dir / "dev_sent_emo.csv").read_text(encoding="utf-8")
    assert "’" in text
    (tmp_path / "dev_sent_emo.csv").write_text(mojibake(text), encoding="utf-8", newline="")
    assert "â€™" in (tmp_path / "dev_sent_emo.csv").read_text(encoding="utf-8")
    broken = load_dataset("meld", tmp_path)
    real = {u.id: u.transcript for u in meld.utterances if u.split == "dev"}
    assert {u.id: u.transcript for u in broken.utterances} == real
    assert any("repaired mojibake" in n for n in broken.notices)


def test_repair_leaves_correct_text_alone():
    for text in ["You must’ve had your hands full.", "Nestlé Toll House?", "“Hi” — ok…", "’’", "Olé!"]:
        assert repair_mojibake(text) == text
        assert repair_mojibake(mojibake(text)) == text


def write_csv(folder: Path, split: str, rows: list[tuple]) -> None:
    lines = [HEADER] + [
        ",".join(
            [
                str(i + 1),
                f'"{text}"',
                speaker,
                emotion,
                sentiment,
                str(dia),
                str(utt),
                "1",
                "1",
                '"00:00:01,000"',
                '"00:00:02,000"',
            ]
        )
        for i, (text, speaker, emotion, sentiment, dia, utt) in enumerate(rows)
    ]
    (folder / f"{split}_sent_emo.csv").write_bytes(("\r\n".join(lines) + "\r\n").encode())


def test_synthetic_unknown_labels_and_bad_rows(tmp_path):
    write_csv(
        tmp_path,
        "dev",
        [
            ("Hello there.", "Ross", "neutral", "neutral", 0, 0),
            ("I love it!", "Rachel", "happiness", "positive", 0, 1),  # not MELD's spelling
            ("Meh.", "Joey", "neutral", "meh", 0, 2),
            ("Broken.", "Joey", "neutral", "neutral", "x", 3),
            ("Fine, bye.", "Ross", "sadness", "negative", 0, 4),
        ],
    )
    result = load_dataset("meld", tmp_path)
    assert [u.id for u in result.utterances] == ["meld/dev/dia0_utt0", "meld/dev/dia0_utt4"]
    reasons = {r.record_id: r.reason for r in result.rejects}
    assert reasons == {
        "meld/dev/dia0_utt1": "unknown_label",
        "meld/dev/dia0_utt2": "unknown_label",
        "meld/dev/line5": "bad_row",
    }
    unknown = next(r for r in result.rejects if r.record_id == "meld/dev/dia0_utt1")
    assert "'happiness'" in unknown.detail and "meld" in unknown.detail and unknown.source == "dev_sent_emo.csv:3"
    # rejected rows still count as context: they were said
    assert [c.text for c in result.utterances[1].context] == ["Hello there.", "I love it!", "Meh."]
    assert result.utterances[0].transcript == "Hello there."  # CRLF stripped


def test_audio_dir_split_folders_and_missing_files(tmp_path):
    write_csv(
        tmp_path, "train", [("One.", "Monica", "joy", "positive", 3, 0), ("Two.", "Monica", "fear", "negative", 3, 1)]
    )
    audio = tmp_path / "audio" / "train"
    audio.mkdir(parents=True)
    sf.write(audio / "dia3_utt0.wav", np.zeros(8000, np.float32), 16000)
    result = load_dataset("meld", tmp_path, audio_dir=tmp_path / "audio")
    (u,) = result.utterances
    assert u.audio_path == str(audio / "dia3_utt0.wav") and u.duration_s == pytest.approx(0.5)
    (missing,) = result.rejects
    assert (missing.record_id, missing.reason, missing.stage) == ("meld/train/dia3_utt1", "missing_audio", "audio")
    assert not result.notices
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_dataset("meld", tmp_path, audio_dir=tmp_path / "nope")


def test_folder_without_csvs(tmp_path):
    with pytest.raises(FileNotFoundError, match="train_sent_emo.csv"):
        load_dataset("meld", tmp_path)


def test_csv_with_wrong_columns(tmp_path):
    with (tmp_path / "test_sent_emo.csv").open("w", newline="") as f:
        csv.writer(f).writerows([["Utterance", "Emotion"], ["Hi.", "joy"]])
    with pytest.raises(ValueError, match="Dialogue_ID"):
        load_dataset("meld", tmp_path)


def test_release_layout_mp4_clips_are_read_directly(tmp_path):
    """MELD.Raw as released: CSVs beside dev/dev_splits_complete/*.mp4 (video + AAC audio), no extraction."""
    from test_audio import peak_hz, write_mp4

    from pipeline.acoustic import compute_profiles
    from pipeline.audio import load_audio

    root = tmp_path / "MELD.Raw"
    root.mkdir()
    write_csv(
        root, "dev", [("Hi there.", "Ross", "neutral", "neutral", 0, 0), ("Oh no!", "Rachel", "fear", "negative", 0, 1)]
    )
    write_csv(root, "test", [("Okay.", "Joey", "joy", "positive", 4, 2)])
    clips = {
        root / "dev" / "dev_splits_complete" / "dia0_utt0.mp4": (1.2, 180.0),
        root / "dev" / "dev_splits_complete" / "dia0_utt1.mp4": (0.8, 260.0),
        root / "test" / "output_repeated_splits_test" / "dia4_utt2.mp4": (1.0, 220.0),
    }
    for path, (seconds, freq) in clips.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        write_mp4(path, seconds, freqs=(freq,))
    result = load_dataset("meld", root)
    assert not result.rejects and not result.notices and result.audio_root == root
    by_path = {Path(u.audio_path): u for u in result.utterances}
    assert set(by_path) == set(clips)
    for path, (seconds, freq) in clips.items():
        u = by_path[path]
        assert u.duration_s == pytest.approx(seconds, abs=1e-3) and u.sample_rate == 44_100
        audio = load_audio(u.audio_path)
        assert abs(len(audio) / 16_000 - seconds) < 1e-3 and peak_hz(audio[800:-800]) == pytest.approx(freq, abs=3)
    # the acoustic profile reads the clips too: the sine's frequency is the measured pitch
    run = compute_profiles(result.utterances, tmp_path / "profiles")
    assert not run.rejects and len(run.profiles) == 3
    for profile in run.profiles:
        seconds, freq = clips[Path(next(u.audio_path for u in result.utterances if u.id == profile.utterance_id))]
        assert profile.f0_median_hz == pytest.approx(freq, rel=0.02)
        assert profile.duration_s == pytest.approx(seconds, abs=0.01)


def test_extracted_audio_is_preferred_over_the_clip(tmp_path):
    from test_audio import write_mp4

    write_csv(
        tmp_path, "train", [("One.", "Monica", "joy", "positive", 3, 0), ("Two.", "Monica", "fear", "negative", 3, 1)]
    )
    clips = tmp_path / "clips"
    clips.mkdir()
    write_mp4(clips / "dia3_utt0.mp4", 0.5)
    write_mp4(clips / "dia3_utt1.mp4", 0.5)
    sf.write(clips / "dia3_utt1.wav", np.zeros(8000, np.float32), 16000)
    result = load_dataset("meld", tmp_path, audio_dir=clips)
    assert [Path(u.audio_path).name for u in result.utterances] == ["dia3_utt0.mp4", "dia3_utt1.wav"]
    assert result.utterances[0].duration_s == pytest.approx(0.5, abs=1e-3)
