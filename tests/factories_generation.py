"""Stage-one rows, utterances and acoustic profiles for the stage-two check tests."""

from __future__ import annotations

import csv
import datetime
import json
from pathlib import Path

from pipeline.acoustic.cues import cues_from
from pipeline.acoustic.profile import AcousticProfile
from pipeline.checks.base import CheckInput
from pipeline.labels import PROTOCOLS, Emotion, canonical_emotion
from pipeline.rationale import Evidence, EvidenceKind, RationaleAnswer
from pipeline.records import ContextTurn, GenerationRecord, Measure, Utterance

CREATED = datetime.datetime(2026, 11, 26, 12, 0, tzinfo=datetime.timezone.utc)
SAMPLING = json.dumps({"max_tokens": 512, "n": 2, "temperature": 0.7}, sort_keys=True)


def utterance(
    uid: str,
    transcript: str | None,
    emotion: str,
    *,
    dataset: str = "meld",
    protocol: str = "meld7",
    context: list[tuple[str, str]] | None = None,
    speaker: str = "Joey",
    raw_label: str | None = None,
) -> Utterance:
    return Utterance(
        id=uid,
        dataset=dataset,
        split="train",
        transcript=transcript,
        speaker=speaker,
        emotion=Emotion(emotion),
        raw_label=raw_label or emotion,
        label_protocol=protocol,
        context=[ContextTurn(turn=i, speaker=s, text=t) for i, (s, t) in enumerate(context or [])],
    )


def generation(
    utt: Utterance,
    evidence: list[tuple[str, str, str]] | None = None,
    reasoning: str = "The words point that way.",
    concluded: str | None = None,
    *,
    candidate: int = 0,
    error: str | None = None,
    raw_text: str = "",
    completion_tokens: int = 120,
    parsed: bool = True,
    sampling: str = SAMPLING,
    finish_reason: str = "",
) -> GenerationRecord:
    answer = None
    if parsed and error is None:
        answer = RationaleAnswer(
            evidence=[Evidence(kind=EvidenceKind(k), cue=c, suggests=s) for k, c, s in (evidence or [])]
            or [Evidence(kind=EvidenceKind.lexical, cue=(utt.transcript or "x")[:30], suggests="the tone")],
            reasoning=reasoning,
            emotion=concluded or utt.emotion.value,
        )
    return GenerationRecord(
        id=f"{utt.id}#elaborate#{candidate}",
        utterance_id=utt.id,
        dataset=utt.dataset,
        split=utt.split,
        speaker=utt.speaker,
        emotion=utt.emotion,
        label_protocol=utt.label_protocol,
        transcript=utt.transcript,
        style="elaborate",
        candidate=candidate,
        backend="scripted",
        model="teacher-test",
        template_id="elaborate.v1",
        template_hash="0" * 12,
        sampling=sampling,
        finish_reason=finish_reason,
        schema_version="rationale-v1",
        request_key="k" * 16,
        attempts=1,
        prompt_tokens=300,
        completion_tokens=completion_tokens,
        latency_s=0.5,
        created_at=CREATED,
        raw_text=raw_text or (answer.model_dump_json() if answer else ""),
        answer=answer,
        error=error,
    )


def profile(uid: str, dataset: str = "ravdess", speaker: str = "Actor_01", **z: float | None) -> AcousticProfile:
    """A real AcousticProfile with the given z-scores (by Measure name) and the cues they make."""
    zs = {m: z.get(m.value) for m in Measure}
    return AcousticProfile(
        utterance_id=uid,
        dataset=dataset,
        speaker=speaker,
        duration_s=3.5,
        z={m.value: v for m, v in zs.items()},
        feature_z={},
        cues=cues_from(zs),
        basis="speaker",
    )


def check_input(utt: Utterance, prof: AcousticProfile | None = None, **kwargs) -> CheckInput:
    return CheckInput(utterance=utt, protocol=PROTOCOLS[utt.label_protocol], profile=prof, **kwargs)


def meld_rows(meld_dir: Path, split: str = "dev") -> dict[int, dict[str, str]]:
    """MELD rows by Sr No. (read in the test from ../shared/data, never copied into the repo)."""
    with open(meld_dir / f"{split}_sent_emo.csv", encoding="utf-8", newline="") as f:
        return {int(row["Sr No."]): row for row in csv.DictReader(f)}


def meld_utterance(rows: dict[int, dict[str, str]], sr_no: int, context: int = 0) -> Utterance:
    """The MELD row as an utterance, with up to ``context`` previous turns of its dialogue."""
    row = rows[sr_no]
    turns = [
        (rows[n]["Speaker"], rows[n]["Utterance"])
        for n in range(sr_no - context, sr_no)
        if n in rows and rows[n]["Dialogue_ID"] == row["Dialogue_ID"]
    ]
    return utterance(
        f"meld/dev/dia{row['Dialogue_ID']}_utt{row['Utterance_ID']}",
        row["Utterance"],
        canonical_emotion("meld", row["Emotion"]).value,
        raw_label=row["Emotion"],
        speaker=row["Speaker"],
        context=turns,
    )
