"""Stage one against an in-test fake client: candidates, parse retries, kept errors, cache reuse."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from pipeline.generate import generate, generate_blind
from pipeline.generate_config import GenerateConfig
from pipeline.labels import Emotion
from pipeline.llm.base import LLMRequest, LLMResult, Sampling
from pipeline.parquet import read_records, to_table
from pipeline.prompts import PROMPTS_DIR
from pipeline.records import AcousticCue, ContextTurn, CueLevel, GenerationRecord, Measure, Reject, Utterance


def answer_json(emotion: str = "happy", quote: str = "great") -> str:
    return json.dumps(
        {
            "evidence": [{"kind": "lexical", "cue": quote, "suggests": "a positive stance"}],
            "reasoning": "The speaker says it is great.",
            "emotion": emotion,
        }
    )


class FakeClient:
    """Answers each request with ``reply(request, call_index)``; records every request it sees."""

    backend = "fake"

    def __init__(self, reply: Callable[[LLMRequest, int], list[str] | str] | None = None, model: str = "fake-model"):
        self.model = model
        self.reply = reply or (lambda req, i: [answer_json() for _ in range(req.sampling.n)])
        self.seen: list[LLMRequest] = []

    def run(self, requests: Iterable[LLMRequest], on_tokens=None) -> Iterator[LLMResult]:
        for req in requests:
            self.seen.append(req)
            out = self.reply(req, len(self.seen) - 1)
            if isinstance(out, str):  # an error message
                yield LLMResult(key=req.key, error=out, attempts=3)
            else:
                yield LLMResult(
                    key=req.key, texts=out, finish_reasons=["stop"] * len(out), prompt_tokens=50, completion_tokens=20
                )

    def close(self) -> None:
        pass


def utt(i: int, transcript: str | None = "This is great!", **kw) -> Utterance:
    fields = dict(
        id=f"demo/{i:03d}",
        dataset="demo",
        split="train",
        transcript=transcript,
        speaker=f"spk{i % 2}",
        emotion=Emotion.happy,
        raw_label="happy",
        label_protocol="all",
        context=[ContextTurn(turn=0, speaker="B", text=f"How was it, number {i}?")],
    )
    return Utterance(**(fields | kw))


def cfg(**kw) -> GenerateConfig:
    # The general answer schema: grounded decoding has its own tests (test_generate_grounded.py).
    return GenerateConfig(sampling=Sampling(n=2, temperature=0.7, seed=1), progress=False, **{"grounded": False} | kw)


def test_candidates_and_provenance(tmp_path: Path) -> None:
    client = FakeClient()
    run = generate([utt(i) for i in range(3)], None, cfg(), tmp_path, client)
    assert len(client.seen) == 3 and all(r.sampling.n == 2 for r in client.seen)
    assert all(r.json_schema["title"] == "RationaleAnswer" for r in client.seen)
    records = read_records(run.path, GenerationRecord)
    assert [r.id for r in records] == [f"demo/{i:03d}#elaborate#{c}" for i in range(3) for c in range(2)]
    rec = records[0]
    assert (rec.backend, rec.model, rec.template_id, rec.style) == (
        "fake",
        "fake-model",
        "rationale/elaborate.v1",
        "elaborate",
    )
    assert len(rec.template_hash) == 16 and len(rec.request_key) == 64 and rec.attempts == 1
    assert json.loads(rec.sampling)["n"] == 2 and rec.schema_version == "rationale-v1"
    assert rec.answer is not None and rec.answer.emotion == "happy" and rec.error is None
    assert rec.created_at.tzinfo is not None and rec.prompt_tokens == 50
    assert run.requests_sent == 3 and run.cache_hits == 0 and run.answers == 6
    # The fast writer gives exactly the generic writer's table.
    assert pq.read_table(run.path).equals(to_table(run.records, GenerationRecord))
    # The frame reads back with pandas, nested answer included.
    frame = pd.read_parquet(run.path)
    assert len(frame) == 6 and frame["answer"].iloc[0]["emotion"] == "happy"


def test_rerun_sends_zero_requests(tmp_path: Path) -> None:
    utts = [utt(i) for i in range(4)]
    first = generate(utts, None, cfg(), tmp_path, FakeClient())
    again = FakeClient()
    second = generate(utts, None, cfg(), tmp_path, again)
    assert again.seen == [] and second.requests_sent == 0 and second.cache_hits == 4
    strip = lambda rs: [r.model_dump(exclude={"created_at"}) for r in rs]  # noqa: E731
    assert strip(read_records(first.path, GenerationRecord)) == strip(read_records(second.path, GenerationRecord))


def test_prompt_edit_reasks_only_what_it_changes(tmp_path: Path) -> None:
    prompts = tmp_path / "prompts"
    (prompts / "rationale").mkdir(parents=True)
    for name in ("elaborate.v1.md", "summarize.v1.md"):
        (prompts / "rationale" / name).write_text((PROMPTS_DIR / "rationale" / name).read_text())
    config = cfg(styles=["elaborate", "summarize"], prompts_dir=str(prompts))
    utts = [utt(i) for i in range(3)]
    generate(utts, None, config, tmp_path / "out", FakeClient())
    edited = prompts / "rationale" / "summarize.v1.md"
    edited.write_text(edited.read_text().replace("two to four sentences", "two or three sentences"))
    client = FakeClient()
    run = generate(utts, None, config, tmp_path / "out", client)
    assert len(client.seen) == 3 and run.cache_hits == 3
    assert all("two or three sentences" in r.messages[0].content for r in client.seen)
    # A new utterance costs one request per style; the others stay cached.
    client = FakeClient()
    generate([*utts, utt(9)], None, config, tmp_path / "out", client)
    assert len(client.seen) == 2


def test_parse_retries_then_keeps_raw_text(tmp_path: Path) -> None:
    # Candidate 1 of utterance 0 is broken on the first ask and fixed on its first retry;
    # utterance 1 never produces valid JSON.
    def reply(req: LLMRequest, i: int) -> list[str]:
        transcript = req.messages[1].content
        if "broken forever" in transcript:
            return ['{"evidence": [], "reasoning": "x"'] * req.sampling.n
        if req.sampling.n == 2:
            return [answer_json(), "Sure! Here is the JSON you asked for"]
        return [answer_json(quote="This")]

    client = FakeClient(reply)
    config = cfg(max_parse_retries=2)
    run = generate([utt(0), utt(1, transcript="broken forever")], None, config, tmp_path, client)
    by_id = {r.id: r for r in run.records}
    fixed = by_id["demo/000#elaborate#1"]
    assert fixed.answer is not None and fixed.answer.evidence[0].cue == "This" and fixed.attempts == 2
    assert json.loads(fixed.sampling) == {
        "temperature": 0.7,
        "top_p": 0.95,
        "max_tokens": 512,
        "n": 1,
        "seed": 1 + 1009 + 1,
    }
    assert fixed.request_key != by_id["demo/000#elaborate#0"].request_key
    broken = by_id["demo/001#elaborate#0"]
    assert broken.answer is None and broken.error.startswith("invalid_answer:") and broken.attempts == 3
    assert broken.raw_text == '{"evidence": [], "reasoning": "x"'
    # 2 first asks + round 1 (one fix, two broken) + round 2 (two broken)
    assert len(client.seen) == 2 + 3 + 2
    assert run.reasons == {"invalid_answer": 2}
    rejects = read_records(run.rejects_path, Reject)
    assert sorted(r.record_id for r in rejects) == ["demo/001#elaborate#0", "demo/001#elaborate#1"]
    assert {r.stage for r in rejects} == {"generate"} and {r.reason for r in rejects} == {"invalid_answer"}
    # The retries are cached too: a re-run sends nothing and yields the same rows.
    again = FakeClient(reply)
    rerun = generate([utt(0), utt(1, transcript="broken forever")], None, config, tmp_path, again)
    assert again.seen == [] and [r.error for r in rerun.records] == [r.error for r in run.records]


def test_request_failures_are_rows_and_reasked_next_run(tmp_path: Path) -> None:
    failing = FakeClient(
        lambda req, i: (
            "http 500 after 3 attempts: boom" if "number 1?" in req.messages[1].content else [answer_json()] * 2
        )
    )
    run = generate([utt(0), utt(1)], None, cfg(), tmp_path, failing)
    errors = {r.id: r.error for r in run.records}
    assert errors["demo/001#elaborate#0"] == "request_failed: http 500 after 3 attempts: boom"
    assert errors["demo/000#elaborate#0"] is None and run.reasons == {"request_failed": 2}
    healed = FakeClient()
    rerun = generate([utt(0), utt(1)], None, cfg(), tmp_path, healed)
    assert len(healed.seen) == 1 and "number 1?" in healed.seen[0].messages[1].content
    assert rerun.answers == 4 and not rerun.reasons


def test_input_errors_are_rows_not_crashes(tmp_path: Path) -> None:
    client = FakeClient()
    cue = AcousticCue(measure=Measure.loudness, level=CueLevel.high, z=1.7, phrase="louder than usual")
    profiles = {"demo/000": type("Profile", (), {"cues": [cue]})()}
    utts = [utt(0), utt(1), utt(2, transcript=None), utt(3, label_protocol="nope")]
    run = generate(utts, profiles, cfg(styles=["acoustic"]), tmp_path, client)
    errors = {r.id: r.error for r in run.records}
    assert errors["demo/000#acoustic#0"] is None
    assert errors["demo/001#acoustic#0"].startswith("missing_profile:")
    assert errors["demo/002#acoustic#1"].startswith("missing_transcript:")
    assert errors["demo/003#acoustic#0"].startswith("invalid_input: unknown label protocol 'nope'")
    assert len(run.records) == 8 and len(client.seen) == 1
    assert "loudness: louder than usual" in client.seen[0].messages[1].content


def test_default_style_follows_profiles(tmp_path: Path) -> None:
    assert GenerateConfig().resolved_styles(have_profiles=True) == ["acoustic"]
    assert GenerateConfig().resolved_styles(have_profiles=False) == ["elaborate"]
    with pytest.raises(ValueError, match="unknown style"):
        GenerateConfig(styles=["poetic"]).resolved_styles(False)


def test_duplicate_ids_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="more than once"):
        generate([utt(0), utt(0)], None, cfg(), tmp_path, FakeClient())


def test_identical_prompts_share_one_request(tmp_path: Path) -> None:
    same = dict(context=[])
    client = FakeClient()
    run = generate([utt(0, **same), utt(1, **same)], None, cfg(), tmp_path, client)
    assert len(client.seen) == 1 and run.answers == 4


def test_blind_answers_by_utterance(tmp_path: Path) -> None:
    client = FakeClient(lambda req, i: [answer_json(emotion="joy")] * req.sampling.n)
    answers = generate_blind([utt(0), utt(1, transcript=None)], None, cfg(), tmp_path, client)
    assert answers == {"demo/000": "joy"}
    sent = client.seen[0]
    assert sent.json_schema["title"] == "BlindAnswer"
    assert "expresses:" not in sent.messages[1].content  # the gold label is never shown
    assert "(not measured: no audio" in sent.messages[1].content
    assert (tmp_path / "blind.parquet").is_file() and (tmp_path / "blind_rejects.parquet").is_file()
    assert {r.style for r in read_records(tmp_path / "blind.parquet", GenerationRecord)} == {"blind"}


def test_cached_rerun_never_builds_the_backend(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A finished job re-run loads no model: the client is built only when a request is missing."""
    import pipeline.generate as stage

    config = cfg(llm={"backend": "transformers", "model": "fake-model"})
    monkeypatch.setattr(stage, "make_client", lambda llm_cfg: FakeClient(model=llm_cfg.model))
    first = generate([utt(0)], None, config, tmp_path)
    monkeypatch.setattr(stage, "make_client", lambda llm_cfg: pytest.fail("built a client for a cached run"))
    again = generate([utt(0)], None, config, tmp_path)
    assert again.requests_sent == 0 and [r.answer for r in again.records] == [r.answer for r in first.records]
    assert {(r.backend, r.model) for r in again.records} == {("transformers", "fake-model")}


def test_progress_counts_tokens_and_its_eta_is_not_extrapolated_from_the_first_answer() -> None:
    # The case a user saw: a batch of 32 on a busy CPU took 13.5 min, and a bar of requests alone
    # showed "1/144 [13:30<32:12:35]". Tokens tell the rate; the answers so far tell their length.
    from pipeline.generate import _Progress

    progress = _Progress(144, "generate", True, tokens_per_request_bound=224)
    progress.start -= 810.0
    for _ in range(100):
        progress.tokens(32)  # 100 decode steps of a batch of 32
    before = progress.eta(time.perf_counter())
    assert before.startswith("3,200 tokens, 4.0/s") and "ETA 2:02:" in before  # (144 * 224 - 3200) / 3.95 s
    for _ in range(32):
        progress.done(LLMResult(key="k", texts=["{}"], completion_tokens=100), 0, 0)
    after = progress.eta(time.perf_counter())
    assert "ETA 47:" in after  # (144 * 100 - 3200) tokens at 3.95/s, not 32 hours
    progress.bar.close()
