"""Stage two end to end: verdicts, best-of-n, the verified parquet and the command."""

from __future__ import annotations

import json
import os

import pandas as pd
import pyarrow.parquet as pq
import pytest
from factories_generation import generation, profile, utterance
from pydantic import ValidationError

from pipeline.checks.registry import CHECK_NAMES
from pipeline.cli import main
from pipeline.parquet import iter_records, write_records
from pipeline.records import GenerationRecord, VerifiedRecord
from pipeline.verdict import CheckName
from pipeline.verify import VerifyConfig, VerifyStats, verify
from pipeline.verify_file import blind_answers, verify_file

ANGRY = utterance("meld/u1", "Get out of here! I mean it.", "angry", context=[("Guy", "We were just looking around.")])
SAD = utterance("meld/u2", "Aww, man, now we won't be bank buddies!", "sad")
UTTS = {u.id: u for u in (ANGRY, SAD)}
GOOD_ANGRY = "He orders them out and insists that he means it, a hostile dismissal: the speaker is angry."


def candidates() -> list[GenerationRecord]:
    return [
        # 0: accepted, one piece of evidence
        generation(ANGRY, [("lexical", "Get out of here", "an order")], GOOD_ANGRY, candidate=0),
        # 1: accepted, lexical + contextual evidence: the best score
        generation(
            ANGRY,
            [("lexical", "I mean it", "insistence"), ("contextual", "We were just looking around", "an intrusion")],
            "They were only looking around, yet he tells them to get out and means it: an angry outburst.",
            candidate=1,
        ),
        # 2: fabricated quote, wrong label and a leak: rejected with every reason
        generation(
            ANGRY,
            [("lexical", "I will call security", "threat")],
            "The label is fear; he sounds scared of them.",
            concluded="fear",
            candidate=2,
        ),
        generation(
            SAD, [("lexical", "now we won't be bank buddies", "loss")], "He mourns a small loss; sad.", candidate=0
        ),
        generation(SAD, error="request_failed: timeout", candidate=1),
    ]


def test_every_record_gets_every_check_and_all_its_reasons():
    stats = VerifyStats()
    out = list(verify(candidates(), UTTS, None, VerifyConfig(), stats=stats))
    assert [r.id for r in out] == [c.id for c in candidates()]
    for record in out:
        assert [c.name for c in record.checks] == list(CHECK_NAMES)
    bad = out[2]
    assert not bad.accepted
    assert [r.check for r in bad.reasons] == ["label", "quote_grounding", "leakage", "reasoning"]
    assert [r.code for r in bad.reasons] == ["wrong_label", "not_in_transcript", "mentions_annotation", "no_emotion"]
    failed_request = out[4]
    assert [str(r) for r in failed_request.reasons] == ["schema: stage one: request_failed: timeout"]
    assert failed_request.reasons[0].code == "stage_one_error"
    assert all(c.applicable is False for c in failed_request.checks if c.name != "schema")
    assert stats.records == 5 and stats.accepted == 3 and stats.failed["label"] == 1
    assert stats.not_applicable["blind_consistency"] == 5


def test_best_of_n_selects_the_highest_scoring_accepted_candidate():
    out = list(verify(candidates(), UTTS, None, VerifyConfig()))
    assert [r.selected for r in out] == [False, True, False, True, False]
    assert out[1].score > out[0].score
    # ties go to the lowest candidate index
    twins = [generation(SAD, [("lexical", "bank buddies", "loss")], "A small loss; sad.", candidate=i) for i in (0, 1)]
    assert [r.selected for r in verify(twins, UTTS)] == [True, False]


def test_an_evidence_item_listed_twice_counts_once_in_the_score():
    # Small teachers repeat an item; repeating must not beat a candidate with the same evidence once.
    item = ("lexical", "Get out of here", "an order")
    once = generation(ANGRY, [item], GOOD_ANGRY, candidate=0)
    twice = generation(ANGRY, [("lexical", "get out  of HERE", "an order, again"), item], GOOD_ANGRY, candidate=1)
    two = generation(ANGRY, [item, ("lexical", "I mean it", "insistence")], GOOD_ANGRY, candidate=2)
    out = list(verify([once, twice, two], UTTS))
    assert all(r.accepted for r in out)
    assert out[0].score == out[1].score < out[2].score
    assert [r.selected for r in out] == [False, False, True]


def test_best_of_n_is_per_style_and_needs_adjacent_candidates():
    first, second = candidates()[0], candidates()[1]
    other_style = second.model_copy(update={"style": "summarize", "id": "meld/u1#summarize#0"})
    assert [r.selected for r in verify([first, other_style], UTTS)] == [True, True]
    scattered = [candidates()[0], candidates()[3], candidates()[1]]
    with pytest.raises(ValueError, match="not adjacent"):
        list(verify(scattered, UTTS))


def test_unknown_utterance_is_rejected_with_a_reason():
    stray = generation(utterance("meld/elsewhere", "Hi.", "neutral"), reasoning="Neutral.")
    (record,) = verify([stray], UTTS)
    assert not record.accepted and [str(r) for r in record.reasons] == [
        "schema: utterance 'meld/elsewhere' is not in the dataset"
    ]
    assert record.reasons[0].code == "unknown_utterance"
    assert all(c.reason.code == "unknown_utterance" for c in record.checks if c.name != CheckName.schema)


def test_blind_agreement_is_stored_always_and_checked_when_enabled():
    records = candidates()[:2]
    blind = {ANGRY.id: "Sadness"}
    off = list(verify(records, UTTS, None, VerifyConfig(), blind))
    assert all(r.accepted and r.blind_emotion == "Sadness" and r.blind_agrees is False for r in off)
    on = list(verify(records, UTTS, None, VerifyConfig(blind=True), blind))
    assert all(
        not r.accepted
        and [str(x) for x in r.reasons] == ["blind_consistency: label-blind answer is 'Sadness', gold is angry"]
        for r in on
    )


def test_disabled_checks_are_recorded_as_not_applicable():
    cfg = VerifyConfig(checks=[n for n in CHECK_NAMES if n not in ("leakage", "reasoning")])
    bad = list(verify(candidates(), UTTS, None, cfg))[2]
    assert [r.check for r in bad.reasons] == ["label", "quote_grounding"]
    assert next(c for c in bad.checks if c.name == "leakage").reason.code == "disabled"
    with pytest.raises(ValidationError, match="vibes"):
        VerifyConfig(checks=["schema", "vibes"])


def test_acoustic_claims_are_checked_against_profiles():
    claim = generation(SAD, [("acoustic", "softer than usual", "withdrawal")], "A quiet, slow voice: he is sad.")
    profiles = {SAD.id: profile(SAD.id, dataset="meld", loudness=-1.5, speaking_rate=-0.9)}
    assert next(iter(verify([claim], UTTS, profiles))).accepted
    loud = {SAD.id: profile(SAD.id, dataset="meld", loudness=1.5, speaking_rate=-0.9)}
    (record,) = verify([claim], UTTS, loud)
    assert str(record.reasons[0]).startswith("acoustic_grounding: 'quiet' contradicts the profile (loudness z=+1.50)")
    assert record.reasons[0].code == "contradicts"


def test_verdicts_are_validated_records():
    (record,) = verify(candidates()[:1], UTTS)
    assert VerifiedRecord.model_validate(record.model_dump()) == record


def test_verify_file_writes_sorted_filterable_parquet(tmp_path):
    src, out = tmp_path / "generations.parquet", tmp_path / "verified.parquet"
    write_records(candidates(), src, GenerationRecord)
    stats = verify_file(src, UTTS, None, VerifyConfig(batch_size=2), out_path=out)
    assert stats.records == 5 and sorted(p.name for p in tmp_path.iterdir()) == [
        "generations.parquet",
        "verified.parquet",
        "verified.parquet.json",
    ]
    table = pd.read_parquet(out)
    keys = list(zip(table.accepted, table.dataset, table.emotion, strict=True))
    assert keys == sorted(keys)
    rejected = pd.read_parquet(out, filters=[("accepted", "==", False)])
    assert sorted(rejected.id) == ["meld/u1#elaborate#2", "meld/u2#elaborate#1"]
    assert list(rejected.reasons.iloc[0])  # reasons are a list column
    meta = pq.ParquetFile(out).metadata
    for i in range(meta.num_row_groups):  # one (accepted, dataset, emotion) per row group
        stats_ = meta.row_group(i).column(meta.schema.names.index("accepted")).statistics
        assert stats_.min == stats_.max
    back = {r.id: r for r in iter_records(out, VerifiedRecord)}
    assert back["meld/u1#elaborate#1"].selected and back["meld/u1#elaborate#1"].checks[0].name == "schema"
    counts = json.loads((tmp_path / "verified.parquet.json").read_text())["counts"]
    assert counts["accepted"] == 3 and counts["failed"]["schema"] == 1


def test_blind_answers_take_the_majority_of_candidates(tmp_path):
    rows = [
        generation(SAD, reasoning="Sad.", concluded=e, candidate=i).model_copy(
            update={"style": "blind", "id": f"{SAD.id}#blind#{i}"}
        )
        for i, e in enumerate(["sad", "angry", "Sad"])
    ]
    write_records(rows, tmp_path / "blind.parquet", GenerationRecord)
    assert blind_answers(tmp_path / "blind.parquet") == {SAD.id: "sad"}


def test_verify_command_on_the_demo_corpus(tmp_path, capsys):
    from pipeline.datasets import load_dataset

    demo = load_dataset("demo").utterances[:3]
    rows = [
        generation(
            u, [("lexical", u.transcript.split()[0], "the opening")], f"It sounds {u.emotion.value}.", candidate=c
        )
        for u in demo
        for c in (0, 1)
    ]
    write_records(rows, tmp_path / "generations.parquet", GenerationRecord)
    generations = str(tmp_path / "generations.parquet")
    # The demo speaks these sentences with several emotions: their first word is no evidence.
    assert main(["verify", generations, "--dataset", "demo", "--skip", "duplicate"]) == 0
    printed = capsys.readouterr().out
    assert "6 records, 0 accepted" in printed and "relevance            failed 6" in printed
    assert main(["verify", generations, "--dataset", "demo", "--skip", "duplicate", "--skip", "relevance"]) == 0
    printed = capsys.readouterr().out
    assert "6 records, 6 accepted, 3 selected" in printed
    assert (tmp_path / "verify.config.yaml").is_file()
    assert main(["verify", str(tmp_path / "missing.parquet"), "--dataset", "demo"]) == 2


def test_stats_count_failures_and_checks_that_did_not_apply():
    stats = VerifyStats()
    out = list(verify(candidates(), UTTS, None, VerifyConfig(batch_size=2), stats=stats))
    by_hand = VerifyStats()
    for record in out:
        by_hand.add(record)
    assert stats.failed == by_hand.failed and stats.not_applicable == by_hand.not_applicable
    failed = sum(not c.passed for r in out for c in r.checks)
    assert sum(stats.failed.values()) == failed and stats.failed["schema"] == 1
    # the failed request: every check but schema did not apply; the other four: at least the optional ones
    assert stats.not_applicable["label"] == 1 and stats.not_applicable["judge"] == 5
    assert (stats.utterances, stats.unknown_utterances) == (2, 0)


def test_verify_file_removes_what_a_killed_run_left_behind(tmp_path):
    src, out = tmp_path / "generations.parquet", tmp_path / "verified.parquet"
    write_records(candidates(), src, GenerationRecord)
    dead = 2**22 + 12345  # above the default pid_max: no such process
    (tmp_path / f".verified.parquet.{dead}.tmp").write_bytes(b"PAR1 cut short")
    live = tmp_path / f".verified.parquet.{os.getppid()}.tmp"  # a live writer's file is not touched
    live.write_bytes(b"")
    verify_file(src, UTTS, None, VerifyConfig(), out_path=out)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["generations.parquet", "verified.parquet", "verified.parquet.json", live.name]
    )


def test_framed_answers_are_not_near_copies_of_each_other():
    from pipeline.grounded import FRAMED_SCHEMA_VERSION

    utts = {u.id: u for u in (utterance(f"meld/f{i}", "Okay.", "sad") for i in range(2))}
    same = "Softer than usual points to sadness."
    rows = [
        generation(u, [("lexical", "Okay", "sadness")], same).model_copy(update={"schema_version": version})
        for u in utts.values()
        for version in ("rationale-v1",)
    ]
    plain = list(verify(rows, utts, None, VerifyConfig(checks=["duplicate"])))
    assert str(plain[1].reasons[0]).startswith("duplicate: near-copy of") and plain[1].reasons[0].code == "near_copy"
    framed = [r.model_copy(update={"schema_version": FRAMED_SCHEMA_VERSION}) for r in rows]
    out = list(verify(framed, utts, None, VerifyConfig(checks=["duplicate"])))
    assert all(r.accepted for r in out)
    assert out[1].checks[CHECK_NAMES.index("duplicate")].reason.code == "framed"
