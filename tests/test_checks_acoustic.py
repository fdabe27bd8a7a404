"""Acoustic grounding against RAVDESS-like speaker-normalised profiles."""

from __future__ import annotations

import random
import re

import pytest
from factories_generation import check_input, generation, profile, utterance

from pipeline.acoustic.cues import PHRASES
from pipeline.checks.acoustic import check_acoustic
from pipeline.checks.acoustic_claims import _CLAIMS, _CLAIMS_AT, LEXICON, find_claims
from pipeline.checks.base import CheckSettings
from pipeline.records import Measure

# RAVDESS statement 01, actor 01, angry, strong intensity: loud, high and fast for this actor.
ANGRY = "ravdess/Actor_01/03-01-05-02-01-01-01"


def angry_clip():
    utt = utterance(ANGRY, "Kids are talking by the door", "angry", dataset="ravdess", protocol="ravdess8")
    prof = profile(ANGRY, loudness=1.8, pitch_level=1.2, speaking_rate=0.7, pauses=-0.4, voice_quality=-1.3)
    return utt, prof


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("She speaks quickly and loudly.", [("speaking_rate", 1), ("loudness", 1)]),
        ("a high-pitched, shaky voice", [("pitch_level", 1), ("voice_quality", -1)]),
        ("the pitch range is wide", [("pitch_range", 1)]),
        ("a flat, monotone delivery", [("pitch_range", -1)]),
        ("rising intonation at the end", [("pitch_slope", 1)]),
        ("long pauses between words", [("pauses", 1)]),
        ("speaking rate well below usual", [("speaking_rate", -1)]),
        ("she quickly became angry", []),  # not about the voice
        ('he says "speak louder"', []),  # a quote of the transcript, not a claim
    ],
)
def test_claim_lexicon(text, expected):
    assert [(c.measure.value, c.direction) for c in find_claims(text)] == expected


def test_every_profile_cue_phrase_reads_as_its_own_measure_and_direction():
    for measure, phrases in PHRASES.items():
        for level, phrase in phrases.items():
            for claim in find_claims(phrase):
                assert (claim.measure, claim.direction, claim.negated) == (measure, level.direction, False), phrase


def test_negation_stays_in_its_clause():
    claims = find_claims("not loud, but speaking fast; no pauses, a continuous delivery")
    assert [(c.measure.value, c.direction, c.negated) for c in claims] == [
        ("loudness", 1, True),
        ("speaking_rate", 1, False),
        ("pauses", -1, False),
        ("pauses", -1, False),
    ]


def test_a_bare_voice_word_about_another_sound_is_no_claim():
    # RAVDESS: "The sound of a dog is high-pitched and loud" failed as a claim about a quiet voice.
    assert find_claims("The sound of a dog is high-pitched and loud.") == ()
    claims = find_claims("Despite the loud music, she speaks softly; a loud voice would be anger.")
    assert [(c.phrase, c.direction) for c in claims] == [("softly", -1), ("loud", 1)]  # "loud voice": the voice
    assert [c.phrase for c in find_claims("She is loud over the music.")] == ["loud"]  # a person: a claim
    utt = utterance(ANGRY, "Kids are talking by the door", "sad", dataset="ravdess", protocol="ravdess8")
    quiet = profile(ANGRY, loudness=-1.1)
    rec = generation(utt, [("lexical", "Kids are talking", "x")], "Over the loud noises of the party, a sad word.")
    assert check_acoustic(rec, check_input(utt, quiet)).applicable is False


def test_less_is_a_negation():
    # "less loud" says the voice is not loud; read as "loud" it contradicted a quiet clip (RAVDESS).
    claims = find_claims("her voice is less loud than usual, and a less monotonous delivery")
    assert [(c.measure.value, c.direction, c.negated) for c in claims] == [
        ("loudness", 1, True),
        ("pitch_range", -1, True),
    ]
    utt = utterance(ANGRY, "Kids are talking by the door", "disgusted", dataset="ravdess", protocol="ravdess8")
    quiet = profile(ANGRY, loudness=-0.63)
    rec = generation(utt, [("lexical", "Kids are talking", "x")], "Her voice is less loud than usual; cold disgust.")
    assert check_acoustic(rec, check_input(utt, quiet)).passed


def test_true_acoustic_claims_pass():
    utt, prof = angry_clip()
    rec = generation(
        utt,
        [("acoustic", "much louder than this speaker's usual", "force"), ("acoustic", "pitch above usual", "arousal")],
        "He is shouting, with a raised pitch and a rough, strained voice, and he is not speaking slowly: angry.",
    )
    assert check_acoustic(rec, check_input(utt, prof)).passed


def test_false_acoustic_claims_fail_naming_them():
    utt, prof = angry_clip()
    rec = generation(
        utt,
        [("acoustic", "a quiet, soft voice", "restraint")],
        "The speaker talks slowly with long pauses and a clear, steady voice, yet sounds angry.",
    )
    result = check_acoustic(rec, check_input(utt, prof))
    assert not result.passed
    for phrase in ("'talks slowly'", "'long pauses'", "'quiet'", "'steady voice'"):
        assert f"{phrase} contradicts" in result.reason.detail


def test_weak_evidence_is_not_supported():
    utt, prof = angry_clip()  # speaking_rate z = +0.7
    rec = generation(utt, [("acoustic", "speaking fast", "urgency")], "Fast speech; angry.")
    assert check_acoustic(rec, check_input(utt, prof)).passed
    strict = check_input(utt, prof, settings=CheckSettings(acoustic_z_tolerance=1.0))
    result = check_acoustic(rec, strict)
    assert not result.passed and "not supported (speaking_rate z=+0.70, needs +1.00)" in result.reason.detail


def test_claim_about_an_unmeasured_cue_or_without_profile_fails():
    utt, _ = angry_clip()
    no_pitch = profile(ANGRY, loudness=1.8, pitch_level=None)
    rec = generation(utt, [("lexical", "Kids are talking", "x")], "A high pitch shows anger.")
    assert (
        "unmeasured cue 'high pitch' (pitch_level not measured)"
        in check_acoustic(rec, check_input(utt, no_pitch)).reason.detail
    )
    text_only = utterance("meld/x", "Get out!", "angry")
    result = check_acoustic(generation(text_only, reasoning="He is yelling."), check_input(text_only))
    assert not result.passed and "no acoustic profile" in result.reason.detail


def test_acoustic_evidence_must_name_a_measured_cue():
    utt, prof = angry_clip()
    rec = generation(utt, [("acoustic", "the emotional energy of the scene", "x")], "Angry.")
    assert "names no measured cue" in check_acoustic(rec, check_input(utt, prof)).reason.detail


def test_a_piece_of_a_cue_phrase_names_no_cue():
    utt, prof = angry_clip()
    cue = prof.cue_of(Measure.voice_quality)
    assert cue is not None and cue.phrase == "a rougher, noisier voice than usual"
    for piece in ("a", "er", "voice", "than usual"):
        rec = generation(utt, [("acoustic", piece, "tension")], "Angry.")
        assert "names no measured cue" in check_acoustic(rec, check_input(utt, prof)).reason.detail, piece
    # the whole phrase inside a longer cue names it
    rec = generation(utt, [("acoustic", f"He has {cue.phrase.upper()}!", "tension")], "Angry.")
    assert check_acoustic(rec, check_input(utt, prof)).passed


def test_cue_phrase_from_the_prompt_passes_and_no_claims_is_not_applicable():
    utt, prof = angry_clip()
    cue = prof.cue_of(Measure.voice_quality)
    assert cue is not None  # HNR z = -1.3: a rougher voice
    rec = generation(utt, [("acoustic", cue.phrase, "tension")], "The voice is rough; angry.")
    assert check_acoustic(rec, check_input(utt, prof)).passed
    plain = generation(utt, [("lexical", "Kids are talking", "x")], "The statement is neutral but he is angry.")
    assert check_acoustic(plain, check_input(utt, prof)).applicable is False


def test_first_character_dispatch_matches_what_the_whole_lexicon_matches():
    # The claim regex is tried only with the lexicon entries that can start with the character at
    # the position (pipeline.checks.first_char): at every position of lexicon-made and other
    # phrases it must return the same entry and span as the whole alternation.
    vocabulary = {w for pattern, _, _ in LEXICON for w in re.findall(r"[a-z0-9]+(?:[- ][a-z]+)?", pattern)}
    vocabulary |= {"not", "very", "the", "a", "and", "is", "was", "-", "'", "high-pitched", "so", "rather", "x"}
    rng = random.Random(0)
    words = sorted(vocabulary)
    texts = [" ".join(rng.choice(words) for _ in range(rng.randint(1, 10))) for _ in range(6_000)]
    texts += ["she speaks quickly and loudly.", "a high-pitched, shaky voice", "1st pitch", "", "?!"]
    for text in texts:
        for pos in range(len(text) + 1):
            whole, dispatched = _CLAIMS.match(text, pos), _CLAIMS_AT.match(text, pos)
            assert (whole and (whole.lastgroup, whole.span())) == (
                dispatched and (dispatched.lastgroup, dispatched.span())
            ), (text, pos)
