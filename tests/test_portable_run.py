"""A run folder moved to another machine (another absolute path) still trains and evaluates.

The run is built by `make data`'s own adapter and corpus steps (no teacher: reasoning needs
rationales, the other tasks do not), on a copy of part of the demo corpus standing in for a
user's dataset; then the run folder and the dataset both move, and only the run's recorded audio
roots plus ``--audio-root`` say where the audio is now.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from test_model_fixtures import tiny_config

from model.commands import train as train_command
from model.eval.report import load_summary
from model.train.data import CorpusError, load_corpus
from pipeline.audio_roots import BUNDLED_DEMO, ROOTS_FILE, read_roots
from pipeline.cli import main
from pipeline.data_run import DataConfig, build_steps
from pipeline.datasets.demo import BUNDLED

# Two speakers per split would do; one keeps the run small (the demo splits by speaker).
KEEP = {"spk1": 6, "spk5": 2, "spk7": 2}


def user_dataset(folder: Path) -> Path:
    """A few demo utterances copied out of the package: a dataset that lives in a user's folder."""
    rows = [json.loads(line) for line in (BUNDLED / "utterances.jsonl").read_text().splitlines() if line.strip()]
    kept = [r for s, n in KEEP.items() for r in [r for r in rows if r["speaker"] == s][:n]]
    (folder / "audio").mkdir(parents=True)
    for row in kept:
        shutil.copy(BUNDLED / row["file"], folder / row["file"])
    (folder / "utterances.jsonl").write_text("".join(json.dumps(r) + "\n" for r in kept))
    return folder


def build_run(out: Path, root: Path | None, hf: bool = False) -> None:
    """`make data`'s adapter and corpus steps only."""
    cfg = DataConfig(dataset="demo", root=str(root) if root else None, out=str(out), hf_export=hf, audit=False)
    steps = {s.name: s for s in build_steps(cfg)}
    steps["adapters"].action()
    steps["corpora"].action()


@pytest.fixture(scope="module")
def moved(tmp_path_factory):
    """(moved run folder, moved dataset folder, the dataset's old folder)."""
    base = tmp_path_factory.mktemp("portable")
    data = user_dataset(base / "machine-a" / "data" / "demo-copy")
    build_run(base / "machine-a" / "runs" / "demo", data, hf=True)
    run = shutil.move(base / "machine-a" / "runs" / "demo", base / "machine-b" / "work" / "run")
    dataset = shutil.move(data, base / "machine-b" / "datasets" / "demo-copy")
    shutil.rmtree(base / "machine-a")  # nothing may still point there
    return Path(run), Path(dataset), data


def test_tables_store_paths_relative_to_a_recorded_root(moved):
    run, _, old = moved
    assert read_roots(run).roots == {"demo": str(old)}
    assert read_roots(run / "corpora").roots == {"demo": str(old)}
    for table in (run / "utterances.parquet", run / "corpora" / "train.parquet", run / "corpora" / "test.parquet"):
        paths = pd.read_parquet(table, columns=["audio_path"])["audio_path"]
        assert len(paths) and all(p.startswith("audio/") and p.endswith(".flac") for p in paths), table
    from datasets import load_from_disk

    export = load_from_disk(str(run / "hf"))
    assert export["train"][0]["audio_path"].startswith("audio/")
    assert (run / "hf" / ROOTS_FILE).is_file() and str(old) in (run / "hf" / "README.md").read_text()


def test_a_moved_dataset_fails_before_training_naming_the_file_and_the_option(moved):
    run, dataset, old = moved
    with pytest.raises(CorpusError) as caught:
        load_corpus(run / "corpora")
    message = str(caught.value)
    assert f"{old}/audio/spk" in message and "--audio-root" in message and f"audio root of demo: {old}" in message
    examples = load_corpus(run / "corpora", [str(dataset)])
    assert examples and all(Path(e.audio_path).is_file() and e.audio_path.startswith(str(dataset)) for e in examples)
    assert load_corpus(run / "corpora" / "train.parquet", [f"demo={dataset}"])  # one file, a named dataset
    with pytest.raises(CorpusError, match="is not a folder"):
        load_corpus(run / "corpora", [str(dataset / "nowhere")])


def test_the_bundled_demo_resolves_through_the_installed_package(tmp_path):
    build_run(tmp_path / "a" / "run", None)
    run = shutil.move(tmp_path / "a" / "run", tmp_path / "b" / "run")
    assert read_roots(run).roots == {"demo": BUNDLED_DEMO}
    stored = pd.read_parquet(Path(run) / "corpora" / "train.parquet", columns=["audio_path"])["audio_path"]
    assert all(p.startswith("audio/") for p in stored)  # no trace of this machine's install path
    examples = load_corpus(Path(run) / "corpora")
    assert examples and all(Path(e.audio_path).parent == BUNDLED / "audio" for e in examples)


def test_the_moved_run_trains_and_evaluates(moved, tmp_path, capsys):
    run, dataset, _ = moved
    model_cfg = tiny_config(tmp_path / "ckpt")
    train = dict(
        device="cpu", global_batch_size=2, micro_batch_size=2, max_steps=2, eval_split=None, num_workers=0,
        save_every=2, tensorboard=False, progress=False, optim={"lr": 1e-3, "warmup_steps": 1},
    )  # fmt: skip
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump({"model": model_cfg.model_dump(mode="json"), "train": train}))
    argv = ["--config", str(config), "--corpus", str(run / "corpora"), "--out", str(tmp_path / "train")]
    torch.manual_seed(0)

    assert train_command.main(argv) == 2
    err = capsys.readouterr().err
    assert "not found" in err and "--audio-root" in err

    assert train_command.main([*argv, "--audio-root", str(dataset)]) == 0, capsys.readouterr().err
    assert (tmp_path / "train" / "final").is_dir()

    out = tmp_path / "eval"
    evaluate = ["eval", "--checkpoint", str(tmp_path / "train"), "--corpus", str(run / "corpora"), "--split", "test"]
    evaluate += ["--task", "emotion_recognition", "--max-new-tokens", "4", "--out", str(out)]
    assert main(evaluate) == 2
    assert "--audio-root" in capsys.readouterr().err
    assert main([*evaluate, "--audio-root", str(dataset)]) == 0, capsys.readouterr().err
    assert load_summary(out).n_items == KEEP["spk7"]
    assert pd.read_parquet(out / "rejects.parquet").empty  # every clip found and read
