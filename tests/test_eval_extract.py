"""Label extraction on a table of realistic free-text answers."""

from __future__ import annotations

import pytest

from model.eval.extract import Status, extract_label
from pipeline.labels import Emotion, protocol

E = Emotion
FINAL, SYN, AMB, NONE, REFUSAL = Status.final_line, Status.synonym, Status.ambiguous, Status.none, Status.refusal

# (answer, protocol, expected label, expected status, expected candidates or None = don't care)
CASES = [
    # the trained format: rationale then the label line
    (
        'The speaker says "Dogs are sitting by the door", which suggests nothing emotional. In the voice: '
        "much louder than usual, which suggests anger.\nEmotion: angry",
        "ravdess8",
        E.angry,
        FINAL,
        None,
    ),
    ("Emotion: sad", "ravdess8", E.sad, FINAL, (E.sad,)),
    ("**Emotion:** Fearful", "ravdess8", E.fearful, FINAL, None),
    ("Final answer - surprised!", "ravdess8", E.surprised, FINAL, None),
    # a label-only answer is its own label line; synonyms and case are read
    ("Angry.", "ravdess8", E.angry, FINAL, None),
    ("disgust", "ravdess8", E.disgusted, FINAL, None),
    ("Emotion: furious", "ravdess8", E.angry, FINAL, None),
    # protocol merges: excited is happy under iemocap4
    ("Emotion: excited", "iemocap4", E.happy, FINAL, None),
    ("Emotion: excited", "iemocap7", E.excited, FINAL, None),
    # the label line wins over emotions discussed before it
    (
        "At first it sounds sad, but the rising pitch points elsewhere.\nEmotion: happy",
        "ravdess8",
        E.happy,
        FINAL,
        None,
    ),
    # hedged conclusions with one dominant emotion
    ("The speaker is frustrated but mostly angry.", "iemocap7", E.angry, SYN, (E.frustrated, E.angry)),
    ("Emotion: frustrated but mostly angry", "iemocap7", E.angry, FINAL, (E.frustrated, E.angry)),
    ("She sounds more sad than angry about the news, I would say.", "ravdess8", E.sad, SYN, (E.sad,)),
    # under ravdess8 'frustrated' is outside the protocol; anger is the only label
    ("The speaker is frustrated but mostly angry.", "ravdess8", E.angry, SYN, (E.angry,)),
    ("Emotion: frustrated", "ravdess8", None, NONE, ()),
    # negation
    ("The speaker is not angry at all; the flat delivery suggests they are sad.", "ravdess8", E.sad, SYN, (E.sad,)),
    ("There is no sign of fear in the voice, which sounds calm and relaxed.", "ravdess8", E.calm, SYN, (E.calm,)),
    ("Rather than happy, the speaker sounds disgusted by the situation.", "ravdess8", E.disgusted, SYN, None),
    # several emotions, none dominant
    ("It could be sad or angry; the voice is loud but trembling.", "ravdess8", None, AMB, (E.sad, E.angry)),
    ("Emotion: sad or angry", "ravdess8", None, AMB, (E.sad, E.angry)),
    ("The speaker sounds happy and surprised at the same time, a delighted exclamation.", "ravdess8", None, AMB, None),
    # refusals
    ("I'm sorry, but I cannot determine the speaker's emotion from the audio.", "ravdess8", None, REFUSAL, ()),
    ("As an AI, I don't have the ability to listen to audio files.", "ravdess8", None, REFUSAL, ()),
    ("I can't tell whether the speaker is angry or sad from this clip.", "ravdess8", None, REFUSAL, (E.angry, E.sad)),
    # a refusal that still commits to one emotion counts as that emotion
    ("I cannot be certain, but the speaker seems happy.", "ravdess8", E.happy, SYN, None),
    # no label at all
    ("The speaker says kids are talking by the door.", "ravdess8", None, NONE, ()),
    ("", "ravdess8", None, NONE, ()),
    ("Hmm.", "ravdess8", None, NONE, ()),
    # an echo of the options is not an answer
    ("Choose one of neutral, calm, happy, sad, angry, fearful, disgusted, surprised.", "ravdess8", None, NONE, ()),
    (
        "Options: neutral, calm, happy, sad, angry, fearful, disgusted, surprised. The speaker sounds fearful.",
        "ravdess8",
        E.fearful,
        SYN,
        (E.fearful,),
    ),  # fmt: skip
    # other languages
    ("Emoción: enojado", "ravdess8", E.angry, FINAL, None),
    ("La voz suena muy triste.", "ravdess8", E.sad, SYN, None),
    ("Émotion : en colère", "ravdess8", E.angry, FINAL, None),
    ("Le locuteur n'est pas en colère, il est plutôt heureux.", "ravdess8", E.happy, SYN, (E.happy,)),
    ("Die Stimme klingt wütend.", "ravdess8", E.angry, SYN, None),
    ("情绪：生气", "ravdess8", E.angry, FINAL, None),
    ("说话人听起来很伤心。", "ravdess8", E.sad, SYN, None),
    ("说话人不开心，而是害怕。", "ravdess8", E.fearful, SYN, (E.fearful,)),
    # 'content' is too ambiguous in running text, fine in a label line
    ("The content of the sentence is neutral, and so is the voice.", "ravdess8", E.neutral, SYN, (E.neutral,)),
]


@pytest.mark.parametrize(("text", "proto", "label", "status", "candidates"), CASES)
def test_extraction_table(text, proto, label, status, candidates):
    got = extract_label(text, protocol(proto))
    assert (got.label, got.status) == (label, status), got
    if candidates is not None:
        assert got.candidates == candidates, got


def test_table_is_large_and_covers_every_status():
    assert len(CASES) >= 25
    assert {c[3] for c in CASES} == set(Status)


def test_outside_emotions_are_recorded_and_protocol_name_accepted():
    got = extract_label("Emotion: frustrated", "ravdess8")
    assert got.outside == (E.frustrated,) and got.label is None
    assert extract_label(None, "all").status is NONE
