"""Schema, degeneracy and label-blind consistency of one answer."""

from __future__ import annotations

import json

from factories_generation import check_input, generation, utterance

from pipeline.checks.blind import check_blind
from pipeline.checks.degeneracy import check_degeneracy
from pipeline.checks.schema import check_schema
from pipeline.grounded import GROUNDED_SCHEMA_VERSION, MAX_REASONING_WORDS
from pipeline.rationale import Evidence, EvidenceKind, RationaleAnswer

UTT = utterance("meld/dev/dia0_utt0", "Oh my God, he's lost it. He's totally lost it.", "sad")
GOOD = (
    "Phoebe repeats that he has totally lost it, which sounds like dismay at a friend's state; "
    "the repetition carries hopelessness rather than anger, so the speaker is sad."
)


def test_stage_one_error_and_invalid_raw_text_fail_schema():
    failed_request = generation(UTT, error="request_failed: HTTP 503 after 4 attempts")
    assert (
        check_schema(failed_request, check_input(UTT)).reason.detail
        == "stage one: request_failed: HTTP 503 after 4 attempts"
    )
    unparsed = generation(UTT, parsed=False, raw_text='{"evidence": [], "reasoning": "x", "emotion": "sad"}')
    result = check_schema(unparsed, check_input(UTT))
    assert not result.passed and result.reason.detail.startswith("invalid answer: evidence:")


def test_an_answer_cut_off_at_max_tokens_says_so():
    raw = '{"evidence": [{"kind": "lexical", "cue": "lost it", "suggests": "door-door-door-door-door-door-door-do'
    error = "invalid_answer: 1 validation error for RationaleAnswer Invalid JSON: EOF while parsing a string"
    cut = generation(UTT, parsed=False, raw_text=raw, error=error, finish_reason="length")  # max_tokens = 512
    reason = check_schema(cut, check_input(UTT)).reason.detail
    assert reason.startswith("cut off: the answer used all 512 tokens before its JSON closed") and "door-do" in reason
    short = generation(UTT, parsed=False, raw_text=raw, error=error, completion_tokens=100, finish_reason="stop")
    assert check_schema(short, check_input(UTT)).reason.detail.startswith("stage one: invalid_answer")


def test_blank_fields_fail_schema_and_a_good_answer_passes():
    blank = generation(UTT, [("lexical", "lost it", "   ...  ")], GOOD)
    assert check_schema(blank, check_input(UTT)).reason.detail == "evidence[0].suggests has no words"
    sentence = generation(UTT, reasoning=GOOD, concluded="I think she is sad")
    assert "emotion is not a word" in check_schema(sentence, check_input(UTT)).reason.detail
    assert check_schema(generation(UTT, reasoning=GOOD), check_input(UTT)).passed


def test_repetition_loop_fails():
    loop = generation(UTT, reasoning="She is sad because she is sad because " * 8 + "she is sad.")
    result = check_degeneracy(loop, check_input(UTT))
    assert not result.passed and "of 3-grams repeat" in result.reason.detail
    stutter = generation(UTT, reasoning="She is very very very very very very sad.")
    assert "'very' x6" in check_degeneracy(stutter, check_input(UTT)).reason.detail
    assert check_degeneracy(generation(UTT, reasoning=GOOD), check_input(UTT)).passed


def test_truncated_reasoning_fails():
    cut = generation(UTT, reasoning="Phoebe repeats that he has totally lost it, which sounds like")
    assert "ends mid-sentence" in check_degeneracy(cut, check_input(UTT)).reason.detail
    at_limit = generation(UTT, reasoning=GOOD, finish_reason="length")  # sampling max_tokens = 512
    assert "used all 512 tokens" in check_degeneracy(at_limit, check_input(UTT)).reason.detail
    # A row without a finish reason: its share of the request's tokens (n = 2) reached the limit.
    old_row = generation(UTT, reasoning=GOOD, completion_tokens=1024)
    assert "used all 512 tokens" in check_degeneracy(old_row, check_input(UTT)).reason.detail


def test_truncation_is_the_candidates_not_its_requests_token_total():
    # Two candidates of 300 tokens each: the request used 600 of n * 512, neither candidate was cut.
    pair = json.dumps({"temperature": 0.7, "top_p": 0.95, "max_tokens": 512, "n": 2, "seed": None})
    both = generation(UTT, reasoning=GOOD, completion_tokens=600, sampling=pair)
    assert check_degeneracy(both, check_input(UTT)).passed
    finished = generation(UTT, reasoning=GOOD, completion_tokens=600, sampling=pair, finish_reason="stop")
    assert check_degeneracy(finished, check_input(UTT)).passed
    cut = generation(UTT, reasoning=GOOD, completion_tokens=600, sampling=pair, finish_reason="length")
    assert "used all 512 tokens" in check_degeneracy(cut, check_input(UTT)).reason.detail


def test_grounded_reasoning_at_the_grammars_word_cap_is_truncated():
    # The grammar closes the reasoning with a full stop at its last allowed word, mid-thought
    # or not (a RAVDESS answer of the 135M teacher: "... and the speaker is also in a state of.").
    words = f"{GOOD} {GOOD} {GOOD}".split()
    at_cap = " ".join(words[: MAX_REASONING_WORDS - 1] + ["of."])
    below = " ".join(words[: MAX_REASONING_WORDS - 2] + ["sad."])
    for reasoning, grounded, truncated in ((at_cap, True, True), (below, True, False), (at_cap, False, False)):
        record = generation(UTT, reasoning=reasoning)
        if grounded:
            record = record.model_copy(update={"schema_version": GROUNDED_SCHEMA_VERSION})
        reason = check_degeneracy(record, check_input(UTT)).reason.detail
        assert (f"all {MAX_REASONING_WORDS} words grounded decoding allows" in reason) is truncated, reasoning


def test_wrong_language_and_refusal_fail():
    german = generation(
        UTT,
        reasoning="Phoebe wiederholt mehrmals, dass er völlig durchgedreht ist; daraus spricht große "
        "Traurigkeit über den Zustand ihres Freundes und keine Wut gegenüber ihm selbst.",
    )
    assert "not English" in check_degeneracy(german, check_input(UTT)).reason.detail
    cyrillic = generation(UTT, reasoning="Фиби повторяет, что он совсем сошёл с ума; это грусть.")
    assert "ASCII letters" in check_degeneracy(cyrillic, check_input(UTT)).reason.detail
    refusal = generation(UTT, reasoning="As an AI, I cannot determine the emotions of real people.")
    assert "refusal" in check_degeneracy(refusal, check_input(UTT)).reason.detail


def test_blind_consistency_is_off_by_default_and_compares_with_gold_when_on():
    rec = generation(UTT, reasoning=GOOD)
    assert check_blind(rec, check_input(UTT, blind_emotion="angry")).reason.code == "disabled"
    on = {"blind_enabled": True}
    assert check_blind(rec, check_input(UTT, blind_emotion="sadness", **on)).passed
    result = check_blind(rec, check_input(UTT, blind_emotion="furious", **on))
    assert not result.passed and result.reason.detail == "label-blind answer is 'furious', gold is sad"
    assert check_blind(rec, check_input(UTT, **on)).reason.code == "no_blind_answer"


def test_answer_model_bounds_are_the_schema():
    # The pydantic bounds reject what schema would otherwise have to: no evidence, 9 items.
    for evidence in ([], [Evidence(kind=EvidenceKind.lexical, cue="x", suggests="y")] * 9):
        try:
            RationaleAnswer(evidence=evidence, reasoning="r", emotion="sad")
        except ValueError:
            continue
        raise AssertionError(f"{len(evidence)} evidence items validated")
