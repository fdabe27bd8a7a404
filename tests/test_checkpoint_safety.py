"""Loading a checkpoint cannot run code: trainer state is JSON + safetensors, a pickle is refused,
and a folder that is not a model is refused by `predict` with one line."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
import torch
from test_model_fixtures import tiny_config
from test_train_loop import Item, StandIn, collate, config, make_corpus

from model.audiollm import AudioLLM
from model.train.checkpoint import latest_checkpoint
from model.train.trainer import train
from pipeline.cli import main

DEMO_CLIP = Path(__file__).resolve().parents[1] / "pipeline" / "demo_corpus" / "audio" / "dlg1_1.flac"


class Payload:
    """What a crafted pickle does when loaded: here, leave a file behind."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "the payload ran"))


def test_resume_never_unpickles_and_refuses_a_crafted_state(tmp_path):
    (tmp_path / "audio").mkdir()
    corpus = make_corpus(tmp_path / "audio")
    cfg = config(tmp_path, max_steps=3, save_every=3)
    train(cfg, StandIn(), collate, corpus, item_type=Item)
    ckpt = latest_checkpoint(Path(cfg.out))
    assert not list(ckpt.glob("*.pt"))
    from model.train.safe_state import UnsafeStateError, load_state

    state = load_state(ckpt, "trainer_state")  # plain JSON + safetensors
    assert state["step"] == 3 and isinstance(state["optimizer"]["state"][0]["exp_avg"], torch.Tensor)

    # A run folder whose trainer state was swapped for a pickle that runs code when loaded.
    for old in ckpt.glob("trainer_state*"):
        old.unlink()
    marker = tmp_path / "pwned"
    (ckpt / "trainer_state.pt").write_bytes(pickle.dumps({"step": Payload(marker)}))
    with pytest.raises(UnsafeStateError, match="pickle"):
        train(cfg, StandIn(), collate, corpus, item_type=Item, resume=True)
    assert not marker.exists()


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ckpt")
    torch.manual_seed(0)
    return AudioLLM(tiny_config(root)).save_pretrained(root / "model")


def _hostile(model_dir: Path, root: Path, kind: str) -> Path:
    folder = root / kind
    folder.mkdir()
    for f in model_dir.iterdir():
        (folder / f.name).write_bytes(f.read_bytes())
    if kind == "config_not_json":
        (folder / "audiollm_config.json").write_text("{'decoder': __import__('os')}")
    elif kind == "weights_are_a_pickle":
        (folder / "audiollm.safetensors").write_bytes(pickle.dumps(Payload(root / "pwned")))
    elif kind == "config_names_no_model":
        config = json.loads((folder / "audiollm_config.json").read_text())
        config["speech"]["path"] = str(root / "no-such-encoder")
        (folder / "audiollm_config.json").write_text(json.dumps(config))
    return folder


@pytest.mark.parametrize("kind", ["config_not_json", "weights_are_a_pickle", "config_names_no_model"])
def test_predict_refuses_a_hostile_checkpoint_in_one_line(model_dir, tmp_path, capsys, kind):
    folder = _hostile(model_dir, tmp_path, kind)
    code = main(["predict", str(DEMO_CLIP), "--checkpoint", str(folder), "--max-new-tokens", "2"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and "refusing checkpoint" in err and "Traceback" not in err
    assert not (tmp_path / "pwned").exists()
