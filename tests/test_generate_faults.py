"""Stage one end to end through the openai backend, against the scripted server with injected faults."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

from scripted_server import FAULTS, ScriptedServer  # tests/ is on sys.path (pytest rootdir conftest)

from pipeline.generate import generate
from pipeline.generate_config import GenerateConfig
from pipeline.labels import Emotion
from pipeline.llm.base import Sampling
from pipeline.llm.config import LLMConfig
from pipeline.parquet import read_records
from pipeline.records import ContextTurn, GenerationRecord, Reject, Utterance

REPO = Path(__file__).resolve().parents[1]
TIMING = {"created_at", "latency_s"}
N_CANDIDATES = 2


def utterances(count: int) -> list[Utterance]:
    return [
        Utterance(
            id=f"u{i:03d}",
            dataset="demo",
            split="train",
            transcript=f"It is fine, number {i}.",
            speaker=f"s{i % 3}",
            emotion=Emotion.neutral,
            raw_label="neutral",
            label_protocol="all",
            context=[ContextTurn(turn=0, speaker="A", text="How are you?")],
        )
        for i in range(count)
    ]


def answer_for(body: dict[str, Any], candidate: int) -> str:
    """A valid answer that names its utterance, so outputs can be compared by content."""
    number = body["messages"][-1]["content"].split("number ", 1)[1].split(".", 1)[0]
    return json.dumps(
        {
            "evidence": [{"kind": "lexical", "cue": "fine", "suggests": f"calm (utterance {number}, {candidate})"}],
            "reasoning": "The speaker says 'fine' without emphasis.",
            "emotion": "neutral",
        }
    )


def llm(url: str, **kw) -> LLMConfig:
    fast = dict(timeout_s=1.0, max_retries=3, backoff_base_s=0.01, backoff_max_s=0.05, concurrency=8)
    return LLMConfig(backend="openai", model="scripted", base_urls=[url], **(fast | kw))


def test_every_utterance_ends_as_answer_or_reject(tmp_path: Path) -> None:
    plan = {
        "number 0.": ["500"] * 10,  # fails every retry: request_failed
        "number 1.": ["refusal"] * 10,  # refuses every time: invalid_answer after the parse retries
        "number 2.": ["malformed_json", "ok"],  # fixed by the first parse retry
        "number 3.": ["400"],  # not retried by the backend
        "number 4.": ["timeout", "429", "ok"],  # retried by the backend
    }
    faults = tuple(f for f in FAULTS if f != "400")
    with ScriptedServer(plan=plan, answer_fn=answer_for, fault_rate=0.3, faults=faults, slow_s=0.05) as server:
        cfg = GenerateConfig(llm=llm(server.url), sampling=Sampling(n=N_CANDIDATES), progress=False)
        run = generate(utterances(40), None, cfg, tmp_path)
        seen = server.faults_seen()
    records = read_records(run.path, GenerationRecord)
    expected = {f"u{i:03d}#elaborate#{c}" for i in range(40) for c in range(N_CANDIDATES)}
    assert [r.id for r in records] == sorted(expected)  # none lost, none duplicated, stable order
    by_id = {r.id: r for r in records}
    for rec in records:
        assert (rec.answer is None) == (rec.error is not None), rec.id
        assert rec.error is None or rec.error.split(":", 1)[0] in {"request_failed", "invalid_answer"}, rec.error
    assert by_id["u000#elaborate#0"].error.startswith("request_failed: http 500")
    assert (
        by_id["u001#elaborate#1"].error.startswith("invalid_answer") and "sorry" in by_id["u001#elaborate#1"].raw_text
    )
    assert by_id["u002#elaborate#0"].answer is not None and by_id["u002#elaborate#0"].attempts == 2
    assert by_id["u003#elaborate#0"].error.startswith("request_failed: http 400")
    assert by_id["u004#elaborate#0"].answer is not None and by_id["u004#elaborate#0"].attempts == 3
    assert "(utterance 17, 1)" in by_id["u017#elaborate#1"].answer.evidence[0].suggests
    # Rejects list exactly the rows with errors, with their reasons.
    rejects = read_records(run.rejects_path, Reject)
    assert sorted(r.record_id for r in rejects) == sorted(r.id for r in records if r.error)
    assert len(rejects) >= 2 * N_CANDIDATES + N_CANDIDATES  # u000 and u003 fail whole, u001 per candidate
    # The random faults really happened (the test is not vacuous).
    assert seen["ok"] and sum(seen[f] for f in faults) >= 10


def _child_script(url: str, out: Path, count: int) -> str:
    return textwrap.dedent(
        f"""
        from pipeline.generate import generate
        from pipeline.generate_config import GenerateConfig
        from pipeline.llm.base import Sampling
        from test_generate_faults import llm, utterances
        cfg = GenerateConfig(llm=llm({url!r}, concurrency=4), sampling=Sampling(n={N_CANDIDATES}), progress=False)
        run = generate(utterances({count}), None, cfg, {str(out)!r})
        print("sent", run.requests_sent, "hits", run.cache_hits, flush=True)
        """
    )


def _cached_rows(out: Path) -> int:
    db = out / "cache" / "requests.sqlite"
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db, timeout=1) as conn:
            return conn.execute("SELECT COUNT(*) FROM results").fetchone()[0]
    except sqlite3.OperationalError:  # the table is not created yet
        return 0


def _comparable(path: Path) -> dict[str, dict]:
    return {r.id: r.model_dump(exclude=TIMING) for r in read_records(path, GenerationRecord)}


def test_kill_and_resume_equals_uninterrupted_run(tmp_path: Path) -> None:
    count = 60
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "tests")])}
    with ScriptedServer(answer_fn=answer_for, latency_s=0.05) as server:
        killed_out = tmp_path / "killed"
        child = subprocess.Popen(
            [sys.executable, "-c", _child_script(server.url, killed_out, count)], cwd=REPO, env=env
        )
        deadline = time.monotonic() + 60
        while _cached_rows(killed_out) < count // 3 and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert child.poll() is None, "the run finished before it could be killed; slow the server down"
        child.send_signal(signal.SIGKILL)
        child.wait()
        stored = _cached_rows(killed_out)
        assert 0 < stored < count and not (killed_out / "generations.parquet").exists()

        before = len(server.requests_seen)
        resumed = subprocess.run(
            [sys.executable, "-c", _child_script(server.url, killed_out, count)],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        # Only what the killed run had not stored is asked again.
        assert len(server.requests_seen) - before == count - stored
        assert f"hits {stored}" in resumed.stdout

        fresh_out = tmp_path / "fresh"  # the uninterrupted reference run, in this process
        cfg = GenerateConfig(llm=llm(server.url, concurrency=4), sampling=Sampling(n=N_CANDIDATES), progress=False)
        generate(utterances(count), None, cfg, fresh_out)
    resumed_rows, fresh_rows = (
        _comparable(killed_out / "generations.parquet"),
        _comparable(fresh_out / "generations.parquet"),
    )
    assert len(fresh_rows) == count * N_CANDIDATES and all(r["answer"] for r in fresh_rows.values())
    assert resumed_rows == fresh_rows


def test_command_line_runs_and_resumes(tmp_path: Path, capsys) -> None:
    from pipeline.cli import main

    with ScriptedServer() as server:
        argv = ["generate", "demo", "--out", str(tmp_path), "--llm.backend", "openai", "--llm.model", "scripted"]
        argv += ["--llm.base-urls", server.url, "--limit", "5", "--sampling.n", "1", "--no-progress"]
        assert main(argv) == 0
        first = capsys.readouterr().out
        assert main(argv) == 0
        second = capsys.readouterr().out
    assert "answers: 5 of 5 candidates" in first and "requests sent: 5;" in first
    assert "requests sent: 0; answered from the cache: 5" in second
    resolved = (tmp_path / "generate.config.yaml").read_text()
    assert "backend: openai" in resolved and server.url in resolved and "n: 1" in resolved
    assert {r.style for r in read_records(tmp_path / "generations.parquet", GenerationRecord)} == {"elaborate"}


def test_command_line_reports_bad_input(tmp_path: Path, capsys) -> None:
    from pipeline.cli import main

    assert main(["generate", "meld", "--root", str(tmp_path / "nowhere"), "--out", str(tmp_path)]) == 2
    assert "emoreason generate:" in capsys.readouterr().err


def test_command_line_takes_an_empty_profiles_table_as_no_audio(tmp_path: Path) -> None:
    # `emoreason data` writes an empty profiles table for a dataset without audio; `generate` into
    # the same folder must not read it as "profiles present" and reject every row as missing_profile.
    from pipeline.acoustic import AcousticProfile
    from pipeline.cli import main
    from pipeline.parquet import write_records

    write_records([], tmp_path / "profiles" / "profiles.parquet", AcousticProfile)
    with ScriptedServer() as server:
        argv = ["generate", "demo", "--out", str(tmp_path), "--llm.backend", "openai", "--llm.model", "scripted"]
        assert main([*argv, "--llm.base-urls", server.url, "--limit", "3", "--sampling.n", "1", "--no-progress"]) == 0
    rows = read_records(tmp_path / "generations.parquet", GenerationRecord)
    assert {r.style for r in rows} == {"elaborate"} and all(r.answer is not None for r in rows)


def test_command_line_exits_1_when_requests_failed(tmp_path: Path, capsys) -> None:
    from pipeline.cli import main

    with ScriptedServer(fault_rate=1.0, faults=("400",)) as server:
        argv = ["generate", "demo", "--out", str(tmp_path), "--llm.backend", "openai", "--llm.model", "scripted"]
        argv += ["--llm.base-urls", server.url, "--limit", "3", "--no-progress"]
        assert main(argv) == 1
        assert "3 of 3 requests failed (http 400 after 1 attempt: 3)" in capsys.readouterr().err
        assert main([*argv, "--allow-partial"]) == 0
