"""Context grounding: contextual evidence quotes a turn that exists in the dialogue context.

A ``contextual`` evidence item's cue is a quote of an earlier turn, optionally prefixed by its
speaker ("Monica: What?") or turn ("turn 3: ..."). It passes when the quote occurs in a previous
turn (normalised and fuzzy as in quote grounding), said by the named speaker if one is named;
a named turn number must exist. An utterance without context cannot support contextual
evidence. Not applicable when the rationale gives no contextual evidence.
"""

from __future__ import annotations

import re
from enum import StrEnum

from pipeline.checks.base import CheckInput, Problem, clip, failed, not_applicable, verdict_of
from pipeline.checks.text import quote_parts
from pipeline.rationale import EvidenceKind
from pipeline.records import GenerationRecord
from pipeline.verdict import CheckName, CheckResult, CommonCode

NAME = CheckName.context_grounding
_PREFIX = re.compile(r"^\s*(?:\(?turn\s*#?\s*(\d+)\)?|([^:\"“]{1,40}?))\s*:\s*(.+)$", re.IGNORECASE | re.DOTALL)


class Code(StrEnum):
    no_contextual_evidence = "no_contextual_evidence"  # n/a: the rationale cites no earlier turn
    no_previous_turns = "no_previous_turns"  # contextual evidence for an utterance without context
    no_such_turn = "no_such_turn"  # the cue names a turn number the dialogue does not have
    not_in_context = "not_in_context"  # the quote is in no previous turn
    other_speaker = "other_speaker"  # the quote is there, said by another speaker than the one named


def _ground(cue: str, evidence: CheckInput) -> Problem | None:
    """None when grounded, else why not."""
    turns = evidence.context
    similarity = evidence.settings.quote_similarity
    quote, turn_no, speaker = cue, None, None
    match = _PREFIX.match(cue) if ":" in cue else None
    if match:
        named_turn, named, rest = match.groups()
        if named_turn is not None:
            turn_no, quote = int(named_turn), rest
        elif named and any(named.strip().casefold() == s.casefold() for _, s, _ in turns):
            speaker, quote = named.strip().casefold(), rest
    if turn_no is not None and all(t != turn_no for t, _, _ in turns):
        return Problem(Code.no_such_turn, f"turn {turn_no} does not exist: {clip(cue)!r}")
    # Exact matches first: fuzzy alignment against every turn is the expensive path.
    parts = quote_parts(quote)  # normalised once for every turn
    hits = [(t, s) for t, s, text in turns if text.contains_parts(parts)]
    if not hits and similarity < 1.0:
        hits = [(t, s) for t, s, text in turns if text.contains_parts(parts, similarity)]
    if turn_no is not None:
        hits = [(t, s) for t, s in hits if t == turn_no]
    if not hits:
        return Problem(Code.not_in_context, f"not in any previous turn: {clip(cue)!r}")
    if speaker is not None and all(s.casefold() != speaker for _, s in hits):
        return Problem(Code.other_speaker, f"said by {hits[0][1]}, not {speaker}: {clip(cue)!r}")
    return None


def check_context(record: GenerationRecord, evidence: CheckInput) -> CheckResult:
    answer = record.answer
    if answer is None:
        return not_applicable(NAME, CommonCode.no_answer, "no answer")
    cues = [e.cue for e in answer.evidence if e.kind == EvidenceKind.contextual]
    if not cues:
        return not_applicable(NAME, Code.no_contextual_evidence, "no contextual evidence")
    if not evidence.context:
        return failed(NAME, Code.no_previous_turns, "contextual evidence but the utterance has no previous turns")
    return verdict_of(NAME, [p for p in (_ground(cue, evidence) for cue in cues) if p is not None])
