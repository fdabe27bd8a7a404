"""Stage one with grounded decoding: per-utterance schemas, provenance, cache keys, label-blind safety."""

from __future__ import annotations

import json
from pathlib import Path

from test_generate import FakeClient, cfg, utt

from pipeline.data_run import EMBEDDED_TEMPLATES, DataConfig, load_data_config
from pipeline.generate import generate, generate_blind
from pipeline.generate_config import GenerateConfig
from pipeline.grounded import GROUNDED_SCHEMA_VERSION
from pipeline.labels import PROTOCOLS
from pipeline.llm.base import LLMRequest
from pipeline.parquet import read_records
from pipeline.records import GenerationRecord, Reject


def allowed(prop: dict) -> list[str]:
    """The values a JSON-schema string property allows (pydantic writes a one-value Literal as const)."""
    return prop["enum"] if "enum" in prop else [prop["const"]]


def grounded_reply(req: LLMRequest, _: int) -> list[str]:
    """An answer built from what the request's own schema allows: its first lexical span."""
    lexical = next(d for d in req.json_schema["$defs"].values() if d["properties"]["kind"]["const"] == "lexical")
    emotion = allowed(req.json_schema["properties"]["emotion"])[0]
    answer = {
        "evidence": [{"kind": "lexical", "cue": allowed(lexical["properties"]["cue"])[-1], "suggests": "delight"}],
        "reasoning": "The speaker sounds pleased with it.",
        "emotion": emotion,
    }
    return [json.dumps(answer)] * req.sampling.n


def test_each_utterance_gets_its_own_schema_and_the_rows_say_so(tmp_path: Path) -> None:
    client = FakeClient(grounded_reply)
    utts = [utt(0, "This is great!"), utt(1, "What a lovely day.")]
    run = generate(utts, None, cfg(grounded=True), tmp_path, client)
    schemas = [req.json_schema for req in client.seen]
    assert [s["title"] for s in schemas] == ["GroundedAnswer"] * 2 and schemas[0] != schemas[1]
    assert all(allowed(s["properties"]["emotion"]) == ["happy"] for s in schemas)  # the gold label only
    lexical = [allowed(d["properties"]["cue"]) for d in schemas[1]["$defs"].values() if "Lexical" in d["title"]][0]
    assert "What a lovely day" in lexical and "This is great" not in lexical
    records = read_records(run.path, GenerationRecord)
    assert run.answers == 4 and {r.schema_version for r in records} == {GROUNDED_SCHEMA_VERSION}
    assert records[2].answer.evidence[0].cue in lexical


def test_grounding_changes_the_cache_key_and_a_rerun_is_free(tmp_path: Path) -> None:
    plain = generate([utt(0)], None, cfg(grounded=False), tmp_path / "a", FakeClient())
    grounded = generate([utt(0)], None, cfg(grounded=True), tmp_path / "a", FakeClient(grounded_reply))
    assert plain.records[0].request_key != grounded.records[0].request_key
    assert plain.records[0].schema_version == "rationale-v1"
    again = FakeClient(grounded_reply)
    rerun = generate([utt(0)], None, cfg(grounded=True), tmp_path / "a", again)
    assert again.seen == [] and rerun.cache_hits == 1
    assert [r.request_key for r in rerun.records] == [r.request_key for r in grounded.records]


def test_grounded_by_default_for_every_teacher() -> None:
    # Every backend honours a JSON schema (xgrammar, vLLM guided decoding, OpenAI structured output).
    assert GenerateConfig().grounded is True
    data = DataConfig().generate
    assert data.templates["acoustic"] == EMBEDDED_TEMPLATES["acoustic"] and data.grounded
    served = load_data_config(overrides={"generate.llm.backend": "openai", "generate.llm.model": "smollm2"})
    assert served.generate.grounded  # a served teacher too (it was off, and 0 of 200 were accepted)


def test_label_blind_schema_never_reveals_the_gold_label(tmp_path: Path) -> None:
    client = FakeClient(grounded_reply)
    generate_blind([utt(0)], None, cfg(grounded=True), tmp_path, client)
    (req,) = client.seen
    assert allowed(req.json_schema["properties"]["emotion"]) == PROTOCOLS["all"].names


def test_an_utterance_with_nothing_to_cite_is_a_row_not_a_crash(tmp_path: Path) -> None:
    client = FakeClient(grounded_reply)
    run = generate([utt(0, "...", context=[]), utt(1)], None, cfg(grounded=True), tmp_path, client)
    assert len(client.seen) == 1
    bad = [r for r in run.records if r.utterance_id == "demo/000"]
    assert len(bad) == 2 and all(r.error.startswith("invalid_input: nothing to cite") for r in bad)
    rejects = read_records(run.rejects_path, Reject)
    assert {r.reason for r in rejects} == {"invalid_input"}


def _ravdess_utts():
    from pipeline.records import Utterance

    def clip(i: int, emotion: str) -> Utterance:
        return Utterance(
            id=f"ravdess/{i:02d}",
            dataset="ravdess",
            split="train",
            transcript="Kids are talking by the door.",
            speaker="Actor_02",
            emotion=emotion,
            raw_label=emotion,
            label_protocol="ravdess8",
        )

    return [clip(0, "angry"), clip(1, "angry"), clip(2, "sad")]


def test_evidence_plan_and_framed_reasoning_on_ravdess(tmp_path: Path) -> None:
    import re

    from factories_generation import profile

    from pipeline.grounded import FRAMED_SCHEMA_VERSION
    from pipeline.relevance import load_relevance

    table = load_relevance(Path(__file__).parent / "data" / "ravdess_relevance.json")
    utts = _ravdess_utts()
    profiles = {
        "ravdess/00": profile("ravdess/00", loudness=2.2, pitch_level=-1.3),  # louder supports, lower pitch does not
        "ravdess/01": profile("ravdess/01", pitch_level=-1.3),  # nothing supports anger
        "ravdess/02": profile("ravdess/02", loudness=-1.2, speaking_rate=1.4),  # softer supports sad
    }

    def framed_reply(req: LLMRequest, _: int) -> list[str]:
        schema = req.json_schema
        acoustic = schema["$defs"]["AcousticEvidence"]["properties"]
        cue = allowed(acoustic["cue"])[0]
        noun = acoustic["suggests"]["pattern"].strip("^$()?:").split("|")[0]
        reasoning = f"{cue[:1].upper()}{cue[1:]} points to {noun}."
        assert re.fullmatch(schema["properties"]["reasoning"]["pattern"], reasoning), reasoning
        answer = {"evidence": [{"kind": "acoustic", "cue": cue, "suggests": noun}], "reasoning": reasoning}
        return [json.dumps(answer | {"emotion": allowed(schema["properties"]["emotion"])[0]})] * req.sampling.n

    client = FakeClient(framed_reply)
    gen_cfg = cfg(grounded=True, framed=True, templates={"acoustic": "rationale/acoustic_compact.v2"})
    run = generate(utts, profiles, gen_cfg, tmp_path, client, relevance=table)
    assert len(client.seen) == 2  # the clip with nothing that supports anger sends no request
    first = client.seen[0]
    assert "no lexical" not in json.dumps(first.json_schema) and "LexicalEvidence" not in first.json_schema["$defs"]
    assert allowed(first.json_schema["$defs"]["AcousticEvidence"]["properties"]["cue"]) == [
        "much louder than this speaker's usual"
    ]
    prompt = first.messages[1].content
    assert "spoken with 8 different emotions" in prompt and "pitch below" not in prompt
    pattern = first.json_schema["properties"]["reasoning"]["pattern"]
    assert not re.fullmatch(pattern, "The children by the door suggest anger.")
    assert not re.fullmatch(pattern, "Much louder than this speaker's usual points to sadness.")
    by_utt = {r.utterance_id: r for r in run.records if r.candidate == 0}
    assert by_utt["ravdess/01"].error.startswith("no_supporting_evidence: nothing supports angry")
    assert by_utt["ravdess/00"].schema_version == FRAMED_SCHEMA_VERSION
    assert by_utt["ravdess/02"].answer.reasoning == "Softer than usual points to sadness."
    # Stage two accepts what the plan and the frame produced.
    from pipeline.verify import verify

    verdicts = {v.utterance_id: v for v in verify(run.records, {u.id: u for u in utts}, profiles, relevance=table)}
    assert verdicts["ravdess/00"].accepted and verdicts["ravdess/02"].accepted, verdicts["ravdess/00"].reasons


def test_framed_reasoning_for_the_embedded_teacher_only() -> None:
    assert GenerateConfig().resolved_framed("embedded") is True
    assert GenerateConfig().resolved_framed("google/gemma-2-9b-it") is False
    assert GenerateConfig(framed=True).resolved_framed("google/gemma-2-9b-it") is True


def test_framed_quotes_keep_the_answer_valid_json(tmp_path: Path) -> None:
    # A lexical opener in ASCII double quotes came back unescaped from xgrammar (invalid JSON).
    client = FakeClient(grounded_reply)
    generate([utt(0, "Why does this printer never work?")], None, cfg(grounded=True, framed=True), tmp_path, client)
    (req,) = client.seen
    pattern = req.json_schema["properties"]["reasoning"]["pattern"]
    assert "saying “Why does this printer never work”" in pattern and '"' not in pattern
