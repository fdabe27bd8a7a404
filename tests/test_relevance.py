"""The relevance table, the evidence plan and the relevance check, on the table fitted from real
RAVDESS profiles (tests/data/ravdess_relevance.json: the 960 training clips, actors 1-16, measured
by pipeline.acoustic) and on small hand-made corpora."""

from __future__ import annotations

from pathlib import Path

import pytest
from factories_generation import check_input, generation, profile, utterance

from pipeline.checks.relevance import check_relevance
from pipeline.evidence_plan import PlanMode, plan_evidence
from pipeline.labels import Emotion
from pipeline.records import Measure
from pipeline.relevance import (
    RelevanceSettings,
    RelevanceTable,
    Stance,
    fit_relevance,
    load_relevance,
    save_relevance,
)

RAVDESS_TABLE = Path(__file__).parent / "data" / "ravdess_relevance.json"
SENTENCE = "Kids are talking by the door."


@pytest.fixture(scope="module")
def ravdess() -> RelevanceTable:
    return load_relevance(RAVDESS_TABLE)


def clip(uid: str, emotion: str, speaker: str = "Actor_02") -> object:
    return utterance(uid, SENTENCE, emotion, dataset="ravdess", protocol="ravdess8", speaker=speaker)


def test_ravdess_table_says_which_way_cues_point(ravdess):
    assert ravdess.fitted_on == 960 and ravdess.datasets == ["ravdess"]
    # Acted anger is louder than the same actor's other clips; calm is softer and clearer.
    assert ravdess.stance(Emotion.angry, Measure.loudness, +1)[0] is Stance.supports
    assert ravdess.stance(Emotion.angry, Measure.loudness, -1)[0] is Stance.contradicts
    assert ravdess.stance(Emotion.sad, Measure.loudness, +1)[0] is Stance.contradicts
    assert ravdess.stance(Emotion.calm, Measure.voice_quality, +1)[0] is Stance.supports
    assert ravdess.stance(Emotion.angry, Measure.pauses, +1)[0] is Stance.neutral  # no typical deviation
    # RAVDESS actors draw angry lines out and narrow their pitch for fear; the literature finds the
    # opposite, so those cells are disputed and support nothing.
    assert ravdess.stance(Emotion.angry, Measure.speaking_rate, -1)[0] is Stance.neutral
    assert ravdess.cell(Emotion.angry, Measure.speaking_rate).disputed
    assert ravdess.cell(Emotion.fearful, Measure.pitch_range).disputed
    assert sum(c.disputed for c in ravdess.cells) == 2
    cell = ravdess.cell(Emotion.angry, Measure.loudness)
    assert cell.n == 128 and cell.low > 0 and cell.mean_z == pytest.approx(1.18, abs=0.01)
    # Both RAVDESS sentences are spoken with all eight emotions: their words are no evidence.
    assert len(ravdess.sentences) == 2 and all(len(s.emotions) == 8 for s in ravdess.sentences)
    assert ravdess.sentence("kids are talking by the DOOR") is not None


def test_fit_uses_the_training_split_and_marks_thin_cells_unknown(tmp_path):
    def utt(uid, emotion, split, text="Fine."):
        u = utterance(uid, text, emotion)
        return u.model_copy(update={"split": split})

    utts = [utt(f"a{i}", "angry", "train") for i in range(8)] + [utt(f"s{i}", "sad", "train") for i in range(3)]
    utts += [utt(f"t{i}", "angry", "test", "Never said in training.") for i in range(8)]
    loud = {u.id: profile(u.id, loudness=1.5 + 0.1 * (i % 3), pauses=(-1) ** i * 0.3) for i, u in enumerate(utts)}
    # The test clips are all soft: had they been read, angry loudness would not be typical.
    loud.update({u.id: profile(u.id, loudness=-3.0) for u in utts if u.split == "test"})
    table = fit_relevance(utts, loud, RelevanceSettings(min_utterances=5))
    assert table.fitted_on == 11
    assert table.stance(Emotion.angry, Measure.loudness, +1)[0] is Stance.supports
    assert table.stance(Emotion.angry, Measure.pauses, +1)[0] is Stance.neutral
    assert table.stance(Emotion.sad, Measure.loudness, -1)[0] is Stance.unknown  # 3 < 5 utterances
    assert table.cell(Emotion.sad, Measure.loudness).direction is None
    # "Fine." is said angry and sad in training: several emotions. The test sentence is not counted.
    assert table.sentence("fine") is not None and table.sentence("Never said in training.") is None
    assert load_relevance(save_relevance(table, tmp_path / "relevance.json")) == table
    with pytest.raises(FileNotFoundError, match="no relevance table"):
        load_relevance(tmp_path / "missing")
    (tmp_path / "bad.json").write_text('{"cells": 3}')
    with pytest.raises(ValueError, match="bad.json: not a relevance table"):
        load_relevance(tmp_path / "bad.json")


def test_relevance_check_on_ravdess(ravdess):
    angry = clip("ravdess/a", "angry")
    loud = profile(angry.id, loudness=1.8, pitch_level=-1.4)  # "louder than usual", "pitch below ..."
    supporting = generation(angry, [("acoustic", "louder than usual", "anger")], "Louder than usual suggests anger.")
    result = check_relevance(supporting, check_input(angry, loud, relevance=ravdess))
    assert result.passed and result.reason is None

    soft = profile(angry.id, loudness=-1.6)
    contra = generation(angry, [("acoustic", "softer than usual", "anger")], "Softer than usual suggests anger.")
    result = check_relevance(contra, check_input(angry, soft, relevance=ravdess))
    assert not result.passed
    assert (
        "'softer than usual' (loudness z=-1.60) contradicts angry: typically higher (loudness z +1.18"
        in result.reason.detail
    )

    # A supporting cue does not excuse a contradicting one beside it.
    both = generation(
        angry,
        [("acoustic", "louder than usual", "anger"), ("acoustic", "pitch below this speaker's usual", "anger")],
        "Louder than usual suggests anger.",
    )
    result = check_relevance(both, check_input(angry, loud, relevance=ravdess))
    assert not result.passed and "pitch_level z=-1.40) contradicts angry" in result.reason.detail

    quote = generation(angry, [("lexical", "talking by the door", "anger")], "Talking by the door: anger.")
    result = check_relevance(quote, check_input(angry, loud, relevance=ravdess))
    assert not result.passed
    assert "quotes 'talking by the door' of a sentence this corpus speaks with 8 emotions" in result.reason.detail

    # A cue with no typical deviation for the emotion supports nothing.
    paused = profile(angry.id, pauses=1.5)
    neutral = generation(angry, [("acoustic", "more pausing than usual", "anger")], "More pausing suggests anger.")
    result = check_relevance(neutral, check_input(angry, paused, relevance=ravdess))
    assert (
        not result.passed
        and "no evidence supports angry" in result.reason.detail
        and "does not bear on" in result.reason.detail
    )

    # A claim in the item's own words is read like the acoustic check reads it.
    worded = generation(angry, [("acoustic", "a loud voice", "anger")], "A loud voice suggests anger.")
    assert check_relevance(worded, check_input(angry, loud, relevance=ravdess)).passed
    assert check_relevance(supporting, check_input(angry, loud)).reason.code == "no_table"


def test_unknown_cells_draw_no_verdict_and_plain_quotes_are_plausible():
    u = utterance("meld/x", "I hate you so much!", "angry")
    thin = fit_relevance([u], {u.id: profile(u.id, loudness=1.5)})
    loud = profile(u.id, loudness=1.5)
    voice_only = generation(u, [("acoustic", "louder than usual", "anger")], "Louder than usual: anger.")
    assert check_relevance(voice_only, check_input(u, loud, relevance=thin)).applicable is False
    # A sentence said with one emotion: its quote is plausible (no lexicon can verify it; the judge can).
    quote = generation(u, [("lexical", "I hate you", "anger")], "Saying I hate you: anger.")
    assert check_relevance(quote, check_input(u, loud, relevance=thin)).passed


def test_evidence_plan_offers_what_supports_the_label(ravdess):
    angry = clip("ravdess/a", "angry")
    cues = profile(angry.id, loudness=2.3, pitch_level=-1.4, pitch_range=1.2, pauses=1.1).cues
    plan = plan_evidence(angry, cues, ravdess, PlanMode.supporting)
    # Most telling first; the contradicting (lower pitch) and neutral (pauses) cues are not offered.
    assert [c.measure for c in plan.cues] == [Measure.loudness, Measure.pitch_range]
    assert not plan.quote_words and len(plan.sentence.emotions) == 8
    everything = plan_evidence(angry, cues, ravdess, PlanMode.all)
    assert [c.measure for c in everything.cues] == [
        Measure.loudness,
        Measure.pitch_range,
        Measure.pauses,
        Measure.pitch_level,
    ]
    off = plan_evidence(angry, cues, ravdess, PlanMode.off)
    assert off.cues == list(cues) and off.quote_words
    nothing = plan_evidence(angry, profile(angry.id, loudness=-1.5).cues, ravdess)
    assert nothing.empty and "no measured cue supports it" in nothing.why_empty("angry")
