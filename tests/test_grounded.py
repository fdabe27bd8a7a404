"""Grounded decoding's per-utterance answer model: what it allows is exactly what stage two accepts."""

from __future__ import annotations

import json

import pytest
import xgrammar as xgr
from factories_generation import check_input, generation, profile, utterance
from pydantic import ValidationError
from test_llm_transformers import client, tiny_model  # noqa: F401 (fixtures)

from pipeline.acoustic.cues import PHRASES
from pipeline.checks.acoustic import check_acoustic
from pipeline.checks.context import check_context
from pipeline.checks.quotes import check_quotes
from pipeline.grounded import MAX_EVIDENCE, MAX_QUOTE_WORDS, MAX_REASONING_WORDS, grounded_answer_model, word_spans
from pipeline.labels import PROTOCOLS
from pipeline.rationale import RationaleAnswer
from pipeline.records import CueLevel

TRANSCRIPT = "Oh my God, you got the job? That's amazing!"
CONTEXT = [("Rachel", "I have news."), ("Rachel", "They called me back today.")]


def answer(evidence, reasoning="The speaker sounds thrilled by the news.", emotion="happy") -> str:
    return json.dumps(
        {
            "evidence": [{"kind": k, "cue": c, "suggests": "delight"} for k, c in evidence],
            "reasoning": reasoning,
            "emotion": emotion,
        }
    )


@pytest.fixture
def utt():
    return utterance("meld/dev/d1_u2", TRANSCRIPT, "happy", context=CONTEXT)


@pytest.fixture
def prof():
    return profile("meld/dev/d1_u2", loudness=1.4, speaking_rate=2.3, pitch_range=0.2)


@pytest.fixture
def model(utt, prof):
    return grounded_answer_model(
        transcript=utt.transcript, cues=prof.cues, context=utt.context, emotions=[utt.emotion.value]
    )


def test_word_spans_are_every_short_run_of_words_trimmed():
    spans = word_spans("Leave. Me alone, now!", max_words=2)
    assert spans == ["Leave", "Leave. Me", "Me", "Me alone", "alone", "alone, now", "now"]
    assert word_spans("a a a") == ["a", "a a", "a a a"]  # no repeats; only function words: all of them
    telling = word_spans("We need the chairs")
    assert "the" not in telling and "We" not in telling and {"need", "the chairs", "We need the chairs"} <= set(telling)
    assert word_spans("-- ... !") == []  # no words, no spans
    long = word_spans(" ".join(f"w{i}" for i in range(20)))
    assert max(len(s.split()) for s in long) == MAX_QUOTE_WORDS


def test_grounded_answers_are_general_answers(model):
    for evidence in (
        [("lexical", "you got the job"), ("acoustic", "louder than usual")],
        [("contextual", "called me back")],
    ):
        grounded = model.model_validate_json(answer(evidence))
        assert RationaleAnswer.model_validate_json(grounded.model_dump_json()).emotion == "happy"


@pytest.mark.parametrize(
    ("evidence", "reasoning", "emotion", "where"),
    [
        ([("lexical", "you got the promotion")], None, "happy", "cue"),  # fabricated quote
        ([("lexical", "<exact quote>")], None, "happy", "cue"),  # the placeholder the 135M model copied
        ([("acoustic", "high-pitched voice")], None, "happy", "cue"),  # an unlisted acoustic cue
        ([("acoustic", "a wider pitch range")], None, "happy", "cue"),  # pitch range was typical: no cue
        ([("contextual", "You got the job")], None, "happy", "cue"),  # the transcript is not an earlier turn
        ([("lexical", "amazing")], None, "angry", "emotion"),  # not the gold label
        ([("lexical", "amazing")], None, "It shows that the speaker is happy", "emotion"),
        ([("lexical", "amazing")], "The speaker sounds thrilled because", "happy", "reasoning"),  # open sentence
        ([("lexical", "amazing")], "Happy.", "happy", "reasoning"),  # too short to be a reason
        ([("lexical", "amazing")], "This...This...This is it.", "happy", "reasoning"),  # a punctuation loop
        ([("lexical", "amazing")], " ".join(["so"] * (MAX_REASONING_WORDS + 1)) + ".", "happy", "reasoning"),
        ([("lexical", "amazing")] * (MAX_EVIDENCE + 1), None, "happy", "evidence"),
        ([("lexical", "amazing")], None, "happy", "suggests"),  # see `suggests` below
    ],
)
def test_what_grounding_forbids(model, evidence, reasoning, emotion, where):
    text = answer(evidence, reasoning or "The speaker sounds thrilled by the news.", emotion)
    if where == "suggests":  # a run of initials, as the 135M model wrote until max_tokens
        text = text.replace('"delight"', '"J.R.S.V.S.S.S.S.S.S"')
    with pytest.raises(ValidationError) as info:
        model.model_validate_json(text)
    assert any(where in map(str, e["loc"]) for e in info.value.errors())


def test_kinds_without_anything_to_cite_are_left_out():
    plain = grounded_answer_model(transcript="Leave me alone.", cues=None, context=[], emotions=["angry"])
    assert plain.model_validate_json(answer([("lexical", "Leave me alone")], emotion="angry"))
    for kind in ("acoustic", "contextual"):
        with pytest.raises(ValidationError):
            plain.model_validate_json(answer([(kind, "Leave me alone")], emotion="angry"))
    with pytest.raises(ValueError, match="nothing to cite"):
        grounded_answer_model(transcript="...", cues=[], context=[], emotions=["angry"])
    with pytest.raises(ValueError, match="allowed emotion"):
        grounded_answer_model(transcript="Leave.", cues=None, context=[], emotions=[])


def test_label_blind_answers_may_conclude_any_protocol_label(utt):
    names = PROTOCOLS["meld7"].names
    blind = grounded_answer_model(transcript=utt.transcript, cues=None, context=utt.context, emotions=names)
    schema = blind.model_json_schema()
    assert schema["properties"]["emotion"]["enum"] == names
    assert blind.model_validate_json(answer([("lexical", "amazing")], emotion="surprised"))


def test_every_allowed_cue_passes_stage_two(utt, prof, model):
    """Lexical, acoustic and contextual cues the schema allows pass quote, acoustic and context grounding."""
    defs = model.model_json_schema()["$defs"]
    allowed = {d["properties"]["kind"]["const"]: d["properties"]["cue"]["enum"] for d in defs.values()}
    assert set(allowed) == {"lexical", "acoustic", "contextual"}
    assert allowed["acoustic"] == ["louder than usual", "speaking very fast"]
    evidence = check_input(utt, prof)
    for kind, cues in allowed.items():
        for cue in cues:
            rec = generation(utt, [(kind, cue, "it suggests delight")], "The speaker is delighted.")
            for check in (check_quotes, check_acoustic, check_context):
                result = check(rec, evidence)
                assert result.passed, (kind, cue, result.reason)


@pytest.mark.parametrize(("measure", "level"), [(m, lv) for m, levels in PHRASES.items() for lv in levels])
def test_every_cue_phrase_is_accepted_by_the_acoustic_check(measure, level):
    """Whatever cue the profile lists, citing it verbatim is an acoustic claim the check accepts."""
    z = {CueLevel.very_high: 2.2, CueLevel.high: 1.2, CueLevel.low: -1.2, CueLevel.very_low: -2.2}[level]
    prof = profile("ravdess/a01", **{measure.value: z})
    (cue,) = prof.cues
    utt = utterance("ravdess/a01", "Kids are talking by the door.", "angry", dataset="ravdess", protocol="ravdess8")
    rec = generation(utt, [("acoustic", cue.phrase, "it suggests the emotion")], "The voice shows it.")
    result = check_acoustic(rec, check_input(utt, prof))
    assert result.passed, (cue.phrase, result.reason)


def test_the_grammar_enforces_the_model(client, model):  # noqa: F811
    """The schema compiles with xgrammar and its grammar refuses what the model refuses."""
    good = answer([("lexical", "you got the job"), ("acoustic", "speaking very fast")])
    assert xgr.GrammarMatcher(client.grammar(model.model_json_schema())).accept_string(
        json.dumps(json.loads(good), separators=(", ", ": "))
    )
    for bad in (good.replace("you got the job", "you got the promotion"), good.replace("news.", "news")):
        assert not xgr.GrammarMatcher(client.grammar(model.model_json_schema())).accept_string(bad)


def test_framed_reasoning_grammar_is_what_xgrammar_enforces():
    """The transformers backend enforces the frame with xgrammar: its compiled grammar must accept
    exactly the framed sentences (xgrammar 0.2.9 compiled an optional group marked "?" loosely)."""
    import json
    import re

    import xgrammar as xgr

    from pipeline.grounded import ReasoningFrame
    from pipeline.records import AcousticCue, CueLevel, Measure

    cue = AcousticCue(measure=Measure.loudness, level=CueLevel.high, z=1.4, phrase="louder than usual")
    frame = ReasoningFrame(cues=("louder than usual", "a rougher, noisier voice than usual"), emotion="angry")
    schema = grounded_answer_model(transcript=None, cues=[cue], context=[], emotions=["angry"], frame=frame)
    compiler = xgr.GrammarCompiler(xgr.TokenizerInfo([chr(i) for i in range(32, 127)]))
    grammar = compiler.compile_json_schema(json.dumps(schema.model_json_schema()), any_whitespace=False)
    pattern = schema.model_json_schema()["properties"]["reasoning"]["pattern"]

    def accepts(reasoning: str) -> bool:
        answer = {"evidence": [{"kind": "acoustic", "cue": "louder than usual", "suggests": "anger"}]}
        matcher = xgr.GrammarMatcher(grammar)
        text = json.dumps(answer | {"reasoning": reasoning, "emotion": "angry"})
        return matcher.accept_string(text) and matcher.is_completed()

    for reasoning, ok in [
        ("Louder than usual points to anger.", True),
        ("Louder than usual and a rougher, noisier voice than usual suggest anger, as the voice strains.", True),
        ("Louder than usual is typical of anger's style when he is angry.", False),
        ("Louder than usual is typical of angered temper.", False),
        ("The kids by the door suggest anger.", False),
        ("Louder than usual points to sadness.", False),
    ]:
        assert accepts(reasoning) is ok and bool(re.fullmatch(pattern, reasoning)) is ok, reasoning
