"""Reasoning-quality metrics: hand-computed on a small hand-written corpus."""

from __future__ import annotations

import pytest
from factories_verified import corpus_records, verified

from pipeline.quality import quality_report, quote_in_transcript, record_quality


def test_report_on_hand_written_corpus():
    # Quote scores per answer (see factories_verified.corpus_records): 2, 2, 0 (fabricated),
    # 1 (one of two quotes found), 2, 2, none (unparsed), 2; relevance 2, 2, 1, 1, 0, 1, 0, 0
    # (the relevance check passed wherever it ran; scoring 2 means evidence verified to support the label).
    report = quality_report(corpus_records())
    assert (report.n, report.n_parsed, report.n_quoting, report.n_citing_voice) == (8, 7, 7, 3)
    assert report.quotation_rate == pytest.approx(6 / 8)
    assert report.groundedness == pytest.approx(5 / 7)
    assert report.groundedness_score == pytest.approx(11 / 14)
    assert report.n_relevance == 8 and report.relevance == pytest.approx(2 / 8)
    assert report.relevance_score == pytest.approx(7 / 16)
    assert report.acoustic_evidence_rate == pytest.approx(3 / 8)
    assert report.acoustic_grounding_rate == pytest.approx(2 / 3)
    assert (report.n_blind, report.blind_agreement) == (2, 0.5)


def test_relevance_is_measured_by_the_relevance_check_or_the_judge():
    good = verified("meld/r1", "I hate you!", "angry", [("lexical", "I hate you", "anger")])
    assert record_quality(good).relevance_score == 2 and record_quality(good).relevant
    failing = verified(
        "meld/r2", "Okay.", "angry", failed={"relevance": ("multi_emotion_sentence", "quotes 'Okay' of a sentence ...")}
    )
    assert record_quality(failing).relevance_score == 0 and not record_quality(failing).relevant
    # The check could not judge it (n/a): evidence given and label kept, support not verified.
    unjudged = verified("meld/r3", "Okay.", "angry", not_applicable=("context_grounding", "relevance"))
    assert record_quality(unjudged).relevance_score == 1 and not record_quality(unjudged).relevant
    # The judge's 0-2 score, when it ran, is the paper's own measure and wins.
    judged = good.model_copy(update={"judge_relevance": 1})
    assert record_quality(judged).relevance_score == 1 and not record_quality(judged).relevant


def test_partial_quote_credit_and_custom_matcher():
    record = corpus_records()[3]  # "We won" is in the transcript, "we got the car" is not
    assert record_quality(record).quote_score == 1
    assert record_quality(record, quote_matcher=lambda q, t: False).quote_score == 0
    assert quality_report([record], quote_matcher=lambda q, t: False).quotation_rate == 0.0


def test_unverified_voice_claim_is_not_grounded():
    # The acoustic check did not apply (no profile): a claim about the voice is then not verified.
    record = verified(
        "demo/u1",
        "Fine.",
        "angry",
        [("acoustic", "louder than usual", "anger")],
        not_applicable=("acoustic_grounding", "context_grounding", "blind_consistency"),
    )
    q = record_quality(record)
    assert q.cites_voice and q.voice_grounded is False and q.quote_score is None
    assert quality_report([record]).acoustic_grounding_rate == 0.0


def test_empty_set_and_table_rows():
    report = quality_report([])
    assert report.n == 0 and report.quotation_rate == 0.0 and report.blind_agreement is None
    assert all(ours is None for _, ours, _, _ in report.rows())
    rows = {name: (ours, paper) for name, ours, paper, _ in quality_report(corpus_records()).rows()}
    assert rows["Quotation rate"] == (75.0, 57.5)


@pytest.mark.parametrize(
    ("quote", "found"),
    [
        ("you did NOT just say that", True),
        ("you did not just say that to me!!", True),
        ("  Oh   my god ", True),
        ("did not jus", False),  # a word cut in half is not a quote
        ("I hate you", False),
        ("", False),
    ],
)
def test_default_matcher(quote, found):
    assert quote_in_transcript(quote, "Oh my God, you did not just say that to me!") is found


def test_without_stage_two_checks_the_matcher_decides():
    record = corpus_records()[3].model_copy(update={"checks": []})  # "We won" found, "we got the car" not
    assert record_quality(record).quote_score == 1
    whole = record.model_copy(update={"transcript": "We won! And we got the car!"})
    assert record_quality(whole).quote_score == 2
    assert record_quality(whole).relevant is False  # no label check ran: relevance is not claimed
