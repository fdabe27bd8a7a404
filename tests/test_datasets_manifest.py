"""Generic manifest adapter: CSV, JSONL and parquet, label maps, spans, dialogue context, rejects."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from pipeline.datasets import load_dataset
from pipeline.records import Gender


@pytest.fixture
def clips(tmp_path):
    (tmp_path / "clips").mkdir()
    for name, seconds in [("a", 1.0), ("b", 2.0), ("c", 0.5)]:
        sf.write(tmp_path / "clips" / f"{name}.wav", np.zeros(int(16000 * seconds), np.float32), 16000)
    return tmp_path


ROWS = [
    dict(path="clips/a.wav", transcript="Hi there.", label="ANG", speaker="s1", gender="F", dialogue_id="d1", turn=0),
    dict(path="clips/b.wav", transcript="Go away.", label="neu", speaker="s2", gender="m", dialogue_id="d1", turn=1),
    dict(path="clips/c.wav", transcript="What?", label="zzz", speaker="s1", gender="", dialogue_id="", turn=None),
    dict(path="clips/missing.wav", transcript="Gone.", label="sad", speaker="s3", gender="", dialogue_id="", turn=None),
]
LABEL_MAP = {"ANG": "angry", "neu": "neutral", "sad": "sad"}


def check(result, root):
    assert [u.id for u in result.utterances] == ["manifest/clips/a.wav", "manifest/clips/b.wav"]
    a, b = result.utterances
    assert (a.emotion.value, a.raw_label, a.gender, a.split) == ("angry", "ANG", Gender.female, "train")
    assert a.audio_path == str((root / "clips" / "a.wav").resolve()) and b.duration_s == pytest.approx(2.0)
    assert [(c.turn, c.speaker, c.text) for c in b.context] == [(0, "s1", "Hi there.")]
    assert b.gender is Gender.male and b.turn == 1
    reasons = {r.record_id: r.reason for r in result.rejects}
    assert reasons == {"manifest/clips/c.wav": "unknown_label", "manifest/clips/missing.wav": "missing_audio"}
    unknown = next(r for r in result.rejects if r.reason == "unknown_label")
    assert "'zzz'" in unknown.detail and "manifest" in unknown.detail


def test_csv_with_label_map_dict(clips):
    pd.DataFrame(ROWS).to_csv(clips / "m.csv", index=False)
    check(load_dataset("manifest", clips / "m.csv", label_map=LABEL_MAP), clips)


def test_jsonl_with_label_map_file(clips):
    (clips / "m.jsonl").write_text("\n".join(json.dumps(r) for r in ROWS) + "\n")
    (clips / "labels.yaml").write_text("".join(f"{k}: {v}\n" for k, v in LABEL_MAP.items()))
    check(load_dataset("manifest", clips / "m.jsonl", label_map=clips / "labels.yaml"), clips)


def test_parquet_with_spans_and_canonical_labels(clips):
    rows = [
        dict(path=str(clips / "clips" / "b.wav"), label="happy", start=0.0, end=1.0, split="test", speaker="s9"),
        dict(path=str(clips / "clips" / "b.wav"), label="calm", start=1.0, end=None, split="test", speaker="s9"),
        dict(path=str(clips / "clips" / "b.wav"), label="Neutral", start=1.5, end=1.5, split="test", speaker="s9"),
    ]
    pd.DataFrame(rows).to_parquet(clips / "m.parquet")
    result = load_dataset("manifest", clips / "m.parquet", protocol="all")
    first, second = result.utterances
    assert first.id.endswith("b.wav@0.000") and second.id.endswith("b.wav@1.000")
    assert (first.duration_s, second.duration_s) == (pytest.approx(1.0), pytest.approx(1.0))
    assert (second.start_s, second.end_s, second.split, first.transcript) == (1.0, None, "test", None)
    assert [r.reason for r in result.rejects] == ["bad_row"]  # empty span


def test_label_map_errors_and_bad_files(clips):
    pd.DataFrame(ROWS).to_csv(clips / "m.csv", index=False)
    with pytest.raises(ValueError, match="not a canonical emotion"):
        load_dataset("manifest", clips / "m.csv", label_map={"ANG": "furious"})
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_dataset("manifest", clips / "nope.csv")
    pd.DataFrame([{"file": "a.wav", "label": "sad"}]).to_csv(clips / "bad.csv", index=False)
    with pytest.raises(ValueError, match="lacks columns"):
        load_dataset("manifest", clips / "bad.csv")


def test_duplicate_ids_are_rejected(clips):
    rows = [dict(path="clips/a.wav", label="sad", id="x"), dict(path="clips/b.wav", label="sad", id="x")]
    pd.DataFrame(rows).to_csv(clips / "dup.csv", index=False)
    result = load_dataset("manifest", clips / "dup.csv")
    assert len(result.utterances) == 1 and [r.reason for r in result.rejects] == ["duplicate_id"]


def test_mp4_and_m4a_rows_are_read(tmp_path):
    from test_audio import peak_hz, write_mp4

    from pipeline.audio import load_audio

    write_mp4(tmp_path / "talk.mp4", 2.0, freqs=(200.0, 400.0))  # video + AAC audio
    write_mp4(tmp_path / "voice.m4a", 0.75, freqs=(250.0,), channels=1, video=False)
    rows = [
        dict(path="talk.mp4", label="happy", start=1.0, end=2.0, speaker="s1"),
        dict(path="voice.m4a", label="sad", speaker="s2"),
    ]
    pd.DataFrame(rows).to_csv(tmp_path / "m.csv", index=False)
    result = load_dataset("manifest", tmp_path / "m.csv")
    assert not result.rejects
    span, whole = result.utterances
    assert span.duration_s == pytest.approx(1.0) and whole.duration_s == pytest.approx(0.75, abs=1e-3)
    assert peak_hz(load_audio(span.audio_path, span.start_s, span.end_s)) == pytest.approx(400.0, abs=3)
    assert len(load_audio(whole.audio_path)) == pytest.approx(0.75 * 16_000, abs=2)


# ---- bad input: each row repaired or rejected on its own, naming its file and line ----


def test_cp1252_bytes_are_read_per_row_and_undecodable_rows_rejected(clips):
    lines = [
        b"path,label,transcript",
        b"clips/a.wav,sad,caf\xe9 au lait",  # cp1252 in a UTF-8 file: read as cp1252
        b"clips/b.wav,sad,fine \xe2\x80\x94 UTF-8",
        b"clips/a.wav,angry,bad \x81 byte",  # undefined in cp1252 as well: rejected, with its line
    ]
    (clips / "m.csv").write_bytes(b"\n".join(lines) + b"\n")
    result = load_dataset("manifest", clips / "m.csv")
    assert [u.transcript for u in result.utterances] == ["café au lait", "fine — UTF-8"]
    (bad,) = result.rejects
    assert (bad.reason, bad.source) == ("bad_encoding", "m.csv:4") and "\\x81" in bad.detail
    assert any("m.csv:2" in n and "cp1252" in n for n in result.notices)


def test_mojibake_in_a_manifest_is_repaired(clips):
    rows = [dict(path="clips/a.wav", label="sad", transcript="I mustâ€™ve said it, cafÃ©.")]
    pd.DataFrame(rows).to_csv(clips / "m.csv", index=False)
    (u,) = load_dataset("manifest", clips / "m.csv").utterances
    assert u.transcript == "I must’ve said it, café."
    kept = load_dataset("manifest", clips / "m.csv", repair_text=False).utterances[0]
    assert kept.transcript == rows[0]["transcript"]


def test_empty_and_malformed_files_name_the_file_and_line(clips):
    (clips / "empty.csv").write_bytes(b"")
    with pytest.raises(ValueError, match=r"empty\.csv is empty"):
        load_dataset("manifest", clips / "empty.csv")
    (clips / "m.csv").write_text('path,label\nclips/a.wav,sad\nclips/b.wav,sad,extra\n"clips/c.wav\n')
    result = load_dataset("manifest", clips / "m.csv")
    assert len(result.utterances) == 1
    assert {r.source: r.reason for r in result.rejects} == {"m.csv:3": "bad_row", "m.csv:4": "bad_row"}
    (clips / "m.jsonl").write_text('{"path": "clips/a.wav", "label": "sad"}\n{"path": oops}\n[1, 2]\n')
    result = load_dataset("manifest", clips / "m.jsonl")
    assert len(result.utterances) == 1
    assert {r.source: r.reason for r in result.rejects} == {"m.jsonl:2": "bad_row", "m.jsonl:3": "bad_row"}


def test_name_option_renames_the_dataset(clips, capsys):
    from pipeline.cli import main

    pd.DataFrame(ROWS).to_csv(clips / "m.csv", index=False)
    result = load_dataset("manifest", clips / "m.csv", label_map=LABEL_MAP, name="mycorpus")
    assert {u.dataset for u in result.utterances} == {"mycorpus"}
    assert result.utterances[0].id == "mycorpus/clips/a.wav"
    (clips / "labels.yaml").write_text("".join(f"{k}: {v}\n" for k, v in LABEL_MAP.items()))
    args = [
        "list",
        "manifest",
        "--root",
        str(clips / "m.csv"),
        "-o",
        "name=mycorpus",
        "-o",
        f"label_map={clips}/labels.yaml",
    ]
    assert main(args) == 0
    assert "manifest under protocol all: 2 utterances" in capsys.readouterr().out


def test_unknown_split_is_a_row_reject(clips):
    rows = [dict(path="clips/a.wav", label="sad", split="trian"), dict(path="clips/b.wav", label="sad", split="val")]
    pd.DataFrame(rows).to_csv(clips / "m.csv", index=False)
    result = load_dataset("manifest", clips / "m.csv")
    assert [u.split for u in result.utterances] == ["val"]
    (bad,) = result.rejects
    assert (bad.reason, bad.source) == ("bad_split", "m.csv:2") and "'trian'" in bad.detail


def test_implausible_clips_are_rejected(tmp_path):
    noise = np.random.default_rng(0).normal(0, 0.1, 16000 * 4).astype(np.float32)
    sf.write(tmp_path / "ok.wav", noise[: 16000 * 3], 16000)
    sf.write(tmp_path / "blip.wav", noise[:800], 16000)  # 0.05 s
    sf.write(tmp_path / "long.wav", np.zeros(16000 * 31, np.float32), 16000)
    sf.write(tmp_path / "full.wav", noise, 16000, subtype="PCM_16")
    data = (tmp_path / "full.wav").read_bytes()
    (tmp_path / "cut.wav").write_bytes(data[: 44 + noise.size])  # header says 4 s, holds 2 s
    rows = [
        dict(path="ok.wav", label="sad", transcript="Kids are talking by the door."),
        dict(path="blip.wav", label="sad", transcript="Oh."),
        dict(path="long.wav", label="sad", transcript="Long."),
        dict(path="cut.wav", label="sad", transcript="Kids are talking by the door."),
        dict(path="ok.wav", label="sad", transcript="talking " * 1250, id="wordy"),
        dict(path="ok.wav", label="sad", transcript="x", id="span", start=1.0, end=1.1),
    ]
    pd.DataFrame(rows).to_csv(tmp_path / "m.csv", index=False)
    result = load_dataset("manifest", tmp_path / "m.csv")
    assert [u.id for u in result.utterances] == ["manifest/ok.wav"]
    reasons = {r.source: r.reason for r in result.rejects}
    assert reasons == {
        "m.csv:3": "too_short_audio",
        "m.csv:4": "too_long_audio",
        "m.csv:5": "truncated_audio",
        "m.csv:6": "transcript_too_long",
        "m.csv:7": "too_short_audio",
    }
    cut = next(r for r in result.rejects if r.reason == "truncated_audio")
    assert "declares 4.00 s" in cut.detail and "holds 2.00 s" in cut.detail
