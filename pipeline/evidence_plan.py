"""Stage one's evidence plan: per utterance, which evidence the teacher is offered for its gold label.

    plan = plan_evidence(utterance, profile.cues, table, PlanMode.supporting)
    plan.cues          # the measured cues offered, those that support the label first
    plan.quote_words   # whether the transcript's words may be cited
    plan.empty         # nothing would support the label: no request is sent

A teacher cites what it is offered. Offered every measured cue, the 135M teacher cites a rough
voice for "neutral" and a fast rate for "sad"; offered the words of a sentence that the corpus
speaks with eight emotions, it quotes them as evidence. The plan reads the run's relevance table
(:mod:`pipeline.relevance`):

- ``supporting`` (the default): only the cues whose direction agrees with the gold label's typical
  deviation (and those the table cannot judge: too few utterances), most telling (largest |z|) first; no transcript words when the corpus speaks the
  sentence with several emotions. An utterance with nothing left gets no request: its rows say
  ``no_supporting_evidence`` (a rationale for it could not be relevant).
- ``all``: every measured cue, the supporting ones first, then the neutral and unknown ones, and
  the contradicting ones last; transcript words as in ``supporting``.
- ``off``: the profile's cues in measure order and the transcript's words, as before the plan.

Only a prompt that is given the gold label is planned: a label-blind prompt (the ``blind`` style)
must not learn the label from which cues it is offered.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

from pipeline.records import AcousticCue, Utterance
from pipeline.relevance import RelevanceTable, SentenceEmotions, Stance

# The order "all" offers cues in: what supports the label first, what contradicts it last.
_STANCE_ORDER = {Stance.supports: 0, Stance.neutral: 1, Stance.unknown: 1, Stance.contradicts: 2}


class PlanMode(str, Enum):
    supporting = "supporting"
    all = "all"
    off = "off"


@dataclass(frozen=True)
class EvidencePlan:
    cues: list[AcousticCue] | None  # None: the utterance has no acoustic profile
    quote_words: bool
    sentence: SentenceEmotions | None = None  # set when the corpus speaks the transcript with several emotions
    has_context: bool = False

    @property
    def empty(self) -> bool:
        return not self.cues and not self.quote_words and not self.has_context

    def why_empty(self, emotion: str) -> str:
        words = (
            f"its words are spoken with {len(self.sentence.emotions)} emotions in this corpus"
            if self.sentence is not None
            else "it has no transcript"
        )
        cues = "no measured cue supports it" if self.cues is not None else "it has no acoustic profile"
        return f"nothing supports {emotion}: {cues}, {words}, and it has no earlier turns"


def plan_evidence(
    utterance: Utterance,
    cues: Sequence[AcousticCue] | None,
    table: RelevanceTable | None,
    mode: PlanMode = PlanMode.supporting,
) -> EvidencePlan:
    """The evidence offered for ``utterance``'s gold label (see the module doc)."""
    has_context = bool(utterance.context)
    if mode is PlanMode.off or table is None:
        return EvidencePlan(list(cues) if cues is not None else None, bool(utterance.transcript), None, has_context)
    sentence = table.sentence(utterance.transcript)
    quote_words = bool(utterance.transcript) and sentence is None
    if cues is None:
        return EvidencePlan(None, quote_words, sentence, has_context)
    stances = {c.measure: table.stance(utterance.emotion, c.measure, c.level.direction)[0] for c in cues}
    if mode is PlanMode.supporting:
        # An unknown cell (too few utterances of the emotion) draws no verdict: its cue is offered.
        offered = [c for c in cues if stances[c.measure] in (Stance.supports, Stance.unknown)]
    else:
        offered = list(cues)
    offered.sort(key=lambda c: (_STANCE_ORDER[stances[c.measure]], -abs(c.z)))
    return EvidencePlan(offered, quote_words, sentence, has_context)
