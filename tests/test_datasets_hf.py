"""Hugging Face adapter: a dataset saved to disk with audio paths, and one with embedded bytes."""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile as sf

datasets = pytest.importorskip("datasets")

from pipeline.datasets import load_dataset  # noqa: E402


def wav_bytes(seconds: float, rate: int = 8000) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, np.zeros(int(rate * seconds), np.float32), rate, format="WAV")
    return buffer.getvalue()


def test_saved_dataset_with_paths_and_class_labels(tmp_path):
    for name, seconds in [("a", 1.0), ("b", 0.5)]:
        sf.write(tmp_path / f"{name}.flac", np.zeros(int(16000 * seconds), np.float32), 16000)
    features = datasets.Features(
        {
            "audio": datasets.Value("string"),
            "text": datasets.Value("string"),
            "emotion": datasets.ClassLabel(names=["neutral", "angry", "joyful"]),
            "speaker_id": datasets.Value("string"),
        }
    )
    ds = datasets.Dataset.from_dict(
        {
            "audio": [str(tmp_path / "a.flac"), str(tmp_path / "b.flac"), str(tmp_path / "gone.flac")],
            "text": ["Fine.", "Stop!", "Yay!"],
            "emotion": [0, 1, 2],
            "speaker_id": ["s1", "s2", "s1"],
        },
        features=features,
    )
    dd = datasets.DatasetDict({"train": ds, "test": ds.select([1])})
    dd.save_to_disk(str(tmp_path / "saved"))
    result = load_dataset("hf", tmp_path / "saved", label_map={"joyful": "happy"})
    got = [(u.id, u.split, u.emotion.value, u.speaker, u.transcript) for u in result.utterances]
    assert got == [
        ("hf/train/0", "train", "neutral", "s1", "Fine."),
        ("hf/train/1", "train", "angry", "s2", "Stop!"),
        ("hf/test/0", "test", "angry", "s2", "Stop!"),
    ]
    assert result.utterances[0].duration_s == pytest.approx(1.0)
    assert [(r.record_id, r.reason) for r in result.rejects] == [("hf/train/2", "missing_audio")]


def test_audio_feature_with_embedded_bytes_is_not_decoded_by_datasets(tmp_path, monkeypatch):
    monkeypatch.setenv("EMOREASON_CACHE", str(tmp_path / "cache"))
    # Built as the Arrow struct an Audio column stores, then cast: encoding through Audio() needs torchcodec.
    ds = datasets.Dataset.from_dict(
        {
            "audio": [{"bytes": wav_bytes(0.5), "path": "x.wav"}, {"bytes": b"junk", "path": "y.wav"}],
            "label": ["sad", "sad"],
            "id": ["u1", "u2"],
        }
    ).cast_column("audio", datasets.Audio())
    assert isinstance(ds.features["audio"], datasets.Audio) and ds.features["audio"].decode
    result = load_dataset("hf", dataset=ds)
    (u,) = result.utterances
    assert u.id == "hf/u1" and u.sample_rate == 8000 and u.duration_s == pytest.approx(0.5)
    assert u.audio_path.startswith(str(tmp_path / "cache" / "hf_audio"))
    assert [(r.record_id, r.reason) for r in result.rejects] == [("hf/u2", "missing_audio")]
    again = load_dataset("hf", dataset=ds)  # content-addressed cache: same file, not rewritten
    assert again.utterances[0].audio_path == u.audio_path


def test_missing_columns_are_clear(tmp_path):
    ds = datasets.Dataset.from_dict({"audio": ["a.wav"], "mood": ["sad"]})
    with pytest.raises(ValueError, match="no label column"):
        load_dataset("hf", dataset=ds)
    with pytest.raises(FileNotFoundError, match="save_to_disk"):
        load_dataset("hf", tmp_path / "nope")
