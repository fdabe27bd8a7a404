"""Reasoning quality of a set of verified records, in the paper's terms.

The paper (Zhang et al., 2025) had an LLM judge rate its model's rationales on three axes:
*Quotation* (does the answer quote the transcript), *Groundedness* (is the quote faithful, 0–2)
and *Relevance* (does the quote support the label, 0–2). Stage two verifies the same things
deterministically for every row, so here they are read off the checks instead of asked of a judge:

- **Quotation rate**: share of all answers with at least one verified transcript quote. An
  answer whose quote_grounding check passed quotes faithfully; when it failed, the answer
  still counts if one of its lexical quotes is found in the transcript (``quote_matcher``).
- **Groundedness**: among answers that quote at all, the share whose quotes are *all* faithful
  (quote_grounding passed). The 0–2 view: 2 all quotes grounded, 1 some, 0 none.
- **Relevance**: share of all answers whose evidence supports the gold label. When the judge
  check ran, the judge's 0–2 score is the paper's measure and is used as it is. Otherwise the
  relevance check measures it (pipeline.checks.relevance: the cited cues point toward the label
  in the run's relevance table, no quote of a sentence spoken with several emotions): 2 when it
  passed and every piece of evidence is verified (quote, acoustic and context grounding), 1 when
  the label was kept and evidence given but the check could not judge it (n/a, or rows verified
  before the check existed) or some grounding failed, 0 when it failed, the label check failed
  or there is no evidence. ``relevance`` is the share scoring 2, over the answers whose relevance
  was measured (``n_relevance``: the check applied, or the judge rated it); none measured: no figure. (Read off the label check
  alone, as before the relevance check, the 135M teacher's RAVDESS run scored 90 % where a hand
  audit found 4 of 40 relevant.)
- **Acoustic grounding rate** (ours): among answers that cite the voice, the share whose
  acoustic claims all agree with the measured profile.

Percent scores on the 0–2 scales are mean score / 2 × 100, as the paper reports them. The report
is a function of verified records only, so evaluation reuses it for a model's own answers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from pydantic import BaseModel, ConfigDict

from pipeline.checks.registry import GROUNDING_OF_KIND
from pipeline.normalise import contains_quote
from pipeline.rationale import EvidenceKind
from pipeline.records import VerifiedRecord
from pipeline.verdict import CheckName, CheckResult

# The paper's judged numbers for its own model (percent), shown beside ours in reports.
PAPER_REFERENCE = {"quotation_rate": 57.5, "groundedness_score": 82.8, "relevance_score": 65.3}


QuoteMatcher = Callable[[str, str], bool]


def quote_in_transcript(quote: str, transcript: str) -> bool:
    """Default matcher: the quote's word content occurs in the transcript's (pipeline.normalise,
    as the quote check reads quotes, without its fuzzy tolerance)."""
    return contains_quote(quote, transcript)


def find_check(record: VerifiedRecord, name: CheckName) -> CheckResult | None:
    return next((c for c in record.checks if c.name == name), None)


def applies(check: CheckResult | None) -> bool:
    """A check that ran: missing checks and passes that did not apply do not count either way."""
    return check is not None and check.applicable


class RecordQuality(BaseModel):
    """Per-answer view; the report averages these."""

    model_config = ConfigDict(frozen=True)

    record_id: str
    parsed: bool
    n_quotes: int
    quote_score: int | None  # 0–2, None when the answer quotes nothing
    relevant: bool
    relevance_score: int  # 0–2
    relevance_measured: bool  # the relevance check applied, or the judge rated it
    cites_voice: bool
    voice_grounded: bool | None  # None when the answer cites no acoustic evidence


class QualityReport(BaseModel):
    """Reasoning-quality metrics over one set of answers. Rates are fractions in [0, 1]."""

    model_config = ConfigDict(frozen=True)

    n: int
    n_parsed: int
    n_quoting: int
    n_citing_voice: int
    n_relevance: int  # answers whose relevance was measured (relevance check applied, or judged)
    quotation_rate: float
    groundedness: float
    groundedness_score: float  # mean 0–2 score / 2, over quoting answers
    relevance: float  # share scoring 2, over the answers whose relevance was measured
    relevance_score: float  # mean 0–2 score / 2, over the same answers
    acoustic_evidence_rate: float
    acoustic_grounding_rate: float
    n_blind: int
    blind_agreement: float | None  # share of label-blind predictions equal to the gold label

    def rows(self) -> list[tuple[str, float | None, float | None, str]]:
        """(metric, ours %, paper %, basis) for tables; None where there is nothing to average."""

        def pct(value: float, basis: int) -> float | None:
            return round(100 * value, 1) if basis else None

        return [
            (
                "Quotation rate",
                pct(self.quotation_rate, self.n),
                PAPER_REFERENCE["quotation_rate"],
                f"{self.n} answers",
            ),
            (
                "Groundedness (all quotes faithful)",
                pct(self.groundedness, self.n_quoting),
                None,
                f"{self.n_quoting} quoting",
            ),
            (
                "Groundedness (0–2 scale)",
                pct(self.groundedness_score, self.n_quoting),
                PAPER_REFERENCE["groundedness_score"],
                f"{self.n_quoting} quoting",
            ),
            (
                "Relevance (evidence supports the label)",
                pct(self.relevance, self.n_relevance),
                None,
                f"{self.n_relevance} of {self.n} measured",
            ),
            (
                "Relevance (0–2 scale)",
                pct(self.relevance_score, self.n_relevance),
                PAPER_REFERENCE["relevance_score"],
                f"{self.n_relevance} of {self.n} measured",
            ),
            ("Acoustic evidence rate", pct(self.acoustic_evidence_rate, self.n), None, f"{self.n} answers"),
            (
                "Acoustic grounding rate",
                pct(self.acoustic_grounding_rate, self.n_citing_voice),
                None,
                f"{self.n_citing_voice} citing the voice",
            ),
            (
                "Label-blind agreement",
                pct(self.blind_agreement or 0.0, self.n_blind),
                None,
                f"{self.n_blind} blind answers",
            ),
        ]


def record_quality(record: VerifiedRecord, quote_matcher: QuoteMatcher = quote_in_transcript) -> RecordQuality:
    answer = record.answer
    evidence = answer.evidence if answer is not None else []
    quotes = [e.cue for e in evidence if e.kind == EvidenceKind.lexical]
    quote_check = find_check(record, CheckName.quote_grounding)

    quote_score: int | None = None
    if quotes:
        if quote_check is not None and quote_check.passed:
            quote_score = 2
        else:
            # The check failed: partial credit if some quote is still found. It never ran (a model's
            # answers scored without stage two): the matcher decides alone.
            found = sum(quote_matcher(q, record.transcript or "") for q in quotes)
            quote_score = 2 if quote_check is None and found == len(quotes) else 1 if found else 0

    grounding = [find_check(record, name) for name in GROUNDING_OF_KIND.values()]
    all_grounded = all(c is None or c.passed for c in grounding)
    label = find_check(record, CheckName.label)
    kept = bool(evidence) and label is not None and label.passed
    check = find_check(record, CheckName.relevance)
    judged = getattr(record, "judge_relevance", None)
    measured = judged is not None or answer is None or applies(check)  # no answer: nothing supports the label
    if judged is not None:
        relevance_score = judged  # the paper's own measure
    elif not kept or (check is not None and not check.passed):
        relevance_score = 0
    elif not applies(check):
        relevance_score = 1  # evidence given, support not verifiable here
    else:
        relevance_score = 2 if all_grounded else 1
    relevant = relevance_score == 2

    voice = [e for e in evidence if e.kind == EvidenceKind.acoustic]
    voice_check = find_check(record, CheckName.acoustic_grounding)
    voice_grounded = (voice_check is not None and voice_check.passed and applies(voice_check)) if voice else None
    return RecordQuality(
        record_id=record.id,
        parsed=answer is not None,
        n_quotes=len(quotes),
        quote_score=quote_score,
        relevant=relevant,
        relevance_score=relevance_score,
        relevance_measured=measured,
        cites_voice=bool(voice),
        voice_grounded=voice_grounded,
    )


def quality_report(
    records: Iterable[VerifiedRecord], quote_matcher: QuoteMatcher = quote_in_transcript
) -> QualityReport:
    """Reasoning-quality metrics of ``records`` (all of them: filter first to measure a subset)."""
    n = n_parsed = quoting = verified_quote = all_faithful = quote_points = 0
    relevant = relevance_points = n_relevance = voice = voice_ok = n_blind = blind_ok = 0
    for record in records:
        q = record_quality(record, quote_matcher)
        n += 1
        n_parsed += q.parsed
        if q.quote_score is not None:
            quoting += 1
            quote_points += q.quote_score
            verified_quote += q.quote_score >= 1
            all_faithful += q.quote_score == 2
        if q.relevance_measured:
            n_relevance += 1
            relevant += q.relevant
            relevance_points += q.relevance_score
        if q.cites_voice:
            voice += 1
            voice_ok += bool(q.voice_grounded)
        if record.blind_agrees is not None:
            n_blind += 1
            blind_ok += record.blind_agrees

    def share(count: float, total: int) -> float:
        return count / total if total else 0.0

    return QualityReport(
        n=n,
        n_parsed=n_parsed,
        n_quoting=quoting,
        n_citing_voice=voice,
        n_relevance=n_relevance,
        quotation_rate=share(verified_quote, n),
        groundedness=share(all_faithful, quoting),
        groundedness_score=share(quote_points / 2, quoting),
        relevance=share(relevant, n_relevance),
        relevance_score=share(relevance_points / 2, n_relevance),
        acoustic_evidence_rate=share(voice, n),
        acoustic_grounding_rate=share(voice_ok, voice),
        n_blind=n_blind,
        blind_agreement=share(blind_ok, n_blind) if n_blind else None,
    )
