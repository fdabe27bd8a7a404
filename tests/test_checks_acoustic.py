"""Acoustic grounding against RAVDESS-like speaker-normalised profiles."""

from __future__ import annotations

import random
import re

import pytest
from factories_generation import check_input, generation, profile, utterance

from pipeline.acoustic.cues import PHRASES
from pipeline.checks.acoustic import check_acoustic
from pipeline.checks.acoustic_claims import LEXICON, START_WORDS, _entries_at, find_claims
from pipeline.checks.acoustic_lexicon import LexiconError, parse
from pipeline.checks.base import CheckSettings
from pipeline.checks.text import ClauseWords, clauses
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


def test_every_lexicon_entry_is_reachable_through_the_prefilter():
    # Each entry's examples must come out of find_claims (prefilter and start-word index included)
    # as one claim of the entry's measure and direction whose phrase the entry matches whole.
    assert len(LEXICON.entries) > 40
    for entry in LEXICON.entries:
        for example in entry.examples:
            claims = find_claims(example)
            assert len(claims) == 1, (entry.line, example, claims)
            (claim,) = claims
            assert (claim.measure, claim.direction, claim.negated) == (entry.measure, entry.direction, False), example
            assert entry.regex.fullmatch(claim.phrase), (entry.line, example, claim.phrase)


def test_phrases_no_hand_kept_anchor_list_could_reach_are_claims():
    # The old anchor list lacked "flow" and "affect": these phrases could never match.
    for text, expected in [
        ("a continuous flow", ("pauses", -1)),
        ("fluent flow of words", ("pauses", -1)),
        ("flat affect", ("pitch_range", -1)),
        ("her shaky voice's pitch", ("voice_quality", -1)),
        ("she speaks haltingly", ("pauses", 1)),
    ]:
        assert [(c.measure.value, c.direction) for c in find_claims(text)] == [expected], text


def test_start_words_cover_every_match_from_a_word_start():
    # Soundness of the derived prefilter: wherever an entry matches from the start of a clause word
    # and covers that word (or its part before a hyphen or apostrophe), the start-word index lists
    # the entry for that word. Random texts from the lexicon's own words and a few others.
    vocabulary = {w for entry in LEXICON.entries for w in re.findall(r"[a-z0-9]+(?:[- '][a-z]+)?", entry.pattern)}
    vocabulary |= {"not", "very", "the", "a", "and", "is", "was", "-", "'", "so", "x", "voice's", "loud-mouthed"}
    rng = random.Random(0)
    words = sorted(vocabulary)
    checked = 0
    for _ in range(3_000):
        text = " ".join(rng.choice(words) for _ in range(rng.randint(1, 8)))
        for clause in clauses(text):
            cw = ClauseWords(clause)
            for i, word in enumerate(cw.words):
                offset = cw.offset(i)
                head = re.match(r"[\w]+", word)
                for index, entry in enumerate(LEXICON.entries):
                    m = entry.regex.match(clause, offset)
                    if m is None:
                        continue
                    covers = m.end() >= offset + len(word) or (head is not None and m.end() == offset + head.end())
                    if covers:
                        checked += 1
                        assert index in _entries_at(word), (clause, word, entry.line)
    assert checked > 1_000


def test_start_words_are_derived_from_the_patterns():
    assert {"flow", "affect"}.isdisjoint(START_WORDS)  # never a claim's first word
    assert {"continuous", "flat", "loudly", "high-pitched", "high", "speaking", "drawn-out"} <= START_WORDS


def test_a_malformed_lexicon_names_file_and_line():
    header = "words: {w: [a, b]}\nclaims:\n"
    entry = "  - measure: loudness\n    direction: up\n    pattern: '{pattern}'\n    examples: [x]\n"
    ok = entry.format(pattern="loud")
    with pytest.raises(LexiconError, match=r"lex.yaml:7: start alternative 'loudl\?y' is not a literal word"):
        parse(header + ok + entry.format(pattern="(?:loud|loudl?y)"), "lex.yaml")
    with pytest.raises(LexiconError, match=r"lex.yaml:3: the pattern's first group must be flat"):
        parse(header + entry.format(pattern="(?:loud(?:ly)?)"), "lex.yaml")
    with pytest.raises(LexiconError, match=r"lex.yaml:3: the pattern must begin"):
        parse(header + entry.format(pattern="\\w+ voice"), "lex.yaml")
    with pytest.raises(LexiconError, match=r"lex.yaml:3: unknown measure 'volume'"):
        parse(header + ok.replace("loudness", "volume"), "lex.yaml")
    with pytest.raises(LexiconError, match=r"lex.yaml:3: unknown reference \{nope\}"):
        parse(header + entry.format(pattern="loud\\s+{nope}"), "lex.yaml")
    lexicon = parse(header + entry.format(pattern="{w} voice"), "lex.yaml")
    assert lexicon.start_words == {"a", "b"}
