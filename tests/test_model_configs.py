"""configs/*.yaml model sections, the embedded weights they name, and gpu-check without a GPU."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from model.config import AudioLLMConfig

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def _model_section(name: str) -> AudioLLMConfig:
    return AudioLLMConfig.model_validate(yaml.safe_load((CONFIGS / name).read_text())["model"])


def test_paper_config_is_the_papers_model():
    cfg = _model_section("paper.yaml")
    assert cfg.speech.path == "openai/whisper-large-v3" and cfg.decoder.path == "google/gemma-2-9b-it"
    assert (cfg.speech.tokens_per_30s, cfg.emotion.tokens_per_30s) == (100, 10)
    assert cfg.speech.window == cfg.emotion.window == "fixed" and cfg.fusion.mode == "sequence"


def test_tiny_config_counts_tokens_from_the_embedded_whisper():
    from model.audiollm import token_counter
    from model.convert_whisper_ct2 import wheel_model_dir

    try:
        wheel_model_dir()
    except FileNotFoundError as err:
        pytest.skip(str(err))
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
