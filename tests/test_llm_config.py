"""LLMConfig validation and make_client's lazy backend table."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest
from pydantic import ValidationError

from pipeline.llm.config import BACKENDS, LLMConfig, make_client
from pipeline.llm.openai_backend import OpenAIClient


def test_defaults_are_the_embedded_cpu_teacher():
    cfg = LLMConfig()
    assert (cfg.backend, cfg.model) == ("transformers", "embedded")
    assert cfg.api_key_env == "OPENAI_API_KEY"


@pytest.mark.parametrize(
    "bad",
    [
        {"backend": "llamafile"},
        {"api_key": "sk-123"},  # keys come from the environment only
        {"concurrency": 0},
        {"backend": "openai", "base_urls": []},
        {"backoff_base_s": 5.0, "backoff_max_s": 1.0},
        {"requests_per_s": 0},
    ],
)
def test_bad_settings_are_refused(bad):
    with pytest.raises(ValidationError):
        LLMConfig(**bad)


def test_make_client_builds_the_chosen_backend():
    client = make_client(LLMConfig(backend="openai", model="m", base_urls=["http://h:1/v1/"]))
    assert isinstance(client, OpenAIClient) and client.backend == "openai" and client.model == "m"
    assert client._endpoints == ["http://h:1/v1/chat/completions"]


@pytest.mark.parametrize("name", sorted(BACKENDS))
def test_every_backend_class_has_the_client_interface(name):
    module, cls = BACKENDS[name].split(":")
    backend = getattr(importlib.import_module(module), cls)  # importing never imports vllm itself
    assert backend.backend == name and callable(backend.run) and callable(backend.close)


def test_the_http_backend_imports_neither_torch_nor_vllm():
    code = (
        "import sys; from pipeline.llm.config import LLMConfig, make_client;"
        "make_client(LLMConfig(backend='openai'));"
        "print(sorted(m for m in ('torch', 'vllm', 'transformers') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
