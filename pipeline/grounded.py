"""Grounded decoding: a per-utterance answer model in which the teacher cannot fabricate evidence.

A small teacher given the general :class:`~pipeline.rationale.RationaleAnswer` schema copies the
format's placeholders, invents quotes and cues, and writes sentences into ``emotion``. Grounded
decoding sends, for each utterance, a pydantic model built with ``create_model`` whose JSON schema
leaves nothing to invent:

- a ``lexical`` cue is one of the transcript's word spans (``MAX_QUOTE_WORDS`` words at most);
- an ``acoustic`` cue is one of the utterance's measured cue phrases, exactly as the prompt lists
  them (``AcousticCue.phrase``, which stage two's acoustic check recognises);
- a ``contextual`` cue is a word span of one of the earlier turns shown to the teacher;
- ``emotion`` is the gold label's word (label-blind answers: one of the protocol's labels, so the
  schema never reveals the gold label);
- ``suggests`` and ``reasoning`` are a few plain words (the reasoning ends a sentence), far shorter
  than the general bounds, so a looping small model is stopped by the grammar, not by
  ``max_tokens``.

An evidence kind with nothing to cite (no audio, no earlier turn) is left out of the schema. Every
answer of a grounded model is also a valid general answer (its bounds are tighter), so stage one
parses it with the general model and stage two checks it unchanged: the constraint makes fabrication impossible, the checks verify.

Each request carries its own JSON schema, so this works with every backend that honours one
(transformers + xgrammar, vLLM guided JSON, OpenAI-compatible structured output).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, create_model

from pipeline.rationale import ANSWER_SCHEMA_VERSION
from pipeline.records import AcousticCue, ContextTurn
from pipeline.stopwords import STOPWORDS

# Bump when the constraints below change meaning. v2: 60-word reasoning; v3: the evidence plan
# (pipeline.evidence_plan) decides which cues and whether transcript words are offered.
GROUNDED_VERSION = "grounded-v3"
# Recorded as the rows' schema_version, so a grounded run is visible in every row's provenance.
GROUNDED_SCHEMA_VERSION = f"{ANSWER_SCHEMA_VERSION}+{GROUNDED_VERSION}"
# A framed answer (see ReasoningFrame) records this version: its reasoning has no word cap to reach.
FRAMED_SCHEMA_VERSION = f"{GROUNDED_SCHEMA_VERSION}+framed"
# Versions whose free reasoning the grammar closes at MAX_REASONING_WORDS (stage two's truncation rule).
CAPPED_SCHEMA_VERSIONS = frozenset({f"{ANSWER_SCHEMA_VERSION}+grounded-v2", GROUNDED_SCHEMA_VERSION})

# A quote long enough to carry a phrase ("I can't believe you did that"), short enough to stay one cue.
MAX_QUOTE_WORDS = 6
# The general schema allows 8; a small model fills every slot it is given, often with one cue twice.
MAX_EVIDENCE = 2
# Free text as words: each of letters, digits, apostrophes and hyphens, joined by a space or by one
# punctuation mark and a space. The grammar so bounds its length, never leaves a sentence open, and
# rules out the 135M model's runs of punctuation ("This...This", "J.R.S.S.S."). (xgrammar ignores
# maxLength next to a pattern, and bounded character classes compile slowly: hence word bounds.)
MAX_WORD_CHARS = 20  # "uncharacteristically"
_WORD = rf"[A-Za-z0-9'-]{{1,{MAX_WORD_CHARS}}}"
MAX_SUGGESTS_WORDS = 10  # one clause: "a raised voice suggests anger"
SUGGESTS_PATTERN = rf"^{_WORD}(?:,? {_WORD}){{0,{MAX_SUGGESTS_WORDS - 1}}}$"
# The reasoning: one to three sentences, ending in . ! or ? (~80 tokens for plain English words).
# Stage two rejects a reasoning that reaches the cap as truncated (the grammar closes it wherever
# it is), so the cap must sit above what a good rationale needs. At 30 (grounded-v1) the 135M
# teacher reached it in 63 % of the demo's answers and 62 % of RAVDESS's; at 60, 48 % on the demo,
# the rest ending by themselves (median 46 words).
MIN_REASONING_WORDS = 5
MAX_REASONING_WORDS = 60
REASONING_PATTERN = rf"^{_WORD}(?:[,;:.!?]? {_WORD}){{{MIN_REASONING_WORDS - 1},{MAX_REASONING_WORDS - 1}}}[.!?]$"

_CONFIG = ConfigDict(extra="forbid")

# A framed reasoning names the evidence, links it with one of these verbs, and concludes in one of
# the emotion's nouns ("Much louder than this speaker's usual and speaking fast points to anger.").
CONNECTORS = ("suggests", "suggest", "points to", "point to", "signals", "signal", "fits", "fit", "is typical of",
              "are typical of")  # fmt: skip
EMOTION_NOUNS: dict[str, tuple[str, ...]] = {
    "neutral": ("neutral speech", "a neutral state"),
    "calm": ("calm", "calmness"),
    "happy": ("happiness", "joy"),
    "excited": ("excitement",),
    "sad": ("sadness",),
    "angry": ("anger",),
    "frustrated": ("frustration",),
    "fearful": ("fear",),
    "disgusted": ("disgust",),
    "surprised": ("surprise",),
}
MAX_FRAME_CUES = 2  # "A and B suggest anger": a third cue reads as a list
MAX_FRAME_TAIL_WORDS = 10  # after the emotion: ", as the voice rises over the sentence"


class ReasoningFrame(BaseModel):
    """What a framed reasoning may say: a small teacher's free text invents scenes, listeners and
    reports, so its reasoning is built from the cues it was offered, a connector and the emotion.

    ``cues``: the phrases the reasoning may open with (the plan's cues or quotes, most telling
    first); ``emotion``: the gold label's value, concluded as one of ``EMOTION_NOUNS``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    cues: tuple[str, ...]
    emotion: str

    def nouns(self) -> tuple[str, ...]:
        return EMOTION_NOUNS.get(self.emotion, (self.emotion,))

    def reasoning_pattern(self) -> str:
        def alt(options) -> str:
            return "(?:" + "|".join(_literal(o) for o in options) + ")"

        first = alt(dict.fromkeys(c[:1].upper() + c[1:] for c in self.cues))
        more = rf"(?: and {alt(self.cues)}){{0,{MAX_FRAME_CUES - 1}}}"
        # {0,1}, not "?": xgrammar 0.2.9 lets a group ending in a bounded repeat match without its
        # first character when the group is marked "?" ("anger's style" for ", ..."); {0,1} compiles right.
        tail = rf"(?:, {_WORD}(?: {_WORD}){{0,{MAX_FRAME_TAIL_WORDS - 1}}}){{0,1}}"
        return rf"^{first}{more} {alt(CONNECTORS)} {alt(self.nouns())}{tail}\.$"

    def suggests_pattern(self) -> str:
        return "^(?:" + "|".join(_literal(n) for n in self.nouns()) + ")$"


def _literal(text: str) -> str:
    # re.escape also escapes spaces and commas, which some grammar compilers (xgrammar) reject.
    return _METACHARACTERS.sub(r"\\\g<0>", text)


_METACHARACTERS = re.compile(r"[.^$*+?()\[\]{}|\\]")


def word_spans(text: str, max_words: int = MAX_QUOTE_WORDS) -> list[str]:
    """Every run of 1..``max_words`` consecutive words of ``text`` worth quoting, in order, without repeats.

    Words are split on whitespace and keep their punctuation inside, but a span's leading and
    trailing punctuation is trimmed ("Thursday afternoon." -> "Thursday afternoon"): quote
    grounding compares word content, and a bare span is what a teacher would quote. Spans made
    only of function words ("the", "we", "it was") say nothing about an emotion and are left out,
    unless the text has nothing else.
    """
    words = text.split()
    spans: dict[str, bool] = {}  # span -> has a content word
    for start in range(len(words)):
        for end in range(start + 1, min(start + max_words, len(words)) + 1):
            span = " ".join(words[start:end]).strip(_EDGE_PUNCTUATION)
            if any(c.isalnum() for c in span):
                spans[span] = any(w.strip(_EDGE_PUNCTUATION).lower() not in STOPWORDS for w in span.split())
    telling = [span for span, content in spans.items() if content]
    return telling or list(spans)


_EDGE_PUNCTUATION = ".,;:!?\"'()[]{}-–—…“”‘’«» "


def _evidence_model(kind: str, cues: Sequence[str], suggests: str = SUGGESTS_PATTERN) -> type[BaseModel]:
    return create_model(
        f"{kind.capitalize()}Evidence",
        __config__=_CONFIG,
        kind=(Literal[kind], ...),
        cue=(Literal[tuple(cues)], ...),
        suggests=(str, Field(pattern=suggests)),
    )


def grounded_answer_model(
    *,
    transcript: str | None,
    cues: Sequence[AcousticCue] | None,
    context: Sequence[ContextTurn],
    emotions: Sequence[str],
    frame: ReasoningFrame | None = None,
) -> type[BaseModel]:
    """The answer model for one utterance (see the module doc).

    ``transcript`` is the text whose words may be quoted (None: no lexical evidence, e.g. a
    sentence the corpus speaks with several emotions); ``cues`` are the acoustic cues offered
    (None or empty: no acoustic evidence); ``context`` the earlier turns shown to the teacher;
    ``emotions`` the allowed conclusions (the gold label alone, or a protocol's labels for a
    label-blind answer). With a ``frame`` the reasoning and every ``suggests`` follow it.
    """
    if not emotions:
        raise ValueError("a grounded answer needs at least one allowed emotion")
    suggests = frame.suggests_pattern() if frame is not None else SUGGESTS_PATTERN
    kinds: list[type[BaseModel]] = []
    if transcript and (spans := word_spans(transcript)):
        kinds.append(_evidence_model("lexical", spans, suggests))
    if cues:
        kinds.append(_evidence_model("acoustic", list(dict.fromkeys(c.phrase for c in cues)), suggests))
    context_spans = list(dict.fromkeys(s for turn in context for s in word_spans(turn.text)))
    if context_spans:
        kinds.append(_evidence_model("contextual", context_spans, suggests))
    if not kinds:
        raise ValueError("nothing to cite: no transcript words, acoustic cues or earlier turns")
    item: Any = kinds[0] if len(kinds) == 1 else Union[tuple(kinds)]  # noqa: UP007 (a runtime tuple of types)
    reasoning = frame.reasoning_pattern() if frame is not None else REASONING_PATTERN
    return create_model(
        "GroundedAnswer",
        __config__=_CONFIG,
        evidence=(list[item], Field(min_length=1, max_length=MAX_EVIDENCE)),
        reasoning=(str, Field(pattern=reasoning)),
        emotion=(Literal[tuple(dict.fromkeys(emotions))], ...),
    )
