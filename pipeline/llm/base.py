"""The one LLM client interface. Stage code never asks which backend it has.

A backend takes requests and yields one result per request, in completion order, as soon as each
is done. Per-request failures (timeouts, HTTP errors after retries, malformed output) are
results with ``error`` set, never exceptions: the caller records them as rejects. Exceptions are
for the whole backend failing (cannot load the model, bad configuration).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field


class Sampling(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    temperature: float = 0.7
    top_p: float = 0.95
    max_tokens: int = 512
    n: int = Field(1, ge=1, description="candidates per request")
    # No seed unless asked for: a seed sent to a server is a promise the server must keep, and
    # vLLM's CPU build with n > 1 and chunked prefill (its default) dies on one
    # ("CPU Generator does not use offset" -> EngineDeadError). The request cache already makes a
    # finished run reproducible; in-process backends are seeded by the config that chooses them.
    seed: int | None = Field(None, description="sampling seed; None sends none (the server's own randomness)")


class ChatMessage(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    role: Literal["system", "user", "assistant"]
    content: str


class LLMRequest(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    key: str = Field(description="cache key; unique within one run() call")
    messages: list[ChatMessage]
    json_schema: dict[str, Any] | None = Field(None, description="structured-output constraint")
    schema_name: str = "answer"
    sampling: Sampling = Sampling()


class LLMResult(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    key: str
    texts: list[str] = Field(default_factory=list, description="one per candidate (sampling.n)")
    finish_reasons: list[str] = Field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0
    attempts: int = 1
    error: str | None = Field(None, description="why no usable answer came back, after retries")


class LLMClient(Protocol):
    backend: str  # "openai" / "vllm" / "transformers"
    model: str

    def run(
        self, requests: Iterable[LLMRequest], on_tokens: Callable[[int], None] | None = None
    ) -> Iterator[LLMResult]:
        """Yield exactly one result per request, as each completes.

        ``on_tokens(k)``, for progress: k more completion tokens were written. A backend that
        learns its token counts only with each result (an HTTP API) need not call it.
        """
        ...

    def close(self) -> None: ...
