"""Emotion and sentiment labels: one canonical vocabulary, explicit per-dataset tables, protocols.

Every dataset spells its labels its own way (IEMOCAP ``exc``, MELD ``joy``, RAVDESS code ``03``).
Adapters translate a raw label through the dataset's table into a canonical :class:`Emotion`,
then a :class:`Protocol` decides which canonical labels an evaluation uses and which merge
(EmoBox folds *excited* into *happy*). A raw label missing from a table is an error that names
the value and the dataset; a known label outside the protocol is excluded with a reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


class Emotion(str, Enum):
    neutral = "neutral"
    calm = "calm"
    happy = "happy"
    excited = "excited"
    sad = "sad"
    angry = "angry"
    frustrated = "frustrated"
    fearful = "fearful"
    disgusted = "disgusted"
    surprised = "surprised"
    # Annotation outcomes that are not emotions; every protocol excludes them.
    other = "other"
    no_agreement = "no_agreement"


class Sentiment(str, Enum):
    positive = "positive"
    neutral = "neutral"
    negative = "negative"


class UnknownLabelError(ValueError):
    """A raw label that the dataset's table does not know."""

    def __init__(self, dataset: str, value: str, known: list[str]):
        self.dataset, self.value = dataset, value
        super().__init__(f"unknown {dataset} label {value!r}; known labels: {', '.join(sorted(known))}")


# Raw label -> canonical emotion, per dataset. Keys are matched case-insensitively after strip().
RAW_EMOTIONS: dict[str, dict[str, Emotion]] = {
    "iemocap": {
        "ang": Emotion.angry,
        "hap": Emotion.happy,
        "exc": Emotion.excited,
        "sad": Emotion.sad,
        "neu": Emotion.neutral,
        "fru": Emotion.frustrated,
        "sur": Emotion.surprised,
        "fea": Emotion.fearful,
        "dis": Emotion.disgusted,
        "oth": Emotion.other,
        "xxx": Emotion.no_agreement,
    },
    "meld": {
        "neutral": Emotion.neutral,
        "joy": Emotion.happy,
        "surprise": Emotion.surprised,
        "anger": Emotion.angry,
        "sadness": Emotion.sad,
        "disgust": Emotion.disgusted,
        "fear": Emotion.fearful,
    },
    # RAVDESS: the third field of the file name, and the words its labels.csv uses.
    "ravdess": {
        "01": Emotion.neutral,
        "02": Emotion.calm,
        "03": Emotion.happy,
        "04": Emotion.sad,
        "05": Emotion.angry,
        "06": Emotion.fearful,
        "07": Emotion.disgusted,
        "08": Emotion.surprised,
        "neutral": Emotion.neutral,
        "calm": Emotion.calm,
        "happy": Emotion.happy,
        "sad": Emotion.sad,
        "angry": Emotion.angry,
        "fearful": Emotion.fearful,
        "disgust": Emotion.disgusted,
        "surprised": Emotion.surprised,
    },
}

RAW_SENTIMENTS: dict[str, dict[str, Sentiment]] = {
    "meld": {"positive": Sentiment.positive, "neutral": Sentiment.neutral, "negative": Sentiment.negative},
}


def canonical_emotion(dataset: str, raw: str, table: dict[str, Emotion] | None = None) -> Emotion:
    """Translate one raw label; ``table`` overrides the built-in one (generic manifests)."""
    table = table if table is not None else RAW_EMOTIONS.get(dataset)
    if table is None:
        # Datasets without a table of their own must already use canonical names.
        table = {e.value: e for e in Emotion}
    key = raw.strip().lower()
    lowered = {k.lower(): v for k, v in table.items()}
    if key not in lowered:
        raise UnknownLabelError(dataset, raw, list(table))
    return lowered[key]


def canonical_sentiment(dataset: str, raw: str) -> Sentiment:
    table = RAW_SENTIMENTS.get(dataset, {s.value: s for s in Sentiment})
    key = raw.strip().lower()
    if key not in table:
        raise UnknownLabelError(dataset, raw, list(table))
    return table[key]


@dataclass(frozen=True)
class Protocol:
    """Which canonical labels an experiment uses, in prompt order, and which ones merge."""

    name: str
    labels: tuple[Emotion, ...]
    merge: dict[Emotion, Emotion] = field(default_factory=dict)

    def apply(self, emotion: Emotion) -> Emotion | None:
        """The label under this protocol, or None when the protocol excludes it."""
        emotion = self.merge.get(emotion, emotion)
        return emotion if emotion in self.labels else None

    def onto(self, emotion: Emotion) -> Emotion:
        """The gold label a model answering in this protocol is scored against: merged like
        :meth:`apply`, but kept when the protocol lacks it (a class the model cannot answer,
        so every such utterance counts as wrong instead of vanishing from the test set)."""
        return self.merge.get(emotion, emotion)

    @property
    def names(self) -> list[str]:
        return [e.value for e in self.labels]


E = Emotion
PROTOCOLS: dict[str, Protocol] = {
    p.name: p
    for p in (
        # EmoBox: four classes, excited merged into happy, leave-one-session-out.
        Protocol("iemocap4", (E.angry, E.happy, E.sad, E.neutral), {E.excited: E.happy}),
        # AudioBench: the seven labels its IEMOCAP prompt lists.
        Protocol(
            "iemocap7",
            (E.frustrated, E.angry, E.excited, E.neutral, E.happy, E.surprised, E.sad),
        ),
        Protocol("meld7", (E.neutral, E.happy, E.surprised, E.angry, E.sad, E.disgusted, E.fearful)),
        Protocol(
            "ravdess8",
            (E.neutral, E.calm, E.happy, E.sad, E.angry, E.fearful, E.disgusted, E.surprised),
        ),
        # Every emotion (the demo corpus, generic manifests).
        Protocol("all", tuple(e for e in Emotion if e not in (E.other, E.no_agreement))),
    )
}

DEFAULT_PROTOCOL = {"iemocap": "iemocap4", "meld": "meld7", "ravdess": "ravdess8"}


def protocol(name: str) -> Protocol:
    if name not in PROTOCOLS:
        raise ValueError(f"unknown label protocol {name!r}; choose one of {', '.join(PROTOCOLS)}")
    return PROTOCOLS[name]


# Words people (and teachers, and models) use for each emotion. Used to read a concluded emotion
# or a free-text answer back into the canonical vocabulary; a protocol's merge applies afterwards.
SYNONYMS: dict[str, Emotion] = {
    **{e.value: e for e in Emotion if e not in (E.other, E.no_agreement)},
    "neutrality": E.neutral,
    "indifferent": E.neutral,
    "matter-of-fact": E.neutral,
    "calmness": E.calm,
    "relaxed": E.calm,
    "serene": E.calm,
    "peaceful": E.calm,
    "happiness": E.happy,
    "joy": E.happy,
    "joyful": E.happy,
    "glad": E.happy,
    "cheerful": E.happy,
    "delighted": E.happy,
    "pleased": E.happy,
    "content": E.happy,
    "excitement": E.excited,
    "enthusiastic": E.excited,
    "thrilled": E.excited,
    "elated": E.excited,
    "sadness": E.sad,
    "unhappy": E.sad,
    "sorrow": E.sad,
    "sorrowful": E.sad,
    "depressed": E.sad,
    "melancholy": E.sad,
    "grief": E.sad,
    "upset": E.sad,
    "anger": E.angry,
    "furious": E.angry,
    "mad": E.angry,
    "rage": E.angry,
    "enraged": E.angry,
    "irate": E.angry,
    "hostile": E.angry,
    "frustration": E.frustrated,
    "annoyed": E.frustrated,
    "irritated": E.frustrated,
    "exasperated": E.frustrated,
    "fear": E.fearful,
    "afraid": E.fearful,
    "scared": E.fearful,
    "frightened": E.fearful,
    "anxious": E.fearful,
    "terrified": E.fearful,
    "nervous": E.fearful,
    "disgust": E.disgusted,
    "revulsion": E.disgusted,
    "repulsed": E.disgusted,
    "grossed out": E.disgusted,
    "surprise": E.surprised,
    "astonished": E.surprised,
    "amazed": E.surprised,
    "shocked": E.surprised,
    "startled": E.surprised,
}


def emotion_from_word(word: str, proto: Protocol | None = None) -> Emotion | None:
    """A canonical emotion for one word or short phrase, merged under ``proto`` if given."""
    found = SYNONYMS.get(word.strip().strip(".!?,;:\"'").lower())
    if found is None or proto is None:
        return found
    return proto.apply(found)
