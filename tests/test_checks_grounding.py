"""Quote and context grounding over real MELD turns and invented transcripts."""

from __future__ import annotations

import pytest
from factories_generation import check_input, generation, meld_rows, meld_utterance, utterance

from pipeline.checks.context import check_context
from pipeline.checks.quotes import check_quotes
from pipeline.checks.text import NormText


@pytest.fixture(scope="module")
def dev_rows(meld_dir):
    return meld_rows(meld_dir, "dev")


def test_normalised_quote_matches_despite_case_punctuation_and_curly_apostrophes():
    text = NormText.of("Oh my God, he’s lost it. He’s totally lost it.")
    assert text.contains("HE'S TOTALLY lost it!!")
    assert text.contains("he's lost it ... totally lost it")  # an elided quote is two quotes
    assert not text.contains("lost it totally")  # word order matters
    assert not text.contains("los")  # word boundaries: no partial words


def test_fuzzy_tolerance_accepts_a_typo_not_an_invention():
    text = NormText.of("Oh my God, he’s lost it. He’s totally lost it.")
    assert text.contains("he's totaly lost it", 0.9)  # one letter dropped
    assert not text.contains("he's totaly lost it", 1.0)  # exact mode
    assert not text.contains("he has gone completely mad", 0.9)
    assert not text.contains("los it", 0.9)  # short quotes must match exactly


def test_real_meld_quote_passes_and_fabricated_quote_fails(dev_rows):
    utt = meld_utterance(dev_rows, 1)  # Phoebe, sadness
    words = utt.transcript.split()
    real = " ".join(words[-4:])  # the end of the turn as it stands in the CSV
    ok = generation(utt, [("lexical", real.upper(), "disbelief")], "She repeats herself, which sounds sad.")
    assert check_quotes(ok, check_input(utt)).passed
    fake = generation(
        utt, [("lexical", real, "x"), ("lexical", "I can't believe he is gone", "grief")], "She sounds sad."
    )
    result = check_quotes(fake, check_input(utt))
    assert not result.passed
    assert "I can't believe he is gone" in result.reason.detail and real not in result.reason.detail


def test_quote_invented_inside_the_reasoning_fails():
    utt = utterance("u1", "I told you to leave the keys on the table.", "angry")
    rec = generation(
        utt,
        [("lexical", "leave the keys on the table", "an order")],
        'He says "you never listen to me" and then "leave the keys on the table", which is angry.',
    )
    result = check_quotes(rec, check_input(utt))
    assert not result.passed and "you never listen to me" in result.reason.detail


def test_lexical_evidence_without_transcript_fails_and_no_quote_is_not_applicable():
    utt = utterance("u2", None, "sad", dataset="ravdess", protocol="ravdess8")
    assert "no transcript" in check_quotes(generation(utt, [("lexical", "dogs", "x")]), check_input(utt)).reason.detail
    acoustic_only = generation(utt, [("acoustic", "softer than usual", "sadness")], "A soft voice; sad.")
    result = check_quotes(acoustic_only, check_input(utt))
    assert result.passed and result.applicable is False


def test_context_quote_of_a_real_previous_meld_turn_passes(dev_rows):
    utt = meld_utterance(dev_rows, 34, context=6)  # Ross, anger, after the scholars' visit
    assert utt.context, "the dialogue has earlier turns"
    turn = utt.context[-1]
    quoted = " ".join(turn.text.split()[:3])
    rec = generation(
        utt,
        [("contextual", quoted, "he is being ignored"), ("contextual", f"{turn.speaker}: {turn.text}", "setup")],
        "He is fed up with them and angry.",
    )
    assert check_context(rec, check_input(utt)).passed


def test_context_quote_of_a_nonexistent_turn_fails(dev_rows):
    utt = meld_utterance(dev_rows, 34, context=6)
    invented = generation(
        utt, [("contextual", "You will never get tenure, Ross", "provocation")], "He is angry at the insult."
    )
    result = check_context(invented, check_input(utt))
    assert not result.passed and "not in any previous turn" in result.reason.detail
    bad_turn = generation(utt, [("contextual", f"turn 40: {utt.context[0].text}", "x")], "He is angry.")
    assert "turn 40 does not exist" in check_context(bad_turn, check_input(utt)).reason.detail


def test_context_quote_attributed_to_the_wrong_speaker_fails():
    utt = utterance("u3", "Fine.", "angry", context=[("Monica", "You ate my cake?"), ("Chandler", "It was there!")])
    right = generation(utt, [("contextual", "Chandler: It was there!", "an excuse")], "She is angry.")
    wrong = generation(utt, [("contextual", "Monica: It was there!", "an excuse")], "She is angry.")
    assert check_context(right, check_input(utt)).passed
    assert "said by Chandler, not monica" in check_context(wrong, check_input(utt)).reason.detail


def test_contextual_evidence_without_context_fails():
    utt = utterance("u4", "Fine.", "angry")
    rec = generation(utt, [("contextual", "You ate my cake?", "x")], "She is angry.")
    result = check_context(rec, check_input(utt))
    assert not result.passed and "no previous turns" in result.reason.detail
    lexical = generation(utt, [("lexical", "Fine", "curt")], "Curt; angry.")
    assert check_context(lexical, check_input(utt)).applicable is False
