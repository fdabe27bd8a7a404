"""The optional judge check: the paper's LLM-judged Relevance, cached, recorded per row, off by default."""

from __future__ import annotations

import json

from factories_generation import generation, profile, utterance
from test_eval_judge import ScriptedClient

from pipeline.checks.registry import CHECK_NAMES
from pipeline.judge import JudgeConfig
from pipeline.judge_relevance import judge_relevance
from pipeline.parquet import read_records, write_records
from pipeline.records import GenerationRecord, VerifiedRecord
from pipeline.verify import VerifyConfig, verify
from pipeline.verify_file import verify_file

ANGRY = utterance("meld/j1", "Get out of here! I mean it.", "angry")
UTTS = {ANGRY.id: ANGRY}
RATED = "He orders them out: an angry dismissal, which his insistence confirms."
ROWS = [
    generation(ANGRY, [("lexical", "Get out of here", "anger")], RATED, candidate=0),
    generation(ANGRY, [("lexical", "I mean it", "anger")], "He insists on it, which sounds angry.", candidate=1),
    generation(ANGRY, error="request_failed: timeout", candidate=2),
]


def by_relevance(user: str) -> str | None:
    """The judge rates the first candidate 2, the second 1 (partly supports)."""
    answer = user.split("<model_answer>")[1].split("</model_answer>")[0]
    relevance = 2 if "confirms" in answer else 1
    return json.dumps({"quotes": True, "groundedness": 2, "relevance": relevance, "explanation": "rated"})


def test_judge_check_is_off_by_default_and_reads_the_verdicts(tmp_path):
    assert "judge" in CHECK_NAMES and "judge" not in VerifyConfig().checks and not VerifyConfig().judge
    client = ScriptedClient(by_relevance)
    judged = judge_relevance(ROWS, JudgeConfig(), tmp_path / "judge.sqlite", client)
    assert len(client.seen) == 2 and set(judged) == {ROWS[0].id, ROWS[1].id}  # the failed row is not judged
    # The same prompt as `emoreason eval`'s reasoning judge, with the rationale as the target says it.
    assert "relevance (0-2)" in client.seen[0].messages[-1].content and RATED in client.seen[0].messages[-1].content
    off = list(verify(ROWS, UTTS, None, VerifyConfig(), judged=judged))
    assert [v.judge_relevance for v in off] == [None, None, None]  # off: not recorded
    on = list(verify(ROWS, UTTS, None, VerifyConfig(judge=True), judged=judged))
    assert [v.judge_relevance for v in on] == [2, 1, None]
    assert on[0].accepted and not on[1].accepted
    assert any(str(r).startswith("judge: judged relevance 1/2 (needs 2)") for r in on[1].reasons)
    # A reply that failed fails the check: an accepted row was always judged.
    failed = judge_relevance(ROWS[:1], JudgeConfig(), tmp_path / "other.sqlite", ScriptedClient(lambda _: None))
    (row,) = verify(ROWS[:1], UTTS, None, VerifyConfig(judge=True), judged=failed)
    assert not row.accepted and str(row.reasons[0]).startswith("judge: judge failed: request failed")


def test_verify_file_asks_the_judge_once_and_caches(tmp_path, monkeypatch):
    import pipeline.judge_relevance as module

    write_records(ROWS, tmp_path / "generations.parquet", GenerationRecord)
    clients = []

    def client(_cfg):
        clients.append(ScriptedClient(by_relevance))
        return clients[-1]

    monkeypatch.setattr(module, "make_client", client)
    cfg = VerifyConfig(judge=True)
    for _ in range(2):
        verify_file(
            tmp_path / "generations.parquet", UTTS, {ANGRY.id: profile(ANGRY.id)}, cfg, out_path=tmp_path / "v.parquet"
        )
    assert [len(c.seen) for c in clients] == [2, 0]  # the second verification is answered from the cache
    rows = {r.id: r for r in read_records(tmp_path / "v.parquet", VerifiedRecord)}
    assert rows[ROWS[0].id].judge_relevance == 2 and rows[ROWS[1].id].judge_relevance == 1
    assert (tmp_path / "cache" / "judge.sqlite").is_file()
