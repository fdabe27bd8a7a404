"""IEMOCAP adapter on a two-session fixture in the official release layout (the corpus is licensed)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from pipeline.datasets import load_dataset
from pipeline.records import Gender

RATE = 16000
# (session, dialogue, turn suffix, start, end, code or None when only transcribed, transcript)
TURNS = [
    ("Session1", "Ses01F_impro01", "F000", 6.2901, 8.2357, "neu", "Excuse me."),
    ("Session1", "Ses01F_impro01", "M000", 8.5, 10.0, "xxx", "Do you have your forms?"),
    ("Session1", "Ses01F_impro01", "F001", 10.2, 12.0, "fru", "Yeah. I've been here for an hour."),
    ("Session1", "Ses01F_impro01", "M001", 12.1, 13.0, "exc", "Great, let's get you through."),
    ("Session1", "Ses01F_impro01", "F002", 13.5, 15.0, "ang", "This is ridiculous."),
    ("Session1", "Ses01F_impro01", "MXX0", 15.1, 15.3, None, "[LAUGHTER]"),
    ("Session1", "Ses01F_impro01", "M002", 15.4, 16.0, "oth", "Hmm."),
    ("Session2", "Ses02M_script01_1", "F000", 1.0, 3.0, "sad", "I wish you had told me."),
    ("Session2", "Ses02M_script01_1", "M000", 3.2, 4.0, "sur", "You didn't know?"),
    ("Session2", "Ses02M_script01_1", "F001", 4.5, 6.0, "hap", "Well, it's good news anyway."),
    ("Session2", "Ses02M_script01_1", "M001", 6.1, 7.0, "joy", "Sure."),
    ("Session2", "Ses02M_script01_1", "F002", 7.2, 8.0, "neu", "Where is it?"),
    ("Session2", "Ses02M_script01_1", "M002", 8.1, 9.0, "dis", "That's disgusting."),
    ("Session2", "Ses02M_script01_1", "F003", 9.2, 10.0, "fea", "Did you hear that?"),
    ("Session2", "Ses02M_script01_1", "M003", 10.1, 11.0, "neu", "Nothing."),
]
MISSING_WAV = "Ses02M_script01_1_F002"
CORRUPT_WAV = "Ses02M_script01_1_M003"


def build_release(root: Path) -> Path:
    by_dialogue: dict[tuple[str, str], list] = {}
    for turn in TURNS:
        by_dialogue.setdefault(turn[:2], []).append(turn)
    for (session, dialogue), turns in by_dialogue.items():
        base = root / session
        (base / "dialog" / "EmoEvaluation").mkdir(parents=True, exist_ok=True)
        (base / "dialog" / "transcriptions").mkdir(parents=True, exist_ok=True)
        wav_dir = base / "sentences" / "wav" / dialogue
        wav_dir.mkdir(parents=True, exist_ok=True)
        evaluation = ["% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]", ""]
        transcript = []
        for _, _, suffix, start, end, code, text in turns:
            turn_id = f"{dialogue}_{suffix}"
            transcript.append(f"{turn_id} [{start:08.4f}-{end:08.4f}]: {text}")
            if code is None:
                continue
            evaluation += [
                f"[{start:.4f} - {end:.4f}]\t{turn_id}\t{code}\t[2.5000, 2.5000, 2.5000]",
                "C-E2:\tNeutral;\t()",
                "A-E3:\tval 3; act 2; dom  2;\t()",
                "",
            ]
            if turn_id == CORRUPT_WAV:
                (wav_dir / f"{turn_id}.wav").write_bytes(b"not a wav file at all")
            elif turn_id != MISSING_WAV:
                sf.write(wav_dir / f"{turn_id}.wav", np.zeros(int((end - start) * RATE), np.float32), RATE)
        transcript.insert(2, "M: [BREATHING]")  # lines without an id occur in the release
        (base / "dialog" / "EmoEvaluation" / f"{dialogue}.txt").write_text("\n".join(evaluation) + "\n")
        (base / "dialog" / "EmoEvaluation" / f"._{dialogue}.txt").write_bytes(b"\x00\x05AppleDouble")
        (base / "dialog" / "transcriptions" / f"{dialogue}.txt").write_text("\n".join(transcript) + "\n")
    return root


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> Path:
    return build_release(tmp_path_factory.mktemp("IEMOCAP_full_release"))


def test_iemocap4_default_protocol(release):
    result = load_dataset("iemocap", release)
    got = {u.id.split("/")[1]: u.emotion.value for u in result.utterances}
    assert got == {
        "Ses01F_impro01_F000": "neutral",
        "Ses01F_impro01_M001": "happy",  # exc merged into happy
        "Ses01F_impro01_F002": "angry",
        "Ses02M_script01_1_F000": "sad",
        "Ses02M_script01_1_F001": "happy",
    }
    assert {u.label_protocol for u in result.utterances} == {"iemocap4"}
    assert next(u for u in result.utterances if u.id.endswith("M001")).raw_label == "exc"
    reasons = Counter(r.reason for r in result.rejects)
    assert reasons == {"out_of_protocol": 6, "unknown_label": 1, "missing_audio": 1, "corrupt_audio": 1}
    # every labelled row is accounted for
    assert len(result.utterances) + len(result.rejects) == sum(t[5] is not None for t in TURNS)


def test_iemocap7_keeps_frustrated_and_excited(release):
    result = load_dataset("iemocap", release, protocol="iemocap7")
    labels = Counter(u.emotion.value for u in result.utterances)
    assert labels == {"neutral": 1, "frustrated": 1, "excited": 1, "angry": 1, "sad": 1, "surprised": 1, "happy": 1}
    out = sorted(r.record_id.rsplit("_", 1)[1] for r in result.rejects if r.reason == "out_of_protocol")
    assert out == ["F003", "M000", "M002", "M002"]  # fea, xxx, oth, dis


def test_rejects_explain_themselves(release):
    rejects = {r.record_id: r for r in load_dataset("iemocap", release).rejects}
    unknown = rejects["iemocap/Ses02M_script01_1_M001"]
    assert "'joy'" in unknown.detail and "iemocap" in unknown.detail and unknown.stage == "adapter"
    assert "EmoEvaluation/Ses02M_script01_1.txt:" in unknown.source
    assert rejects[f"iemocap/{MISSING_WAV}"].stage == "audio"
    assert "fru" in rejects["iemocap/Ses01F_impro01_F001"].detail


def test_speakers_sessions_genders_audio(release):
    by_id = {u.id: u for u in load_dataset("iemocap", release, protocol="iemocap7").utterances}
    u = by_id["iemocap/Ses01F_impro01_M001"]
    assert (u.speaker, u.gender, u.split, u.session) == ("Ses01M", Gender.male, "Session1", "Session1")
    assert by_id["iemocap/Ses02M_script01_1_F000"].speaker == "Ses02F"
    assert u.transcript == "Great, let's get you through."
    assert Path(u.audio_path).is_absolute() and Path(u.audio_path).is_file()
    assert u.duration_s == pytest.approx(0.9) and u.sample_rate == RATE
    assert u.dialogue_id == "Ses01F_impro01"


def test_context_is_previous_turns_in_time_order(release):
    by_id = {u.id: u for u in load_dataset("iemocap", release).utterances}
    angry = by_id["iemocap/Ses01F_impro01_F002"]
    assert [c.text for c in angry.context] == [
        "Excuse me.",
        "Do you have your forms?",  # unlabelled (xxx) turns still count as context
        "Yeah. I've been here for an hour.",
        "Great, let's get you through.",
    ]
    assert [c.speaker for c in angry.context] == ["Ses01F", "Ses01M", "Ses01F", "Ses01M"]
    assert angry.turn == 4
    assert by_id["iemocap/Ses01F_impro01_F000"].context == []
    short = {u.id: u for u in load_dataset("iemocap", release, context_turns=2).utterances}
    assert [c.turn for c in short["iemocap/Ses01F_impro01_F002"].context] == [2, 3]


def test_session_filter_and_bad_root(release, tmp_path):
    result = load_dataset("iemocap", release, splits=["Session2"])
    assert {u.split for u in result.utterances} == {"Session2"}
    with pytest.raises(FileNotFoundError, match="Session"):
        load_dataset("iemocap", tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_dataset("iemocap", tmp_path / "nope")


def test_dialogue_wav_fallback_reads_spans(tmp_path):
    root = build_release(tmp_path / "release")
    sentences = root / "Session1" / "sentences" / "wav" / "Ses01F_impro01"
    for wav in sentences.glob("*.wav"):
        wav.unlink()
    (root / "Session1" / "dialog" / "wav").mkdir()
    sf.write(root / "Session1" / "dialog" / "wav" / "Ses01F_impro01.wav", np.zeros(20 * RATE, np.float32), RATE)
    by_id = {u.id: u for u in load_dataset("iemocap", root, splits="Session1").utterances}
    u = by_id["iemocap/Ses01F_impro01_F000"]
    assert u.audio_path.endswith("dialog/wav/Ses01F_impro01.wav")
    assert (u.start_s, u.end_s) == (6.2901, 8.2357) and u.duration_s == pytest.approx(8.2357 - 6.2901)


def test_dialogue_recording_as_mp4_reads_spans(tmp_path):
    """A copy that kept the dialogue recordings as video: the turn's span of the mp4's audio."""
    from test_audio import peak_hz, write_mp4

    from pipeline.audio import load_audio

    root = build_release(tmp_path / "release")
    for wav in (root / "Session1" / "sentences" / "wav" / "Ses01F_impro01").glob("*.wav"):
        wav.unlink()
    (root / "Session1" / "dialog" / "wav").mkdir()
    write_mp4(root / "Session1" / "dialog" / "wav" / "Ses01F_impro01.mp4", 10.0, freqs=(150.0, 300.0))
    by_id = {u.id: u for u in load_dataset("iemocap", root, splits="Session1").utterances}
    u = by_id["iemocap/Ses01F_impro01_F000"]  # 6.2901 - 8.2357 s: in the 300 Hz half
    assert u.audio_path.endswith("dialog/wav/Ses01F_impro01.mp4") and u.duration_s == pytest.approx(8.2357 - 6.2901)
    audio = load_audio(u.audio_path, u.start_s, u.end_s)
    assert len(audio) == pytest.approx((8.2357 - 6.2901) * 16_000, abs=2) and peak_hz(audio) == pytest.approx(
        300, abs=3
    )
