"""The model and its collator from the ``model:`` section of a config file."""

from __future__ import annotations

from pathlib import Path

import yaml

from model.config import AudioLLMConfig


def model_config(path: str | Path) -> AudioLLMConfig:
    tree = yaml.safe_load(Path(path).read_text()) or {}
    if "model" not in tree:
        raise ValueError(f"{path}: no `model:` section (keys of model/config.py: AudioLLMConfig)")
    return AudioLLMConfig.model_validate(tree["model"])


def build_model(path: str | Path | AudioLLMConfig):
    """(AudioLLM, its AudioCollator, the resolved AudioLLMConfig); base weights load here."""
    from model.audiollm import AudioLLM
    from model.collator import AudioCollator

    cfg = path if isinstance(path, AudioLLMConfig) else model_config(path)
    model = AudioLLM(cfg)
    return model, AudioCollator(model.tokenizer, model.counter, cfg.audio_marker), cfg
