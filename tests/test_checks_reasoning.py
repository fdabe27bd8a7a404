"""The reasoning check: free text that ties the cited evidence to the emotion and invents nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from factories_generation import check_input, generation, profile, utterance

from pipeline.checks.reasoning import check_reasoning
from pipeline.records import Gender
from pipeline.relevance import load_relevance

TABLE = load_relevance(Path(__file__).parent / "data" / "ravdess_relevance.json")
RAVDESS = utterance("ravdess/a", "Kids are talking by the door.", "angry", dataset="ravdess", protocol="ravdess8")
RAVDESS = RAVDESS.model_copy(update={"gender": Gender.female})
LOUD = profile(RAVDESS.id, loudness=1.8, loudness_variability=1.3, pitch_range=1.2)
LOUD_CUE = [("acoustic", "louder than usual", "anger")]


def verdict(reasoning: str, evidence=LOUD_CUE, utt=RAVDESS, prof=LOUD):
    return check_reasoning(generation(utt, evidence, reasoning), check_input(utt, prof, relevance=TABLE))


@pytest.mark.parametrize(
    ("reasoning", "why"),
    [
        # The two accepted rows of the demo run that the issue quotes.
        (
            "anger; this speaker's usual brushfires are not used in this report, I'm not sure what to make of it.",
            "names none of the evidence it cites",
        ),
        ("sarcasm, anger, blunt, loud, varied, loudness variability, and minor vocal range.", "links no evidence"),
        ("The male voice is louder than usual, which suggests anger.", "gives a female speaker another gender"),
        ("Louder than usual, the kids at the door make her angry.", "leans on the words door, kids"),
        ("The listener hears a louder voice than usual, which suggests anger.", "invents a scene or listener"),
        ("Louder than usual; the other speaker made her angry.", "invents a dialogue"),
        ("Louder than usual, which suggests anger and a little off to the left of.", "stops mid-thought"),
        ("Louder than usual suggests she is calm.", "does not name the emotion it concludes"),
        ("I think the voice is louder than usual, which suggests anger.", "speaks as itself"),
        # Tails of the 135M teacher's framed answers on RAVDESS.
        ("Louder than usual is typical of anger, 21 13 5 100 002.", "invents numbers"),
        ("Louder than usual is typical of anger, but it is not anger itself but that'sntetreatable.", "garbled words"),
        ("Louder than usual and louder than usual are typical of anger.", "repeats itself"),
        ("Louder than usual is typical of anger, anger.", "repeats itself"),
        (
            "Louder than usual is typical of anger, but this voice is not a way to express anger.",
            "takes its conclusion",
        ),
        ("Louder than usual is typical of anger, but it can be more severe.", "hedges after its conclusion"),
        ("Louder than usual is typical of anger, which is the emotion you were describing.", "addresses the reader"),
    ],
)
def test_rejects_text_that_says_nothing_about_this_utterance(reasoning, why):
    result = verdict(reasoning)
    assert not result.passed and why in result.reason.detail, result.reason


@pytest.mark.parametrize(
    "reasoning",
    [
        "Louder than usual points to anger.",
        "Much louder than this speaker's usual and more varied loudness than usual suggest anger.",
        "She speaks much louder than usual, with a wider pitch range, which is typical of anger.",
        "The voice is louder and more animated than usual: she is angry.",
        "Louder than usual suggests anger, not fear.",
        "Louder than usual suggests anger, but the wider pitch range matters as much.",
    ],
)
def test_plain_good_reasoning_passes(reasoning):
    result = verdict(reasoning)
    assert result.passed, result.reason


def test_a_supporting_cue_named_in_the_reasoning_counts_cited_or_not():
    # The evidence cites the loudness; the reasoning names the wider pitch range, also measured and
    # typical of anger: the reasoning still explains this utterance's voice.
    assert verdict("A wider pitch range than usual points to anger.").passed
    # A measured cue that does not bear on anger (pauses) is not a link.
    paused = profile(RAVDESS.id, loudness=1.8, pauses=1.5)
    result = verdict("More pausing than usual suggests anger.", prof=paused)
    assert not result.passed and "names none of the evidence" in result.reason.detail


def test_words_the_recording_says_are_not_invented():
    # MELD: the transcript says "I" and names the kids; repeating them is not an invention.
    meld = utterance("meld/k", "I told the kids to go home!", "angry")
    said = generation(meld, [("lexical", "I told the kids", "anger")], "Saying the kids must go home is angry.")
    assert check_reasoning(said, check_input(meld)).passed
    # A quote alone is not asked to be named: a paraphrase cannot be verified without a judge.
    paraphrase = generation(meld, [("lexical", "go home", "anger")], "He dismisses them, which sounds angry.")
    assert check_reasoning(paraphrase, check_input(meld)).passed


def test_a_framed_reasoning_adds_nothing_but_the_voice_after_its_conclusion():
    from pipeline.grounded import FRAMED_SCHEMA_VERSION

    def framed(reasoning: str):
        record = generation(RAVDESS, LOUD_CUE, reasoning).model_copy(update={"schema_version": FRAMED_SCHEMA_VERSION})
        return check_reasoning(record, check_input(RAVDESS, LOUD, relevance=TABLE))

    assert framed("Louder than usual is typical of anger.").passed
    assert framed("Louder than usual is typical of anger, with more varied loudness than usual.").passed
    result = framed("Louder than usual is typical of anger, which is the emotion used in this example.")
    assert not result.passed and "adds words after its conclusion that are not about the voice" in result.reason.detail
    # The same words in free (not framed) reasoning are not read this way.
    free = check_reasoning(
        generation(
            RAVDESS, LOUD_CUE, "Louder than usual is typical of anger, which is the emotion used in this example."
        ),
        check_input(RAVDESS, LOUD, relevance=TABLE),
    )
    assert free.reason is None or "adds words" not in free.reason.detail
