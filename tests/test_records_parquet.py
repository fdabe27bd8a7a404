"""Record models survive a parquet round trip, and their Arrow schemas match the golden files.

Regenerate the golden schemas after an intended model change with:
    EMOREASON_UPDATE_GOLDEN=1 .venv/bin/pytest tests/test_records_parquet.py
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest

from pipeline.labels import Emotion, Sentiment
from pipeline.parquet import arrow_schema, read_records, write_records
from pipeline.rationale import Evidence, EvidenceKind, RationaleAnswer
from pipeline.records import (
    ContextTurn,
    Gender,
    GenerationRecord,
    Reject,
    Task,
    TrainingExample,
    Utterance,
    VerifiedRecord,
)
from pipeline.verdict import CheckName, CheckResult, Reason

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("EMOREASON_UPDATE_GOLDEN") == "1"


def utterance(**changes) -> Utterance:
    fields = dict(
        id="iemocap/Ses01F_impro01_F002",
        dataset="iemocap",
        split="Session1",
        audio_path="/data/Ses01F_impro01_F002.wav",
        start_s=0.5,
        end_s=2.25,
        transcript="Yeah, I’m sure.",
        speaker="Ses01F",
        gender=Gender.female,
        emotion=Emotion.happy,
        raw_label="exc",
        label_protocol="iemocap4",
        sentiment=Sentiment.positive,
        session="Session1",
        dialogue_id="Ses01F_impro01",
        turn=2,
        context=[
            ContextTurn(turn=0, speaker="Ses01F", text="Excuse me."),
            ContextTurn(turn=1, speaker="Ses01M", text="Yes?"),
        ],
        duration_s=1.75,
        sample_rate=16000,
    )
    return Utterance(**{**fields, **changes})


def verified() -> VerifiedRecord:
    answer = RationaleAnswer(
        evidence=[
            Evidence(kind=EvidenceKind.lexical, cue="I’m sure", suggests="confidence"),
            Evidence(kind=EvidenceKind.acoustic, cue="pitch well above this speaker's usual", suggests="arousal"),
        ],
        reasoning="The words and the raised pitch suggest happiness.",
        emotion="happy",
    )
    return VerifiedRecord(
        id="iemocap/Ses01F_impro01_F002#elaborate#0",
        utterance_id="iemocap/Ses01F_impro01_F002",
        dataset="iemocap",
        split="Session1",
        speaker="Ses01F",
        emotion=Emotion.happy,
        label_protocol="iemocap4",
        transcript="Yeah, I’m sure.",
        style="elaborate",
        candidate=0,
        backend="transformers",
        model="tiny",
        template_id="elaborate-v1",
        template_hash="abc123",
        sampling='{"temperature":0.7}',
        schema_version="rationale-v1",
        request_key="k" * 64,
        attempts=1,
        prompt_tokens=120,
        completion_tokens=64,
        latency_s=0.25,
        created_at=dt.datetime(2026, 11, 26, 12, 0, tzinfo=dt.timezone.utc),
        raw_text='{"emotion": "happy"}',
        answer=answer,
        accepted=False,
        reasons=[Reason(check=CheckName.quote_grounding, code="not_in_transcript", detail="not in transcript: 'x'")],
        checks=[
            CheckResult(name=CheckName.schema, passed=True),
            CheckResult(
                name=CheckName.quote_grounding,
                passed=False,
                reason=Reason(
                    check=CheckName.quote_grounding, code="not_in_transcript", detail="not in transcript: 'x'"
                ),
            ),
            CheckResult(
                name=CheckName.context_grounding,
                passed=True,
                applicable=False,
                reason=Reason(check=CheckName.context_grounding, code="no_contextual_evidence", detail="none"),
            ),
        ],
        score=0.5,
        selected=True,
        blind_emotion="happy",
        blind_agrees=True,
    )


RECORDS = {
    "utterance": (
        Utterance,
        [utterance(), utterance(id="x/2", context=[], gender=None, sentiment=None, audio_path=None)],
    ),
    "reject": (
        Reject,
        [
            Reject(
                stage="adapter",
                record_id="meld/train/dia1_utt2",
                dataset="meld",
                reason="unknown_label",
                detail="d",
                source="s",
            )
        ],
    ),
    "training_example": (
        TrainingExample,
        [
            TrainingExample(
                id="ex1",
                task=Task.emotion_reasoning,
                instruction="Why does the speaker sound this way?",
                target="Because ...",
                audio_path="/a.wav",
                utterance_id="demo/spk1_00",
                dataset="demo",
                split="train",
                speaker="spk1",
                emotion=Emotion.calm,
                label_protocol="all",
                source_ids=["demo/spk1_00", "demo/spk1_00#elaborate#0"],
            )
        ],
    ),
    "verified_record": (VerifiedRecord, [verified()]),
}


@pytest.mark.parametrize("name", sorted(RECORDS))
def test_round_trip(tmp_path, name):
    model, records = RECORDS[name]
    path = write_records(records, tmp_path / f"{name}.parquet", model)
    assert read_records(path, model) == records


def test_unicode_and_nested_answer_survive(tmp_path):
    record = verified()
    back = read_records(write_records([record], tmp_path / "v.parquet", VerifiedRecord), VerifiedRecord)[0]
    assert back.answer.evidence[0].cue == "I’m sure"
    assert back.created_at == record.created_at


GOLDEN_MODELS = {
    "utterance": Utterance,
    "reject": Reject,
    "training_example": TrainingExample,
    "generation_record": GenerationRecord,
    "verified_record": VerifiedRecord,
}


@pytest.mark.parametrize("name", sorted(GOLDEN_MODELS))
def test_schema_matches_golden(name):
    path = GOLDEN / f"schema_{name}.txt"
    actual = str(arrow_schema(GOLDEN_MODELS[name])) + "\n"
    if UPDATE:
        path.write_text(actual)
    assert path.is_file(), f"{path} missing; create it with EMOREASON_UPDATE_GOLDEN=1"
    assert actual == path.read_text(), (
        f"the parquet schema of {GOLDEN_MODELS[name].__name__} changed; if intended, regenerate with "
        "EMOREASON_UPDATE_GOLDEN=1 .venv/bin/pytest tests/test_records_parquet.py"
    )


def test_bool_fields_are_arrow_bool():
    # bool is a subclass of int: a type table that tests int first would store flags as int64.
    schema = arrow_schema(VerifiedRecord)
    assert str(schema.field("accepted").type) == "bool"
    assert str(schema.field("checks").type.value_type.field("passed").type) == "bool"


def test_reasons_are_stored_as_structs_and_read_back_typed(tmp_path):
    # The audit and DuckDB group by (check, code) without parsing a string.
    schema = arrow_schema(VerifiedRecord)
    assert schema.field("reasons").type.value_type.names == ["check", "code", "detail"]
    record = verified()
    back = read_records(write_records([record], tmp_path / "v.parquet", VerifiedRecord), VerifiedRecord)[0]
    assert back.reasons[0].check is CheckName.quote_grounding and back.reasons[0].code == "not_in_transcript"
    assert str(back.reasons[0]) == "quote_grounding: not in transcript: 'x'"
    assert [c.applicable for c in back.checks] == [True, True, False]
