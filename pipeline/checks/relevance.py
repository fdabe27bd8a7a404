"""Relevance: the cited evidence points toward the concluded emotion.

Each evidence item is read against the run's relevance table (:mod:`pipeline.relevance`, fitted
on the training split's speaker-normalised profiles):

- an **acoustic** item names a measured cue (its phrase, or a claim about a measure as the
  acoustic check reads it); the cue's direction is the profile's (the sign of z) and the table
  says whether utterances of the gold emotion typically deviate that way (*supports*), the other
  way (*contradicts*), not at all (*neutral*), or whether too few were measured to tell (*unknown*);
- a **lexical** item quoting a sentence that the corpus speaks with several emotions bears on no
  emotion: it fails. A quote of any other sentence is *plausible*: no licensed lexicon can verify
  it (see pipeline.relevance), the judge check can;
- a **contextual** item is plausible.

The check fails when an acoustic item contradicts the emotion, when a lexical item quotes a
multi-emotion sentence, or when no item supports the emotion (plausible items count as support).
Items the table cannot judge (unknown) draw no verdict; an answer with nothing but those is n/a.
Reasons name the cue, its z and the emotion's typical deviation. Not applicable without a table.
"""

from __future__ import annotations

from enum import StrEnum

from pipeline.checks.acoustic_claims import find_claims
from pipeline.checks.base import CheckInput, Problem, clip, not_applicable, verdict_of
from pipeline.checks.label import gold_emotion
from pipeline.checks.text import normalise
from pipeline.rationale import Evidence, EvidenceKind
from pipeline.records import AcousticCue, GenerationRecord, Measure
from pipeline.relevance import CueDirection, RelevanceTable, Stance
from pipeline.verdict import CheckName, CheckResult, CommonCode

NAME = CheckName.relevance


class Code(StrEnum):
    no_table = "no_table"  # n/a: the run has no relevance table
    nothing_judgeable = "nothing_judgeable"  # n/a: no evidence item the table can judge
    contradicting_cue = "contradicting_cue"  # an acoustic cue points away from the emotion
    multi_emotion_sentence = "multi_emotion_sentence"  # a quote of a sentence the corpus speaks with several emotions
    no_support = "no_support"  # no evidence item supports the emotion


def _cue_named(cue: str, cues: list[AcousticCue]) -> AcousticCue | None:
    said = f" {normalise(cue)} "
    return next((c for c in cues if (phrase := normalise(c.phrase)) and f" {phrase} " in said), None)


def _acoustic(item: Evidence, evidence: CheckInput, table: RelevanceTable, gold) -> list[tuple[Stance, str]]:
    """(stance, description) of each measure the item names."""
    profile = evidence.profile
    if profile is None:
        return []  # acoustic grounding fails it already
    found: list[tuple[Measure, int, float | None, str]] = []
    named = _cue_named(item.cue, profile.cues)
    if named is not None:
        found.append((named.measure, named.level.direction, named.z, named.phrase))
    else:
        for claim in find_claims(item.cue):
            if claim.negated:
                continue
            z = profile.z_of(claim.measure)
            # The measured direction decides (acoustic grounding checks that the claim agrees with it).
            sign = (1 if z > 0 else -1 if z < 0 else 0) if z is not None else claim.direction
            found.append((claim.measure, sign, z, claim.phrase))
    out = []
    for measure, sign, z, phrase in found:
        stance, cell = table.stance(gold, measure, sign)
        z_text = f"z={z:+.2f}" if z is not None else "z unmeasured"
        out.append((stance, f"{phrase!r} ({measure.value} {z_text}) {_typical(stance, cell, gold)}"))
    return out


def _typical(stance: Stance, cell: CueDirection | None, gold) -> str:
    if cell is None or cell.direction is None:
        return f"cannot be judged for {gold.value}: too few utterances (n={cell.n if cell else 0})"
    verb = {
        Stance.supports: "supports",
        Stance.contradicts: "contradicts",
        Stance.neutral: "does not bear on",
    }[stance]
    if cell.disputed:
        return f"does not bear on {gold.value}: this corpus's direction contradicts the literature ({cell.describe()})"
    way = "higher" if cell.direction > 0 else "lower" if cell.direction < 0 else "no different"
    return f"{verb} {gold.value}: typically {way} ({cell.describe()})"


def check_relevance(record: GenerationRecord, evidence: CheckInput) -> CheckResult:
    answer = record.answer
    if answer is None:
        return not_applicable(NAME, CommonCode.no_answer, "no answer")
    table = evidence.relevance
    if table is None:
        return not_applicable(NAME, Code.no_table, "no relevance table")
    gold = gold_emotion(record, evidence.protocol)
    problems: list[Problem] = []
    supported, judged = False, False
    sentence = table.sentence(evidence.utterance.transcript if evidence.utterance is not None else None)
    neutral: list[str] = []
    for item in answer.evidence:
        if item.kind == EvidenceKind.acoustic:
            for stance, text in _acoustic(item, evidence, table, gold):
                judged |= stance is not Stance.unknown
                if stance is Stance.contradicts:
                    problems.append(Problem(Code.contradicting_cue, f"acoustic cue {text}"))
                elif stance is Stance.supports:
                    supported = True
                elif stance is Stance.neutral:
                    neutral.append(text)
        elif item.kind == EvidenceKind.lexical and sentence is not None:
            judged = True
            detail = (
                f"quotes {clip(item.cue)!r} of a sentence this corpus speaks with {len(sentence.emotions)} emotions "
                f"({sentence.utterances} utterances): its words do not bear on {gold.value}"
            )
            problems.append(Problem(Code.multi_emotion_sentence, detail))
        else:
            judged = supported = True  # a plausible quote (see the module doc)
    if not judged:
        return not_applicable(NAME, Code.nothing_judgeable, "no evidence the relevance table can judge")
    if not supported and not problems:
        detail = "; ".join(neutral) if neutral else "no acoustic evidence the table can judge"
        problems.append(Problem(Code.no_support, f"no evidence supports {gold.value}: {detail}"))
    return verdict_of(NAME, problems)
