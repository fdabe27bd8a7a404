"""The transformers backend on a tiny random Llama: batching, JSON grammar, n samples, determinism."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import pytest
import torch
import xgrammar as xgr
from pydantic import BaseModel, ConfigDict, Field
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from pipeline.llm.base import ChatMessage, LLMRequest, Sampling
from pipeline.llm.config import LLMConfig, make_client

CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


class Verdict(BaseModel):
    """Small enough that a random model's constrained answer always ends within the token budget."""

    model_config = ConfigDict(extra="forbid")

    emotion: Literal["anger", "joy", "neutral"]
    cues: list[Literal["loud", "fast", "quiet"]] = Field(min_length=1, max_length=2)
    note: str = Field(max_length=6)


SCHEMA = Verdict.model_json_schema()


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    """A byte-level BPE tokenizer with a chat template, and a random 2-layer Llama, saved to disk."""
    path = tmp_path_factory.mktemp("tiny-llama")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    corpus = ['{"emotion": "anger", "cues": ["loud"], "note": "x"}', "The speaker sounds calm and quiet."] * 20
    tok.train_from_iterator(corpus, trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    tokenizer.chat_template = CHATML
    tokenizer.save_pretrained(path)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=512,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
    )
    model = LlamaForCausalLM(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def client(tiny_model):
    threads = torch.get_num_threads()
    yield make_client(
        LLMConfig(backend="transformers", model=str(tiny_model), batch_size=3, max_model_len=256, threads=1)
    )
    torch.set_num_threads(threads)  # the setting is process-wide: leave it as other tests expect


def request(key: str, text: str, schema=SCHEMA, **sampling) -> LLMRequest:
    messages = [ChatMessage(role="system", content="Answer in JSON."), ChatMessage(role="user", content=text)]
    return LLMRequest(key=key, messages=messages, json_schema=schema, sampling=Sampling(max_tokens=48, **sampling))


TEXTS = ["I can't believe it!", "fine", "We won, we actually won the whole thing!", "Leave."]


def test_constrained_batches_parse_as_the_schema(client):
    results = list(client.run(request(f"u{i}", t, temperature=1.0, n=2, seed=5) for i, t in enumerate(TEXTS)))
    assert [r.key for r in results] == [f"u{i}" for i in range(len(TEXTS))]
    for r in results:
        assert r.error is None and len(r.texts) == 2 and r.finish_reasons == ["stop", "stop"]
        for text in r.texts:
            Verdict.model_validate_json(text)
        assert r.prompt_tokens > 0 and r.completion_tokens >= 2 * len('{"emotion":"joy"}') // 4


def test_same_seed_same_output_and_greedy_is_deterministic(client):
    sampled = [
        list(client.run(request(f"u{i}", t, temperature=1.0, n=2, seed=11) for i, t in enumerate(TEXTS[:3])))
        for _ in range(2)
    ]
    assert [r.texts for r in sampled[0]] == [r.texts for r in sampled[1]]
    greedy = list(client.run([request("g", TEXTS[0], temperature=0.0, n=2)]))[0]
    assert greedy.texts[0] == greedy.texts[1] and greedy.completion_tokens > 0


def test_left_padding_does_not_change_greedy_answers(tiny_model, client):
    batched = {r.key: r.texts for r in client.run(request(f"u{i}", t, temperature=0.0) for i, t in enumerate(TEXTS))}
    single = make_client(LLMConfig(backend="transformers", model=str(tiny_model), batch_size=1, max_model_len=256))
    alone = {r.key: r.texts for r in single.run(request(f"u{i}", t, temperature=0.0) for i, t in enumerate(TEXTS))}
    assert batched == alone


def test_failures_are_per_request_results_and_sampling_groups_split(client):
    requests = [
        request("ok", "fine", temperature=0.0),
        request("bad-schema", "fine", schema={"type": "object", "properties": {"x": {"type": "nonsense"}}}),
        request("too-long", "word " * 400, temperature=0.0),
        request("free", "fine", schema=None, temperature=0.0),
        request("sampled", "Leave.", temperature=1.0, n=2, seed=1),  # other sampling: its own generate()
    ]
    results = {r.key: r for r in client.run(requests)}
    assert set(results) == {r.key for r in requests}
    assert results["ok"].error is None and len(results["ok"].texts) == 1
    assert results["sampled"].error is None and len(results["sampled"].texts) == 2
    assert results["bad-schema"].error and results["bad-schema"].texts == []
    assert "exceeds max_model_len 256" in results["too-long"].error
    # No grammar: the random model writes free text until the token budget runs out.
    assert results["free"].error is None and results["free"].finish_reasons == ["length"]
    assert results["free"].completion_tokens == 48


def test_grammar_forbids_what_strict_json_parsers_reject(client):
    answer = '{"emotion": "joy", "cues": ["loud"], "note": "%s"}'
    assert xgr.GrammarMatcher(client.grammar(SCHEMA)).accept_string(answer % "yay")
    # A raw control character inside a bounded string (xgrammar 0.2.8 allows it unpatched).
    assert not xgr.GrammarMatcher(client.grammar(SCHEMA)).accept_string(answer % "a\x03")
    assert not xgr.GrammarMatcher(client.grammar(SCHEMA)).accept_string(answer % "toolong")


def test_tokens_are_reported_as_they_are_written(client):
    # A batch's answers arrive together at its end: progress comes from the tokens, step by step.
    reports: list[int] = []
    results = list(
        client.run((request(f"t{i}", t, temperature=1.0, n=2, seed=5) for i, t in enumerate(TEXTS[:3])), reports.append)
    )
    assert len(reports) > 3 and all(0 < k <= 6 for k in reports)  # one call per decode step, 3 requests x 2 rows
    assert sum(reports) == sum(r.completion_tokens for r in results)
