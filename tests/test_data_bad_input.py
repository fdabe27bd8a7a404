"""A manifest of every kind of broken file, through `emoreason list`, `profile` and `data`: each
bad row is named on one line, the run finishes, the corpora hold only clean rows, and training
on them runs. Plus the data run's own robustness: unreadable step stamps, early split errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from scripted_server import ScriptedServer
from test_profile_bad_audio import voice
from test_train_loop import Item, StandIn, collate, config

from pipeline.cli import main
from pipeline.config import load_config
from pipeline.data_run import STAMPS_DIR, DataConfig, run_data
from pipeline.parquet import read_records
from pipeline.records import Reject

RATE = 16_000
SAID = "Kids are talking by the door."
GOOD = [f"good{i}" for i in range(6)] + ["latin1"]
# id -> (the manifest line it is on, the reason it is refused for, which step finds it)
BAD = {
    "half": (9, "truncated_audio", "adapter"),
    "wordy": (10, "transcript_too_long", "adapter"),
    "blip": (11, "too_short_audio", "adapter"),
    "long": (12, "too_long_audio", "adapter"),
    "undecodable": (13, "bad_encoding", "adapter"),
    "typo": (14, "bad_split", "adapter"),
    "trunc": (15, "corrupt_audio", "profile"),
    "nan": (16, "nan_audio", "profile"),
    "quiet": (17, "silent_audio", "profile"),
}


@pytest.fixture
def broken(tmp_path) -> Path:
    d = tmp_path / "broken"
    d.mkdir()
    for i in range(6):
        sf.write(d / f"good{i}.wav", voice(2.5 + 0.1 * i, 140 + 4 * i, i), RATE)
    full = voice(3.5, 150, 9)
    sf.write(d / "full.wav", full, RATE, subtype="PCM_16")
    (d / "half.wav").write_bytes((d / "full.wav").read_bytes()[: 44 + full.size])  # header: 3.5 s; data: 1.75 s
    sf.write(d / "blip.wav", full[:800], RATE)  # 0.05 s
    sf.write(d / "long.wav", np.zeros(8000 * 300, np.int16), 8000)  # 300 s
    sf.write(d / "full.flac", full, RATE)
    (d / "trunc.flac").write_bytes((d / "full.flac").read_bytes()[:-4000])
    nan = full.copy()
    nan[1000:1100] = np.nan
    sf.write(d / "nan.wav", nan, RATE, subtype="FLOAT")
    sf.write(d / "quiet.wav", np.zeros(RATE * 2, np.float32), RATE)
    rows = [f"{p}.wav,{p},sad,s1,train,{SAID}".encode() for p in GOOD[:6]]
    rows += [
        b"good0.wav,latin1,sad,s1,train,caf\xe9 au lait",  # cp1252: read as such, kept
        b"half.wav,half,sad,s1,train," + SAID.encode(),
        b"good1.wav,wordy,sad,s1,train," + b"talking " * 1250,
        b"blip.wav,blip,sad,s1,train,Oh.",
        b"long.wav,long,sad,s1,train," + SAID.encode(),
        b"good2.wav,undecodable,sad,s1,train,bad \x81 byte",
        b"good3.wav,typo,sad,s1,trian," + SAID.encode(),
        b"trunc.flac,trunc,sad,s1,train," + SAID.encode(),
        b"nan.wav,nan,sad,s1,train," + SAID.encode(),
        b"quiet.wav,quiet,sad,s1,train," + SAID.encode(),
    ]
    (d / "m.csv").write_bytes(b"path,id,label,speaker,split,transcript\n" + b"\n".join(rows) + b"\n")
    return d


def _bad_lines(out: str, step: str | None = None) -> dict[str, str]:
    """The line naming each bad row of that step (or every step) in a command's output."""
    found = {}
    for uid, (_line, reason, found_by) in BAD.items():
        if step is None or found_by == step:
            lines = [x for x in out.splitlines() if f"[manifest/{uid}]" in x and reason in x]
            assert len(lines) == 1, (uid, reason, out)
            found[uid] = lines[0]
    return found


def test_list_profile_and_data_name_every_bad_row_and_keep_only_clean_ones(broken, tmp_path, capsys):
    manifest = str(broken / "m.csv")
    assert main(["list", "manifest", "--root", manifest]) == 0
    for uid, line in _bad_lines(capsys.readouterr().out, "adapter").items():
        assert f"m.csv:{BAD[uid][0]}" in line

    assert main(["profile", "manifest", "--root", manifest, "--out", str(tmp_path / "p"), "--workers", "1"]) == 0
    printed = capsys.readouterr().out
    _bad_lines(printed)

    out = tmp_path / "run"
    with ScriptedServer() as server:
        cfg = load_config(
            DataConfig,
            overrides={
                "dataset": "manifest",
                "root": manifest,
                "out": str(out),
                "workers": 1,
                "generate.progress": False,
                "generate.llm.backend": "openai",
                "generate.llm.base_urls": [server.url],
                "generate.llm.model": "scripted",
                "audit": False,
                "hf_export": False,
            },
        )
        run_data(cfg)
    _bad_lines(capsys.readouterr().out)
    from model.train.data import load_corpus

    examples = load_corpus(out / "corpora")  # audio paths resolved against the run's recorded roots
    assert {e.utterance_id for e in examples} == {f"manifest/{g}" for g in GOOD}
    corpus_rejects = {r.record_id: r for r in read_records(out / "corpora" / "rejects.parquet", Reject)}
    for uid, (_, reason, step) in BAD.items():
        if step == "profile":
            assert corpus_rejects[f"manifest/{uid}"].reason == reason
    every = {r.record_id: r.reason for r in read_records(out / "rejects.parquet", Reject)}
    assert {f"manifest/{uid}": reason for uid, (_, reason, _s) in BAD.items()}.items() <= every.items()

    # Training on the corpora runs: no rejected audio is left to stop it.
    run_cfg = config(tmp_path, epochs=1, eval_split=None, tasks=["asr", "emotion_recognition"])
    from model.train.trainer import train

    result = train(run_cfg, StandIn(), collate, examples, item_type=Item)
    assert result.steps > 0


def test_a_stamp_cut_in_half_means_not_done(tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    with ScriptedServer() as server:
        overrides = {
            "out": str(out), "workers": 1, "generate.limit": 2, "generate.progress": False, "audit": False,
            "hf_export": False, "generate.llm.backend": "openai", "generate.llm.base_urls": [server.url],
            "generate.llm.model": "scripted",
        }  # fmt: skip
        cfg = load_config(DataConfig, overrides=overrides)
        run_data(cfg)
        stamp = out / STAMPS_DIR / "corpora.json"
        good = stamp.read_text()
        stamp.write_text(good[: len(good) // 2])  # as a kill while writing left it
        capsys.readouterr()
        run_data(cfg)
        assert "[corpora] running" in capsys.readouterr().out
        # The same inputs again; the outputs' stamps are those of the files the rerun wrote.
        assert json.loads(stamp.read_text())["inputs"] == json.loads(good)["inputs"]
        good = stamp.read_text()

        # A kill while the stamp is written leaves the old stamp whole.
        def killed(self, text, *args, **kwargs):
            with open(self, "w") as f:
                f.write(text[:5])
            raise KeyboardInterrupt

        (out / "corpora" / "manifest.json").unlink()  # make the corpora step run again
        monkeypatch.setattr(Path, "write_text", killed)
        with pytest.raises(KeyboardInterrupt):
            run_data(cfg)
        monkeypatch.undo()
        assert stamp.read_text() == good


@pytest.mark.parametrize(
    ("splits", "said"),
    [(["holdout"], "'holdout'"), (["train", "test"], "speaker 's' of demo has utterances in the test split")],
)
def test_a_split_the_corpora_cannot_cut_stops_the_run_before_any_work(tmp_path, capsys, splits, said):
    root = tmp_path / "demo"
    (root / "audio").mkdir(parents=True)
    sf.write(root / "audio" / "a.wav", voice(2.0, 150, 0), RATE)
    (root / "utterances.jsonl").write_text(
        "".join(
            f'{{"id": "a{i}", "speaker": "s", "gender": "male", "split": "{split}", "transcript": "Hi.", '
            '"emotion": "sad", "file": "audio/a.wav"}\n'
            for i, split in enumerate(splits)
        )
    )
    out = tmp_path / "run"
    assert main(["data", "--dataset", "demo", "--root", str(root), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert said in err and len(err.strip().splitlines()) == 1
    assert not (out / "profiles").exists() and not (out / "utterances.parquet").exists()
