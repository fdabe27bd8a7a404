"""Label consistency and label leakage, over real MELD turns and invented ones."""

from __future__ import annotations

import pytest
from factories_generation import check_input, generation, meld_rows, meld_utterance, utterance

from pipeline.checks.label import asserted_emotions, check_label, concluded_emotion
from pipeline.checks.leakage import check_leakage
from pipeline.labels import PROTOCOLS, Emotion, Protocol


@pytest.fixture(scope="module")
def dev_rows(meld_dir):
    return meld_rows(meld_dir, "dev")


def test_synonyms_and_protocol_merges_read_the_concluded_emotion():
    angry = utterance("a", "Get out!", "angry", dataset="iemocap", protocol="iemocap4")
    assert check_label(generation(angry, concluded="Furious", reasoning="He shouts; anger."), check_input(angry)).passed
    happy = utterance("h", "We won!", "happy", dataset="iemocap", protocol="iemocap4")
    # excited merges into happy under the 4-class protocol
    assert check_label(generation(happy, concluded="excited", reasoning="Thrilled."), check_input(happy)).passed
    assert check_label(generation(happy, concluded="mild joy", reasoning="Pleased."), check_input(happy)).passed


def test_wrong_concluded_label_fails_on_real_meld(dev_rows):
    utt = meld_utterance(dev_rows, 34)  # Ross, anger: "Get out of here!"
    assert utt.emotion is Emotion.angry
    wrong = generation(utt, [("lexical", "Get out of here", "surprise")], "He is startled by them.", "surprise")
    result = check_label(wrong, check_input(utt))
    assert not result.passed and result.reason.detail == "concluded surprised but gold is angry"
    right = generation(utt, [("lexical", "Get out of here", "an order")], "He orders them out: angry.", "anger")
    assert check_label(right, check_input(utt)).passed


def test_not_an_emotion_or_outside_the_protocol_fails():
    utt = utterance("u", "Ugh.", "angry")
    assert "not a meld7 label" in check_label(generation(utt, concluded="sarcastic"), check_input(utt)).reason.detail
    # 'annoyed' is frustrated, which the 7-class MELD protocol does not have
    assert "not a meld7 label" in check_label(generation(utt, concluded="annoyed"), check_input(utt)).reason.detail


def test_reasoning_that_argues_for_another_emotion_fails(dev_rows):
    utt = meld_utterance(dev_rows, 1)  # Phoebe, sadness
    argues = generation(
        utt,
        [("lexical", "totally lost it", "x")],
        "Her outburst is furious; she is angry at him and her anger shows, though the conclusion is sad.",
        concluded="sad",
    )
    result = check_label(argues, check_input(utt))
    assert not result.passed and "argues for angry" in result.reason.detail
    concludes_other = generation(
        utt, reasoning="She is sad at first, but in the end she sounds scared.", concluded="sad"
    )
    assert "reasoning concludes fearful" in check_label(concludes_other, check_input(utt)).reason.detail


def test_negated_and_quoted_emotion_words_do_not_count():
    utt = utterance("u", "I am not angry, I am just tired.", "sad")
    rec = generation(
        utt,
        [("lexical", "I am not angry", "denial")],
        'She says "I am not angry"; she is not angry at all, rather than anger there is sadness.',
        "sad",
    )
    assert asserted_emotions(rec.answer.reasoning, PROTOCOLS["meld7"]) == (Emotion.sad,)
    assert check_label(rec, check_input(utt)).passed


def test_calm_supports_gold_calm_but_never_argues_against_gold():
    # "calm" is too ambiguous in free text to argue for calm ("calm on the surface"), but a calm
    # clip's rationale says it: before, one "happy" outnumbered it (RAVDESS: "gold calm (0x)").
    calm = utterance("ravdess/c", "Dogs are sitting by the door.", "calm", dataset="ravdess", protocol="ravdess8")
    reasoning = "Although the words could belong to a happy speaker, the soft, even voice shows she is calm, and she stays calm."
    rec = generation(calm, [("lexical", "Dogs are sitting", "x")], reasoning, "calm")
    assert asserted_emotions(reasoning, PROTOCOLS["ravdess8"], Emotion.calm) == (
        Emotion.happy,
        Emotion.calm,
        Emotion.calm,
    )
    assert check_label(rec, check_input(calm)).passed
    angry = utterance("ravdess/a", "Dogs are sitting by the door.", "angry", dataset="ravdess", protocol="ravdess8")
    rec = generation(
        angry, [("lexical", "Dogs are sitting", "x")], "Calm on the surface, but angry underneath.", "angry"
    )
    assert asserted_emotions(rec.answer.reasoning, PROTOCOLS["ravdess8"], Emotion.angry) == (Emotion.angry,)
    assert check_label(rec, check_input(angry)).passed


def test_record_gold_must_match_the_dataset():
    utt = utterance("u", "Hi.", "happy")
    stale = generation(utterance("u", "Hi.", "sad"), reasoning="Sad.", concluded="sad")
    result = check_label(stale, check_input(utt))
    assert not result.passed and "differs from the dataset" in result.reason.detail


@pytest.mark.parametrize(
    "reasoning",
    [
        "The label is angry, and the shouting fits.",
        "This utterance was annotated as anger by the annotators.",
        "Since it is labeled as angry, the words must be hostile.",
        "We are told the speaker is angry.",
        "The given emotion is anger, so the exclamation reads as hostile.",
        "Matching the gold label, the voice is loud.",
        "It is 'angry', as the tone shows.",
    ],
)
def test_leaked_label_fails(reasoning):
    utt = utterance("u", "Get out of here!", "angry", raw_label="anger")
    result = check_leakage(generation(utt, reasoning=reasoning), check_input(utt))
    assert not result.passed, reasoning


def test_plain_conclusion_and_transcript_words_in_quotes_do_not_leak():
    utt = utterance("u", "I am so angry with you!", "angry", raw_label="anger")
    rec = generation(
        utt,
        [("lexical", "I am so angry with you", "a direct statement")],
        'She says she is "angry", and the emotion is clearly anger: the given words are hostile.',
    )
    assert check_leakage(rec, check_input(utt)).passed


def test_concluded_emotion_is_cached_only_for_registered_protocols():
    # The cache is keyed by protocol name: a caller's own protocol of the same name is read afresh.
    registered = PROTOCOLS["iemocap4"]
    own = Protocol("iemocap4", (Emotion.angry, Emotion.excited), {})
    assert concluded_emotion("excited", registered) is Emotion.happy  # merged under the registered one
    assert concluded_emotion("excited", own) is Emotion.excited
    assert concluded_emotion("mild anger", own) is Emotion.angry and concluded_emotion("sad", own) is None
