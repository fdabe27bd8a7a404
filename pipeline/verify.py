"""Stage two: check every teacher candidate, keep every verdict, pick the best of n.

    for verified in verify(records, utterances, profiles, VerifyConfig()):
        ...

File to file (stage-one parquet in, verdicts parquet out) is :func:`pipeline.verify_file.verify_file`.

Records stream through in batches (whole utterance groups, ``batch_size`` records or a little
more), so memory does not grow with the corpus apart from the near-duplicate index (~300 bytes
per accepted record, see pipeline.checks.duplicates). Each record runs every check of the
registry (:data:`pipeline.checks.registry.REGISTRY`); a disabled check is recorded as not applicable
(code ``disabled``), so the check list of every row has the same names, in the same order.
``accepted`` is true when every check passed; ``reasons`` holds every failed check's reason
(check, code, detail: pipeline.verdict).

Best-of-n: among an utterance's accepted candidates the one with the highest ``score`` is
``selected`` (ties: the lowest candidate index). The score rewards what makes a rationale
useful to train on (weights in :class:`ScoreWeights`): distinct verified evidence items (an
item listed twice counts once, and at most ``MAX_SCORED_EVIDENCE`` count, so padding does not
pay), the number of distinct evidence kinds beyond
the first, verified acoustic evidence (the voice is what the student must learn to hear), and a
reasoning length inside ``length_band`` (long enough to reason, short enough to be a target).
Selection is per (utterance, style), so each target style keeps its best candidate; the
candidates of one (utterance, style) must be adjacent in the input (stage one writes them so).
Rows of the label-blind style are inputs of the blind check (:mod:`pipeline.label_blind`), not
rationales: they are not verified.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

from pydantic import BaseModel, ConfigDict, Field

from pipeline.checks import duplicates
from pipeline.checks.base import (
    CheckInput,
    CheckSettings,
    JudgedRelevance,
    ProfileLike,
    failed,
    not_applicable,
    passed,
)
from pipeline.checks.blind import blind_agrees
from pipeline.checks.duplicates import DuplicateIndex
from pipeline.checks.registry import CHECK_NAMES, CHECKS, GROUNDING_OF_KIND, OPTIONAL_CHECKS
from pipeline.checks.text import plain_words
from pipeline.grounded import FRAMED_SCHEMA_VERSION
from pipeline.judge import JudgeConfig
from pipeline.label_blind import BLIND_STYLE
from pipeline.labels import protocol as get_protocol
from pipeline.rationale import EvidenceKind
from pipeline.records import GenerationRecord, Utterance, VerifiedRecord
from pipeline.relevance import RelevanceSettings, RelevanceTable, fit_relevance
from pipeline.verdict import CheckName, CheckResult, CommonCode
from pipeline.verify_stats import VerifyStats

MAX_SCORED_EVIDENCE = 4  # evidence beyond four items is padding, not better grounding
Results = dict[CheckName, CheckResult]  # one record's results by check; verify stores them in CHECK_NAMES order


class ScoreWeights(BaseModel):
    """Best-of-n score weights (see module doc)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    verified_evidence: float = 1.0
    evidence_kinds: float = 0.5
    acoustic: float = 0.5
    length: float = 0.5
    length_band: tuple[int, int] = Field((20, 150), description="reasoning words that earn the length weight")


class VerifyConfig(BaseModel):
    """Stage two's configuration: which checks run, their thresholds, best-of-n."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    checks: list[CheckName] = Field(
        default_factory=lambda: [n for n in CHECK_NAMES if n not in OPTIONAL_CHECKS],
        description="checks that run; the others are recorded as not applicable (disabled)",
    )
    blind: bool = Field(False, description="run label-blind self-consistency (needs blind answers)")
    judge: bool = Field(False, description="run the LLM judge's Relevance check (pipeline.judge_relevance)")
    judge_with: JudgeConfig = Field(
        default_factory=JudgeConfig, description="the judge's LLM and prompt (those of `emoreason eval`)"
    )
    relevance: RelevanceSettings = Field(
        default_factory=RelevanceSettings, description="how the relevance table is fitted when none is given"
    )
    settings: CheckSettings = CheckSettings()
    weights: ScoreWeights = ScoreWeights()
    blind_style: str = Field(BLIND_STYLE, description="stage-one style of label-blind answers (not rationales)")
    batch_size: int = Field(2048, ge=1, description="records per batch; memory is proportional to it")

    def enabled(self, name: CheckName) -> bool:
        if name == CheckName.blind_consistency:
            return self.blind
        if name == CheckName.judge:
            return self.judge
        return name in self.checks


def score(record: GenerationRecord, checks: Mapping[CheckName, CheckResult], weights: ScoreWeights) -> float:
    """Best-of-n score of one candidate (see module doc)."""
    answer = record.answer
    if answer is None:
        return 0.0
    # Small teachers often list one item twice: (kind, cue as words) identifies an item.
    verified = {
        (item.kind, " ".join(item.cue.lower().split()))
        for item in answer.evidence
        if checks[GROUNDING_OF_KIND[item.kind]].passed
    }
    kinds = {kind for kind, _ in verified}
    value = weights.verified_evidence * min(len(verified), MAX_SCORED_EVIDENCE)
    value += weights.evidence_kinds * max(len(kinds) - 1, 0)
    if EvidenceKind.acoustic in kinds:
        value += weights.acoustic
    low, high = weights.length_band
    if low <= len(answer.reasoning.split()) <= high:
        value += weights.length
    return value


class _Verifier:
    """The per-batch work of verify(); holds the corpus-level duplicate index."""

    def __init__(
        self,
        utterances: Mapping[str, Utterance],
        profiles: Mapping[str, ProfileLike] | None,
        cfg: VerifyConfig,
        blind: Mapping[str, str] | None,
        stats: VerifyStats,
        relevance: RelevanceTable | None = None,
        judged: Mapping[str, JudgedRelevance] | None = None,
    ):
        self.utterances, self.profiles, self.cfg, self.blind, self.stats = utterances, profiles, cfg, blind, stats
        self.relevance, self.judged = relevance, judged
        self.duplicates = DuplicateIndex(cfg.settings) if cfg.enabled(CheckName.duplicate) else None

    def _input(self, utterance_id: str, record: GenerationRecord) -> CheckInput:
        utterance = self.utterances.get(utterance_id)
        proto = get_protocol(utterance.label_protocol if utterance is not None else record.label_protocol)
        return CheckInput(
            utterance=utterance,
            protocol=proto,
            profile=self.profiles.get(utterance_id) if self.profiles is not None else None,
            settings=self.cfg.settings,
            blind_emotion=self.blind.get(utterance_id) if self.blind is not None else None,
            blind_enabled=self.cfg.blind,
            relevance=self.relevance,
            judged=self.judged if self.cfg.judge else None,
        )

    def _run_checks(self, record: GenerationRecord, evidence: CheckInput) -> Results:
        """Every per-record check's result; the duplicate check is left out when it is still to run
        over the batch (:meth:`_duplicates`)."""
        schema = CHECKS[CheckName.schema](record, evidence)
        if evidence.utterance is None:  # nothing to check against: schema says so, nothing else applies
            results = {n: not_applicable(n, CommonCode.unknown_utterance, "unknown utterance") for n in CHECK_NAMES}
            return results | {CheckName.schema: schema}
        has_answer = record.answer is not None and not record.error
        if has_answer and not self.cfg.enabled(CheckName.schema):
            schema = not_applicable(CheckName.schema, CommonCode.disabled, "disabled")
        results = {CheckName.schema: schema}
        for name in CHECK_NAMES[1:]:
            if not self.cfg.enabled(name):
                results[name] = not_applicable(name, CommonCode.disabled, "disabled")
            elif name == CheckName.duplicate:
                if has_answer and record.schema_version == FRAMED_SCHEMA_VERSION:
                    # A framed reasoning is built from this utterance's own measured cues (pipeline.grounded):
                    # two clips with the same cues and label say the same true thing, not a copied loop.
                    detail = "framed reasoning, built from the utterance's own cues"
                    results[name] = not_applicable(name, duplicates.Code.framed, detail)
            elif not has_answer:  # schema says why; the other checks would only repeat it
                results[name] = not_applicable(name, CommonCode.no_answer, "no answer")
            else:
                results[name] = CHECKS[name](record, evidence)
        return results

    def batch(self, records: list[GenerationRecord]) -> Iterator[VerifiedRecord]:
        """Verdicts of one batch, in input order."""
        inputs: dict[str, CheckInput] = {}
        evidences, results = [], []
        for record in records:
            evidence = inputs.get(record.utterance_id)
            if evidence is None:
                evidence = inputs[record.utterance_id] = self._input(record.utterance_id, record)
            evidences.append(evidence)
            results.append(self._run_checks(record, evidence))
        self._duplicates(records, results)
        weights = self.cfg.weights
        scores = [score(record, checks, weights) for record, checks in zip(records, results, strict=True)]
        accepted = [all(c.passed for c in checks.values()) for checks in results]
        selected = _select(records, scores, accepted)
        self.stats.utterances += len(inputs)
        self.stats.unknown_utterances += sum(evidence.utterance is None for evidence in inputs.values())
        for i, record in enumerate(records):
            verdict = self._verdict(record, results[i], evidences[i], scores[i], i in selected, accepted[i])
            self.stats.add(verdict)
            yield verdict

    def _duplicates(self, records: list[GenerationRecord], results: list[Results]) -> None:
        """The duplicate check over the batch: records whose other checks all passed are indexed."""
        rows = [i for i, r in enumerate(records) if r.answer is not None and CheckName.duplicate not in results[i]]
        if self.duplicates is not None and rows:
            copies = self.duplicates.check_batch(
                [records[i].answer.reasoning for i in rows],
                [records[i].id for i in rows],
                [records[i].utterance_id for i in rows],
                [all(c.passed for c in results[i].values()) for i in rows],
                [plain_words(records[i].answer.reasoning) for i in rows],
            )
            for i, copied in zip(rows, copies, strict=True):
                results[i][CheckName.duplicate] = (
                    passed(CheckName.duplicate)
                    if copied is None
                    else failed(CheckName.duplicate, duplicates.Code.near_copy, f"near-copy of {copied}")
                )
        if self.duplicates is not None:
            self.stats.duplicate_index_bytes = self.duplicates.nbytes()
        for checks in results:
            if CheckName.duplicate not in checks:
                checks[CheckName.duplicate] = not_applicable(CheckName.duplicate, CommonCode.no_answer, "no answer")

    def _verdict(
        self,
        record: GenerationRecord,
        results: Results,
        evidence: CheckInput,
        value: float,
        selected: bool,
        accepted: bool,
    ) -> VerifiedRecord:
        checks = [results[name] for name in CHECK_NAMES]
        blind_emotion = evidence.blind_emotion
        judged = evidence.judged.get(record.id) if evidence.judged is not None else None
        return VerifiedRecord(
            **dict(record),
            accepted=accepted,
            reasons=[c.reason for c in checks if not c.passed],
            checks=checks,
            score=value,
            selected=selected,
            blind_emotion=blind_emotion,
            blind_agrees=(
                blind_agrees(blind_emotion, record, evidence.protocol) if blind_emotion is not None else None
            ),
            judge_relevance=judged.relevance if judged is not None else None,
        )


def _select(records: list[GenerationRecord], scores: list[float], accepted: list[bool]) -> set[int]:
    """Index of the best accepted candidate of each (utterance, style): highest score, then lowest candidate."""
    best: dict[str, int] = {}
    for i, record in enumerate(records):
        if not accepted[i]:
            continue
        key = (record.utterance_id, record.style)
        j = best.get(key)
        if j is None or (scores[i], -record.candidate) > (scores[j], -records[j].candidate):
            best[key] = i
    return set(best.values())


class Adjacency:
    """The rule best-of-n needs: the candidates of an (utterance, style) come one after another.

    Feed it every record's key in order; a key that comes back after another key raises.
    """

    __slots__ = ("_closed", "_current")

    def __init__(self) -> None:
        self._closed: set[int] = set()  # hashes of finished keys: ~70 bytes each instead of a tuple of two strings
        self._current: tuple[str, str] | None = None

    def starts(self, key: tuple[str, str]) -> bool:
        """Whether ``key`` begins a new run of candidates; ValueError when its run had ended."""
        if key == self._current:
            return False
        if hash(key) in self._closed:
            raise ValueError(
                f"candidates of utterance {key[0]!r} (style {key[1]!r}) are not adjacent in the input; best-of-n "
                "needs them together (sort the generations by utterance_id and style)"
            )
        if self._current is not None:
            self._closed.add(hash(self._current))
        self._current = key
        return True


def _groups(records: Iterable[GenerationRecord], batch_size: int) -> Iterator[list[GenerationRecord]]:
    """Batches of about ``batch_size`` records that never split the candidates of an (utterance, style)."""
    batch: list[GenerationRecord] = []
    adjacency = Adjacency()
    for record in records:
        if adjacency.starts((record.utterance_id, record.style)) and len(batch) >= batch_size:
            yield batch
            batch = []
        batch.append(record)
    if batch:
        yield batch


def verify(
    records: Iterable[GenerationRecord],
    utterances: Mapping[str, Utterance],
    profiles: Mapping[str, ProfileLike] | None = None,
    cfg: VerifyConfig | None = None,
    blind: Mapping[str, str] | None = None,
    stats: VerifyStats | None = None,
    relevance: RelevanceTable | None = None,
    judged: Mapping[str, JudgedRelevance] | None = None,
) -> Iterator[VerifiedRecord]:
    """Verify stage-one records, in order, streaming; ``stats`` (if given) counts each verdict yielded.

    ``relevance``: the run's relevance table; without one it is fitted here from ``utterances``
    and ``profiles`` (``cfg.relevance``), as ``emoreason data`` does. ``judged``: the judge's
    verdicts by record id (:func:`pipeline.judge_relevance.judge_relevance`), for ``cfg.judge``.
    """
    cfg = cfg or VerifyConfig()
    stats = stats if stats is not None else VerifyStats()
    if relevance is None and (cfg.enabled(CheckName.relevance) or cfg.enabled(CheckName.reasoning)):
        relevance = fit_relevance(utterances.values(), profiles, cfg.relevance)
    verifier = _Verifier(utterances, profiles, cfg, blind, stats, relevance, judged)
    rationales = (r for r in records if r.style != cfg.blind_style)  # blind answers are inputs, not rationales
    for group in _groups(rationales, cfg.batch_size):
        yield from verifier.batch(group)
