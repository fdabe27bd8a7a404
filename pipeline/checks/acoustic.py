"""Acoustic grounding: every claim about the voice agrees with the measured profile.

Claims are read (see :mod:`pipeline.checks.acoustic_claims`) from the reasoning, from every
evidence item's ``suggests`` and from the cue of every ``acoustic`` evidence item. The profile
holds speaker-normalised z-scores (0 = this speaker's usual). The rule, with tolerance
``t = settings.acoustic_z_tolerance`` (0.5 SD by default: half a standard deviation of the
speaker's own variation, below which "higher than usual" is noise):

- a claim in direction d (+1 "high X", -1 "low X") passes when d·z(X) >= t; it *contradicts*
  the profile when d·z(X) <= 0 and is *unsupported* when 0 < d·z(X) < t; both fail;
- a negated claim ("not loud") fails only when d·z(X) >= t;
- when z is unavailable but the profile has a cue for X, the cue's level direction decides;
- a claim about a measure the profile lacks, or any claim with no profile at all (text-only
  data), fails as a claim about an unmeasured cue.

An acoustic evidence item must name a measured cue: either it quotes one of the profile's cue
phrases whole (as given to the teacher; a piece such as "voice" names nothing) or it makes at
least one claim, judged as above. Not
applicable when the rationale neither cites acoustic evidence nor makes an acoustic claim.
"""

from __future__ import annotations

from enum import StrEnum

from pipeline.checks.acoustic_claims import Claim, find_claims
from pipeline.checks.base import CheckInput, Problem, ProfileLike, clip, not_applicable, verdict_of
from pipeline.checks.text import normalise, suggests_text
from pipeline.rationale import EvidenceKind
from pipeline.records import GenerationRecord
from pipeline.verdict import CheckName, CheckResult, CommonCode

NAME = CheckName.acoustic_grounding


class Code(StrEnum):
    no_acoustic_claim = "no_acoustic_claim"  # n/a: neither acoustic evidence nor a claim about the voice
    no_profile = "no_profile"  # acoustic evidence for an utterance without an acoustic profile
    names_no_cue = "names_no_cue"  # an acoustic evidence item names no measured cue
    unmeasured = "unmeasured"  # a claim about a measure the profile lacks
    contradicts = "contradicts"  # a claim the measured profile contradicts
    unsupported = "unsupported"  # a claim in the measured direction, but within the tolerance


def judge(claim: Claim, profile: ProfileLike | None, tolerance: float) -> Problem | None:
    """None when the claim agrees with the profile, else why not."""
    said = f"'not {claim.phrase}'" if claim.negated else repr(claim.phrase)
    measure = claim.measure.value
    if profile is None:
        return Problem(Code.unmeasured, f"claim about unmeasured cue {said} (no acoustic profile)")
    z = profile.z_of(claim.measure)
    if z is None:
        cue = profile.cue_of(claim.measure)
        if cue is None:
            return Problem(Code.unmeasured, f"claim about unmeasured cue {said} ({measure} not measured)")
        agrees = cue.level.direction == claim.direction
        if agrees == claim.negated:
            return Problem(Code.contradicts, f"{said} contradicts the profile ({measure} {cue.level.value})")
        return None
    along = claim.direction * z
    contradiction = Problem(Code.contradicts, f"{said} contradicts the profile ({measure} z={z:+.2f})")
    if claim.negated:
        return contradiction if along >= tolerance else None
    if along <= 0:
        return contradiction
    if along < tolerance:
        needs = claim.direction * tolerance
        return Problem(Code.unsupported, f"{said} is not supported ({measure} z={z:+.2f}, needs {needs:+.2f})")
    return None


def _names_profile_cue(cue: str, profile: ProfileLike | None) -> bool:
    """Whether ``cue`` holds one of the profile's cue phrases whole, on word boundaries.

    A part of a phrase ("voice", "than usual") names nothing; a part that says something about
    the voice ("rougher voice") is read as a claim instead.
    """
    if profile is None or not profile.cues:
        return False
    said = f" {normalise(cue)} "
    return any((phrase := normalise(c.phrase)) and f" {phrase} " in said for c in profile.cues)


def check_acoustic(record: GenerationRecord, evidence: CheckInput) -> CheckResult:
    answer = record.answer
    if answer is None:
        return not_applicable(NAME, CommonCode.no_answer, "no answer")
    profile, tolerance = evidence.profile, evidence.settings.acoustic_z_tolerance
    problems: list[Problem] = []
    claims: list[Claim] = list(find_claims(answer.reasoning))
    acoustic_items = 0
    for item in answer.evidence:
        if item.kind == EvidenceKind.acoustic:
            acoustic_items += 1
            item_claims = find_claims(item.cue)
            if profile is not None and not item_claims and not _names_profile_cue(item.cue, profile):
                problems.append(
                    Problem(Code.names_no_cue, f"acoustic evidence names no measured cue: {clip(item.cue)!r}")
                )
            claims.extend(item_claims)
    # One line per field: clauses (and claims) never span two of them.
    claims.extend(find_claims(suggests_text(answer)))
    if not claims and not acoustic_items:
        return not_applicable(NAME, Code.no_acoustic_claim, "no acoustic evidence or claim")
    if acoustic_items and profile is None:
        problems.insert(0, Problem(Code.no_profile, "acoustic evidence but no acoustic profile"))
    seen: set[tuple] = set()
    for claim in claims:
        key = (claim.measure, claim.direction, claim.negated)
        if key in seen:
            continue
        seen.add(key)
        problem = judge(claim, profile, tolerance)
        if problem is not None:
            problems.append(problem)
    return verdict_of(NAME, problems)
