"""``emoreason predict`` with a tiny random AudioLLM saved in tmp_path: any audio in, clear errors out."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from test_model_fixtures import tiny_config

from model.audiollm import AudioLLM
from pipeline.cli import main

DEMO_CLIP = Path(__file__).resolve().parents[1] / "pipeline" / "demo_corpus" / "audio" / "dlg1_1.flac"
ARGS = ["--max-new-tokens", "6", "--protocol", "ravdess8"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("predict")
    torch.manual_seed(0)
    return AudioLLM(tiny_config(root)).save_pretrained(root / "run" / "final")


@pytest.fixture(scope="module")
def stereo_48k(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("audio") / "stereo48k.wav"
    t = np.arange(int(1.5 * 48_000)) / 48_000
    left, right = 0.3 * np.sin(2 * np.pi * 220 * t), 0.2 * np.sin(2 * np.pi * 330 * t)
    sf.write(path, np.stack([left, right], axis=1), 48_000)
    return path


def predict(capsys, *argv) -> tuple[int, str, str]:
    code = main(["predict", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_demo_clip_and_48k_stereo_file_as_json(checkpoint, stereo_48k, capsys):
    assert DEMO_CLIP.is_file()
    # the run folder resolves to its final/ model
    code, out, err = predict(
        capsys, str(DEMO_CLIP), str(stereo_48k), "--checkpoint", str(checkpoint.parent), "--json", *ARGS
    )
    assert code == 0, err
    rows = json.loads(out)
    assert [r["file"] for r in rows] == [str(DEMO_CLIP), str(stereo_48k)]
    assert rows[1]["duration_s"] == pytest.approx(1.5, abs=1e-3)  # resampled to 16 kHz mono, length kept
    for r in rows:
        assert r["error"] is None and r["status"] in {"final_line", "synonym", "ambiguous", "none", "refusal"}
        assert isinstance(r["rationale"], str)


def test_ravdess_clip_with_transcript_as_text(checkpoint, ravdess_dir, capsys):
    clip = sorted((ravdess_dir / "Actor_17").glob("*.flac"))[0]
    code, out, err = predict(
        capsys, str(clip), "--checkpoint", str(checkpoint), "--transcript", "Kids are talking by the door.", *ARGS
    )
    assert code == 0, err
    assert out.startswith(str(clip)) and "emotion:" in out and "rationale:" in out


def test_corrupt_file_fails_cleanly_and_the_others_still_run(checkpoint, stereo_48k, tmp_path, capsys):
    corrupt = tmp_path / "broken.wav"
    corrupt.write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt garbage")
    code, out, err = predict(capsys, str(corrupt), str(stereo_48k), "--checkpoint", str(checkpoint), "--json", *ARGS)
    assert code == 1
    assert f"cannot use {corrupt}" in err and "corrupt_audio" in err
    rows = json.loads(out)
    assert rows[0]["status"] == "error" and rows[0]["error"].startswith("corrupt_audio")
    assert rows[1]["error"] is None


def test_missing_checkpoint_and_missing_file(tmp_path, stereo_48k, capsys):
    code, _, err = predict(capsys, str(stereo_48k), "--checkpoint", str(tmp_path / "nope"))
    assert code == 2 and f"checkpoint not found: {tmp_path / 'nope'}" in err
    code, _, err = predict(capsys, str(stereo_48k), "--checkpoint", str(tmp_path))
    assert code == 2 and "holds no AudioLLM checkpoint" in err
    code, _, err = predict(capsys, str(stereo_48k), "a.wav", "--checkpoint", str(tmp_path), "--transcript", "x")
    assert code == 2 and "1 --transcript for 2 audio files" in err


def test_missing_audio_file_is_named(checkpoint, tmp_path, capsys):
    missing = tmp_path / "missing.wav"
    code, out, err = predict(capsys, str(missing), "--checkpoint", str(checkpoint), *ARGS)
    assert code == 1 and f"cannot use {missing}" in err and "missing_audio" in err
    assert "error: missing_audio" in out


def test_a_clip_longer_than_the_window_says_what_the_model_heard(checkpoint, tmp_path, capsys):
    long = tmp_path / "long.wav"
    sf.write(long, (0.05 * np.random.default_rng(0).standard_normal(16_000 * 40)).astype(np.float32), 16_000)
    code, out, err = predict(capsys, str(long), "--checkpoint", str(checkpoint), "--json", *ARGS)
    assert code == 0, err
    (row,) = json.loads(out)
    window = AudioLLM.from_pretrained(checkpoint).counter.max_samples / 16_000  # tiny test models: a few s
    assert (row["duration_s"], row["heard_s"]) == (40.0, window)
    assert f"{long} is 40.00 s; the model hears only its first {window:.2f} s" in err
