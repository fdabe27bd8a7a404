"""The request cache: what the key covers, failures re-asked, and results that survive SIGKILL."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from pipeline.llm.base import ChatMessage, LLMResult
from pipeline.request_cache import RequestCache, canonical_json, key_prefix, request_key

MESSAGES = [ChatMessage(role="system", content="sys"), ChatMessage(role="user", content="<transcript>hi</transcript>")]
PARTS = dict(
    template_id="rationale/elaborate.v1",
    template_hash="0123456789abcdef",
    backend="openai",
    model="m",
    sampling_json=canonical_json({"temperature": 0.7, "n": 2}),
    schema_version="rationale-v1",
    schema_json=canonical_json({"title": "RationaleAnswer"}),
)


def key(messages=MESSAGES, attempt: str = "", **changes) -> str:
    return request_key(key_prefix(**(PARTS | changes)), messages, attempt)


def test_key_is_stable_and_covers_every_part() -> None:
    base = key()
    assert base == key() and len(base) == 64
    changed = [key(**{name: value + "x"}) for name, value in PARTS.items()]
    changed.append(key(messages=[MESSAGES[0], ChatMessage(role="user", content="<transcript>hi!</transcript>")]))
    changed.append(key(messages=[ChatMessage(role="user", content="sys"), MESSAGES[1]]))  # role matters
    changed.append(key(attempt="retry:1:0"))
    assert base not in changed and len(set(changed)) == len(changed)


def test_key_has_no_ambiguous_joins() -> None:
    # Fields are serialised as a JSON list, so moving text between fields changes the key.
    a = request_key("p", [ChatMessage(role="user", content="ab")], "c")
    b = request_key("p", [ChatMessage(role="user", content="a")], "bc")
    assert a != b


def test_roundtrip_and_failures(tmp_path: Path) -> None:
    with RequestCache(tmp_path / "c.sqlite") as cache:
        ok = LLMResult(key="k1", texts=["{}", "{ }"], finish_reasons=["stop", "length"], prompt_tokens=3, latency_s=0.5)
        cache.put(ok, "t", "m")
        cache.put(LLMResult(key="k2", error="http 500 after 5 attempts"), "t", "m")
        hits = cache.get_many(["k1", "k2", "k3"])
        assert set(hits) == {"k1"} and hits["k1"].result == ok and hits["k1"].created_at.tzinfo is not None
        assert cache.counts() == {"ok": 1, "failed": 1}
        # A failure is re-asked next time; when it then succeeds, the success replaces it.
        cache.put(LLMResult(key="k2", texts=["{}"]), "t", "m")
        assert cache.get("k2").texts == ["{}"] and cache.counts() == {"ok": 2, "failed": 0}
        # A late failure never overwrites a success.
        cache.put(LLMResult(key="k1", error="timeout"), "t", "m")
        assert cache.get("k1") == ok


def test_many_keys_in_one_lookup(tmp_path: Path) -> None:
    with RequestCache(tmp_path / "c.sqlite") as cache:
        for i in range(2000):  # more than one SQL statement's worth of parameters
            cache.put(LLMResult(key=f"k{i}", texts=[str(i)]))
        hits = cache.get_many(f"k{i}" for i in range(0, 2500))
        assert len(hits) == 2000 and hits["k1999"].result.texts == ["1999"]


def test_results_survive_sigkill(tmp_path: Path) -> None:
    """Every result whose put() returned is there after the writer is killed without warning."""
    path = tmp_path / "c.sqlite"
    writer = textwrap.dedent(
        f"""
        import sys
        from pipeline.llm.base import LLMResult
        from pipeline.request_cache import RequestCache
        cache = RequestCache({str(path)!r})
        i = 0
        while True:
            cache.put(LLMResult(key=f"k{{i}}", texts=["x" * 500]))
            print(i, flush=True)
            i += 1
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", writer], stdout=subprocess.PIPE, text=True)
    last = -1
    for line in proc.stdout:
        last = int(line)
        if last >= 300:
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with RequestCache(path) as cache:
        hits = cache.get_many(f"k{i}" for i in range(last + 1))
        assert len(hits) == last + 1
