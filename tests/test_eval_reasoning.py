"""Reasoning quality of generated answers through stage two's checks, and the judged view."""

from __future__ import annotations

import datetime as dt

import pytest

from model.eval.reasoning import answer_from_text, judged_quality, reasoning_quality, verified_view
from model.eval.run import EvalRow
from pipeline.judge import JudgeVerdict
from pipeline.rationale import EvidenceKind
from pipeline.records import AcousticCue, CueLevel, Measure

TRANSCRIPT = "Dogs are sitting by the door."


class Profile:
    """Loud and fast for this speaker; pitch typical."""

    def __init__(self):
        self.z = {Measure.loudness: 1.8, Measure.speaking_rate: 1.2, Measure.pitch_level: 0.1}
        self.cues = [AcousticCue(measure=Measure.loudness, level=CueLevel.high, z=1.8, phrase="louder than usual")]

    def z_of(self, measure):
        return self.z.get(Measure(measure))

    def cue_of(self, measure):
        return next((c for c in self.cues if c.measure is Measure(measure)), None)


def row(text: str, label: str | None, gold: str = "angry", uid: str = "u1") -> EvalRow:
    return EvalRow(
        utterance_id=uid, dataset="ravdess", split="test", speaker="Actor_17", label_protocol="ravdess8",
        transcript=TRANSCRIPT, prompt="Which emotion?", generated=text, label=label, status="final_line",
        gold=gold, correct=label == gold, latency_s=0.1, batch_s=0.1, batch_size=1,
        created_at=dt.datetime.now(dt.timezone.utc),
    )  # fmt: skip


GOOD = (
    'The speaker says "dogs are sitting by the door", which suggests a plain statement. '
    "In the voice: much louder than usual, which suggests anger. The speaker is speaking fast.\nEmotion: angry"
)
FABRICATED = 'The speaker says "I hate this place", which suggests anger.\nEmotion: angry'
WRONG_VOICE = "The speaker speaks with a very high pitch and a quiet voice.\nEmotion: angry"


def test_answer_is_read_back_into_evidence():
    answer = answer_from_text(GOOD, "angry")
    kinds = [e.kind for e in answer.evidence]
    assert kinds.count(EvidenceKind.lexical) == 1 and kinds.count(EvidenceKind.acoustic) == 2
    assert answer.evidence[1].cue == "much louder than usual"
    assert "Emotion:" not in answer.reasoning and answer.emotion == "angry"
    ctx = answer_from_text('Earlier in the conversation: "you never listen", which suggests anger.', "angry")
    assert ctx.evidence[0].kind is EvidenceKind.contextual


def test_checks_verdicts_on_generated_answers():
    profile = Profile()
    good = verified_view(row(GOOD, "angry"), profile=profile)
    assert good.accepted, good.reasons
    fabricated = verified_view(row(FABRICATED, "angry"), profile=profile)
    assert any("i hate this place" in r.detail.lower() for r in fabricated.reasons)
    voice = verified_view(row(WRONG_VOICE, "angry"), profile=profile)
    assert any(r.check == "acoustic_grounding" for r in voice.reasons)
    wrong_label = verified_view(row(GOOD.replace("Emotion: angry", "Emotion: sad"), "sad"), profile=profile)
    assert any(r.check == "label" and r.code == "wrong_label" for r in wrong_label.reasons)


def test_quality_report_over_generated_answers():
    rows = [
        row(GOOD, "angry", uid="a"),
        row(FABRICATED, "angry", uid="b"),
        row(WRONG_VOICE, "angry", uid="c"),
        row("Emotion: angry", "angry", uid="d"),
    ]
    profiles = {uid: Profile() for uid in "abcd"}
    q = reasoning_quality(rows, profiles=profiles)
    assert q.n == 4 and q.n_quoting == 2
    assert q.quotation_rate == pytest.approx(1 / 4)  # only the faithful quote counts as quoting the transcript
    assert q.groundedness == pytest.approx(1 / 2)
    assert q.n_citing_voice == 2 and q.acoustic_grounding_rate == pytest.approx(1 / 2)
    # Whether the evidence supports the label needs the relevance table or the judge: not measured here.
    assert q.n_relevance == 0
    assert dict((name, ours) for name, ours, _, _ in q.rows())["Relevance (0–2 scale)"] is None


def verdict(quotes, g, r, error=None) -> JudgeVerdict:
    return JudgeVerdict(
        item_id="x", rating=None, quotes=quotes, groundedness=g, relevance=r, error=error, request_key="k",
        template_id="judge/reasoning.v1", template_hash="h", backend="b", model="m",
    )  # fmt: skip


def test_judged_quality_counts_failures_apart():
    q = judged_quality(
        [verdict(True, 2, 1), verdict(True, 1, 2), verdict(False, 0, 0), verdict(None, None, None, "bad")]
    )
    assert (q.n, q.n_rated, q.n_failed, q.n_quoting) == (4, 3, 1, 2)
    assert q.quotation_rate == pytest.approx(66.7)
    assert q.groundedness_score == pytest.approx(75.0) and q.relevance_score == pytest.approx(75.0)
