"""Reasoning quality of generated answers: the paper's Quotation / Groundedness / Relevance, and ours.

Deterministic first. A generated answer is free text in the shape the model was trained on
(pipeline.corpora.render_rationale: ``The speaker says "...", which suggests ...``, ``In the
voice: ...``, ``Earlier in the conversation: "..."``, reasoning, ``Emotion: <label>``). It is read
back into a :class:`RationaleAnswer` (:func:`answer_from_text`): double-quoted spans are lexical
evidence (contextual after "earlier in the conversation"), ``In the voice:`` items and sentences
that make a claim about the voice (pipeline.checks.acoustic_claims) are acoustic evidence. Then
stage two's own checks run on it (quote, acoustic and context grounding against the transcript
and the measured profile; the label check against gold), and pipeline.quality turns the verdicts
into the paper's numbers plus the acoustic-grounding rate. Same code, same definitions as for
the teacher's rationales, so the two are comparable.

With a judge configured, the paper's LLM-judged view is computed as well (:func:`judged_quality`,
prompt ``prompts/judge/reasoning.v1.md``, 0-2 scales). Judge failures are counted, not scored.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from pydantic import BaseModel, ConfigDict

from model.eval.run import EvalRow
from pipeline.checks.acoustic_claims import find_claims
from pipeline.checks.base import CheckInput, ProfileLike
from pipeline.checks.registry import ANSWER_CHECKS, CHECKS
from pipeline.judge import JudgeVerdict
from pipeline.labels import Emotion, protocol
from pipeline.quality import QualityReport, quality_report
from pipeline.rationale import Evidence, EvidenceKind, RationaleAnswer
from pipeline.records import GenerationRecord, Utterance, VerifiedRecord

MAX_CUE_CHARS = 300  # Evidence.cue's bound
_QUOTE = re.compile(r'"([^"\n]{1,300})"|“([^”\n]{1,300})”')
_CONTEXT_LEAD = re.compile(r"earlier in (?:the )?conversation\W*$|previous turn\W*$|earlier turn\W*$", re.IGNORECASE)
_VOICE_LEAD = re.compile(r"^\s*in the voice\s*:\s*(.+?)(?:,\s*which\b.*)?$", re.IGNORECASE | re.DOTALL)
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")
_LABEL_LINE = re.compile(r"^\W*(?:emotion|label|answer|final answer)\s*[:：]", re.IGNORECASE)
FREE_TEXT = "(free text)"  # what an evidence item read from prose "suggests": the prose does not say


def answer_from_text(text: str, concluded: str | None) -> RationaleAnswer:
    """The rationale a free-text answer gives, as stage two's answer schema (evidence may be empty)."""
    lines = [line for line in text.splitlines() if line.strip()]
    body = "\n".join(line for line in lines if not _LABEL_LINE.match(line))
    evidence: list[Evidence] = []
    for match in _QUOTE.finditer(body):
        quote = (match.group(1) or match.group(2)).strip()
        if not quote:
            continue
        contextual = _CONTEXT_LEAD.search(body[max(0, match.start() - 40) : match.start()])
        kind = EvidenceKind.contextual if contextual else EvidenceKind.lexical
        evidence.append(Evidence.model_construct(kind=kind, cue=quote[:MAX_CUE_CHARS], suggests=FREE_TEXT))
    for sentence in _SENTENCE.split(body):
        lead = _VOICE_LEAD.match(sentence)
        if lead:
            evidence.append(
                Evidence.model_construct(
                    kind=EvidenceKind.acoustic, cue=lead.group(1).strip()[:MAX_CUE_CHARS], suggests=FREE_TEXT
                )
            )
        elif find_claims(sentence):
            evidence.append(
                Evidence.model_construct(
                    kind=EvidenceKind.acoustic, cue=sentence.strip()[:MAX_CUE_CHARS], suggests=FREE_TEXT
                )
            )
    # model_construct: a generated answer may have no evidence at all, which the teacher schema forbids.
    return RationaleAnswer.model_construct(evidence=evidence, reasoning=body, emotion=concluded or "")


def _utterance(row: EvalRow) -> Utterance:
    return Utterance(
        id=row.utterance_id,
        dataset=row.dataset,
        split=row.split,
        speaker=row.speaker,
        transcript=row.transcript,
        emotion=Emotion(row.gold),
        raw_label=row.gold,
        label_protocol=row.label_protocol,
    )


def verified_view(
    row: EvalRow, utterance: Utterance | None = None, profile: ProfileLike | None = None
) -> VerifiedRecord:
    """Stage two's verdict on one generated answer (only the fields pipeline.quality reads are set)."""
    utterance = utterance or _utterance(row)
    answer = answer_from_text(row.generated, row.label)
    record = GenerationRecord.model_construct(
        id=row.utterance_id,
        utterance_id=row.utterance_id,
        emotion=Emotion(row.gold),
        label_protocol=row.label_protocol,
        transcript=utterance.transcript,
        answer=answer,
    )
    evidence = CheckInput(utterance=utterance, protocol=protocol(row.label_protocol), profile=profile)
    checks = [CHECKS[name](record, evidence) for name in ANSWER_CHECKS]
    return VerifiedRecord.model_construct(
        id=row.utterance_id,
        transcript=utterance.transcript,
        answer=answer,
        checks=checks,
        accepted=all(c.passed for c in checks),
        reasons=[c.reason for c in checks if not c.passed],
        blind_agrees=None,
    )


def reasoning_quality(
    rows: Sequence[EvalRow],
    utterances: Mapping[str, Utterance] | None = None,
    profiles: Mapping[str, ProfileLike] | None = None,
) -> QualityReport:
    """The paper's reasoning metrics of generated answers, verified deterministically."""
    utterances, profiles = utterances or {}, profiles or {}
    return quality_report(verified_view(r, utterances.get(r.utterance_id), profiles.get(r.utterance_id)) for r in rows)


class JudgedQuality(BaseModel):
    """The paper's LLM-judged reasoning metrics. Percent; None where nothing was rated."""

    model_config = ConfigDict(frozen=True)

    n: int
    n_rated: int
    n_failed: int
    n_quoting: int
    quotation_rate: float | None  # share of rated answers that quote the transcript
    groundedness_score: float | None  # mean 0-2 groundedness / 2, over quoting answers
    relevance_score: float | None  # mean 0-2 relevance / 2, over quoting answers


def judged_quality(verdicts: Sequence[JudgeVerdict]) -> JudgedQuality:
    rated = [v for v in verdicts if v.error is None and v.quotes is not None]
    quoting = [v for v in rated if v.quotes]

    def pct(values: list[float], basis: int) -> float | None:
        return round(100 * sum(values) / basis, 1) if basis else None

    return JudgedQuality(
        n=len(verdicts),
        n_rated=len(rated),
        n_failed=len(verdicts) - len(rated),
        n_quoting=len(quoting),
        quotation_rate=pct([1.0] * len(quoting), len(rated)),
        groundedness_score=pct([v.groundedness / 2 for v in quoting], len(quoting)),
        relevance_score=pct([v.relevance / 2 for v in quoting], len(quoting)),
    )
