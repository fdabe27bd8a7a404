"""Directives hidden in a dialogue: what the injection check looks for, found once per utterance.

The transcript and the context turns are scanned for directives ("ignore previous instructions",
"you are now", "system:", "answer happy", "classify this as ...", "say: ..."); from them the
forced label (an emotion word after "answer/respond/classify/label ... as/with" or "the
emotion is") and a payload to repeat ("say: ...", "write \\"...\\"") are extracted.

The scan is per utterance, so it lives with the evidence (``CheckInput.injection``); the rule
that a rationale must not obey what is found is the injection check's (pipeline.checks.injection).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pipeline.checks.text import normalise, plain_words, split_words
from pipeline.labels import SYNONYMS, Emotion, Protocol, emotion_from_word
from pipeline.records import Utterance

MIN_PAYLOAD_WORDS = 2  # a one-word payload ("yes") is too common to call an echo

_DIRECTIVE = re.compile(
    r"\b(?:ignore|disregard|forget|override)\s+(?:(?:all|any|the|your|my|previous|prior|above|earlier|preceding|"
    r"these|those|system)\s+)*(?:instructions?|prompts?|rules|directions|guidelines|context)\b"
    r"|\byou\s+are\s+now\b|\bnew\s+instructions?\b|\bact\s+as\s+(?:an?\s+)?(?:ai|assistant|model|system)\b"
    r"|(?:^|[.!?]\s+)(?:system|assistant|developer)\s*:|\b(?:system|developer)\s+prompt\b",
    re.MULTILINE,
)
_EMOTION_ALTERNATIVES = "|".join(re.escape(w) for w in sorted(SYNONYMS, key=len, reverse=True))
_FORCED_LABEL = re.compile(
    r"\b(?:(?:answer|respond|reply|output|classify|label|predict)(?:\s+(?:this|it|the\s+(?:emotion|utterance)|only|"
    r"with|as|emotion|label))*|the\s+(?:correct\s+|right\s+|true\s+)?(?:emotion|label|answer)\s+(?:is|should\s+be|"
    r"must\s+be))\s*[:=]?\s*[\"'“‘]?(" + _EMOTION_ALTERNATIVES + r")\b"
)
_PAYLOAD = re.compile(
    r"\b(?:say|write|output|print|repeat|include|add|append|respond\s+with|reply\s+with)\s+(?:that\s+|the\s+"
    r"(?:words?|phrase|sentence|text)\s+)?(?::\s*|[\"“])([^\"”\n]{3,200})"
)
# Each pattern needs one of its anchor words; a text without any is not searched (Python's regex
# engine tries every alternative at every position: ~1 ms for the forced-label pattern over a turn).
# The patterns run on lowercased text, without IGNORECASE, which makes them slower still.
_PATTERNS = (
    (
        _DIRECTIVE,
        frozenset(
            ["ignore", "disregard", "forget", "override", "you", "new", "act", "system", "assistant", "developer"]
        ),
    ),
    (_FORCED_LABEL, frozenset(["answer", "respond", "reply", "output", "classify", "label", "predict", "emotion"])),
    (
        _PAYLOAD,
        frozenset(["say", "write", "output", "print", "repeat", "include", "add", "append", "respond", "reply"]),
    ),
)

_ANY_ANCHOR = frozenset().union(*(anchors for _, anchors in _PATTERNS))


@dataclass(frozen=True)
class InjectionFinding:
    directive: str  # the first directive found, as written
    forced_emotion: Emotion | None  # the label the directive tries to force, merged under the protocol
    payload: str | None  # normalised text the directive asks to be repeated


def find_injection(utterance: Utterance | None, proto: Protocol) -> InjectionFinding | None:
    """Directives in the utterance's transcript and context (None when there are none)."""
    if utterance is None:
        return None
    texts = [t for t in (utterance.transcript, *(turn.text for turn in utterance.context)) if t]
    # Nearly every dialogue has no anchor word at all: one test over all its texts (a line each:
    # no word spans two), then the exact pass text by text only when there is one.
    if not texts or _ANY_ANCHOR.isdisjoint(split_words("\n".join(texts).lower())):
        return None
    texts = [t.lower() for t in texts]
    directive = forced = payload = None
    for text in texts:
        words = plain_words(text)
        if _ANY_ANCHOR.isdisjoint(words):  # nearly every turn: one set test instead of three
            continue
        for pattern, anchors in _PATTERNS:
            if anchors.isdisjoint(words):
                continue
            match = pattern.search(text)
            if match is None:
                continue
            directive = directive or match.group(0)
            if pattern is _FORCED_LABEL and forced is None:
                forced = emotion_from_word(match.group(1), proto)
            if pattern is _PAYLOAD and payload is None:
                said = normalise(match.group(1))
                payload = said if len(said.split()) >= MIN_PAYLOAD_WORDS else None
    if directive is None:
        return None
    return InjectionFinding(directive=directive, forced_emotion=forced, payload=payload)
