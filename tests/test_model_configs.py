"""configs/*.yaml model sections, the embedded weights they name, and gpu-check without a GPU."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from conftest import missing

from model.config import AudioLLMConfig

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def _model_section(name: str) -> AudioLLMConfig:
    return AudioLLMConfig.model_validate(yaml.safe_load((CONFIGS / name).read_text())["model"])


def test_paper_config_is_the_papers_model():
    cfg = _model_section("paper.yaml")
    assert cfg.speech.path == "openai/whisper-large-v3" and cfg.decoder.path == "google/gemma-2-9b-it"
    assert (cfg.speech.tokens_per_30s, cfg.emotion.tokens_per_30s) == (100, 10)
    assert cfg.speech.window == cfg.emotion.window == "fixed" and cfg.fusion.mode == "sequence"
    assert cfg.emotion.kind == "emotion2vec" and cfg.emotion.path.endswith("emotion2vec_plus_large")
    assert cfg.freeze.speech_encoder == cfg.freeze.emotion_encoder == "full"  # the paper trains its encoders
    train = yaml.safe_load((CONFIGS / "paper.yaml").read_text())["train"]
    assert (train["global_batch_size"], train["epochs"], train["optim"]["lr"]) == (48, 5, 5e-5)
    assert train["schedule"] == {"mode": "alternating", "round_unit": "epoch", "round_length": 1,
                                 "final_joint_epochs": 1, "final_joint_encoders": False}  # fmt: skip


def test_paper_config_builds_its_shapes_without_downloading():
    """Every weight of configs/paper.yaml's model on the meta device: shapes only, nothing fetched."""
    from model.gpu_check import build

    model = build(_model_section("paper.yaml"), device="meta")
    count = {name: sum(p.numel() for p in getattr(model, name).parameters())
             for name in ("speech_encoder", "emotion_encoder", "decoder")}  # fmt: skip
    assert 6.3e8 < count["speech_encoder"] < 6.4e8  # Whisper-large-v3's encoder: 635 M
    assert 3.0e8 < count["emotion_encoder"] < 3.2e8  # emotion2vec+ large: ~300 M (model card)
    assert 9.2e9 < count["decoder"] < 9.3e9  # Gemma-2-9B (+ LoRA)
    assert model.emotion_encoder.hidden_size == 1024 and model.emotion_encoder.num_hidden_states == 25
    assert model.counter.stream_tokens(4 * 16_000) == (100, 10)  # the 30 s window, whatever the clip length
    groups = model.parameter_groups()
    assert len(groups["emotion_encoder"]) == len(list(model.emotion_encoder.parameters()))  # trained in full
    assert next(model.decoder.parameters()).device.type == "meta"


def test_gpu_check_code_path_on_cpu_with_tiny_dims(tmp_path, capsys):
    from model.gpu_check import main

    out = tmp_path / "results.json"
    # one 30 s window per step (~8 s each on this shared 2-core machine): batch 1, one timed step
    assert main(["--tiny", "--batch-sizes", "1", "--steps", "1", "--out", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert [(r["gradient_checkpointing"], r["batch_size"]) for r in rows] == [(False, 1), (True, 1)]
    assert all(r["samples_per_s"] > 0 for r in rows)
    assert "checkpointing  on, batch   1" in capsys.readouterr().out


def test_tiny_config_counts_tokens_from_the_embedded_whisper():
    from model.audiollm import token_counter
    from model.convert_whisper_ct2 import wheel_model_dir

    try:
        wheel_model_dir()
    except FileNotFoundError as err:
        missing(str(err))
    cfg = _model_section("tiny.yaml")
    counter = token_counter(cfg)  # converts tiny.en into the cache on first use
    # 4 s: 400 mel frames -> 200 Whisper frames -> 14 speech tokens (groups of 15) and, from the
    # same 200 frames, 8 emotion tokens (60 per 30 s: groups of 25).
    assert counter.stream_tokens(4 * 16_000) == (14, 8)
    assert counter(4 * 16_000) == 22


def test_config_rejects_unknown_keys_and_budgets_that_do_not_divide():
    with pytest.raises(ValueError, match="extra"):
        AudioLLMConfig.model_validate({"speech": {"tokens": 100}})
    from model.adapters import group_size
    from model.encoders.base import FrameSpec

    with pytest.raises(ValueError, match="does not divide"):
        group_size(FrameSpec(frames_per_30s=1500, window_samples=480_000), 7, "speech")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message shown without a GPU")
def test_gpu_check_without_cuda_says_so(capsys):
    from model.gpu_check import main

    assert main([]) == 2
    assert "needs a CUDA GPU" in capsys.readouterr().out
