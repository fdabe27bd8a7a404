"""Stage two: check every teacher candidate, keep every verdict, pick the best of n.

    for verified in verify(records, utterances, profiles, VerifyConfig()):
        ...

File to file (stage-one parquet in, verdicts parquet out) is :func:`pipeline.verify_file.verify_file`.

Records stream through in batches (whole utterance groups, ``batch_size`` records or a little
more), so memory does not grow with the corpus apart from the near-duplicate index (~300 bytes
per accepted record, see pipeline.checks.duplicates). Each record runs every check of
:data:`pipeline.checks.CHECK_NAMES`; a disabled check is recorded as ``n/a: disabled``, so the
check list of every row has the same names. ``accepted`` is true when every check passed;
``reasons`` lists every failed check as ``"check: detail"``.

Best-of-n: among an utterance's accepted candidates the one with the highest ``score`` is
``selected`` (ties: the lowest candidate index). The score rewards what makes a rationale
useful to train on (weights in :class:`ScoreWeights`): distinct verified evidence items (an
item listed twice counts once, and at most ``MAX_SCORED_EVIDENCE`` count, so padding does not
pay), the number of distinct evidence kinds beyond
the first, verified acoustic evidence (the voice is what the student must learn to hear), and a
reasoning length inside ``length_band`` (long enough to reason, short enough to be a target).
Selection is per (utterance, style), so each target style keeps its best candidate; the
candidates of one (utterance, style) must be adjacent in the input (stage one writes them so).
Rows of the label-blind style are inputs of the blind check (:func:`pipeline.verify_file.blind_answers`), not
rationales: they are not verified.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from operator import attrgetter

from pydantic import BaseModel, ConfigDict, Field, model_validator

from pipeline.checks import (
    CHECK_NAMES,
    CHECKS,
    DUPLICATE,
    OPTIONAL_CHECKS,
    CheckInput,
    CheckSettings,
    DuplicateIndex,
    JudgedRelevance,
    ProfileLike,
)
from pipeline.checks.base import failed, not_applicable, passed
from pipeline.checks.blind import blind_agrees
from pipeline.checks.text import plain_words
from pipeline.grounded import FRAMED_SCHEMA_VERSION
from pipeline.judge import JudgeConfig
from pipeline.labels import protocol as get_protocol
from pipeline.rationale import EvidenceKind
from pipeline.records import CheckResult, GenerationRecord, Utterance, VerifiedRecord
from pipeline.relevance import RelevanceSettings, RelevanceTable, fit_relevance
from pipeline.verify_stats import VerifyStats

BLIND_STYLE = "blind"  # stage one's label-blind style: its rows feed blind_consistency, they are not verified
MAX_SCORED_EVIDENCE = 4  # evidence beyond four items is padding, not better grounding
# Young-generation collections while verify() runs: CPython collects when the number of live
# young container objects has grown by its threshold (default 700). A batch keeps tens of such
# objects per record alive until its verdicts are consumed (records, evidence, check results,
# cached word sets), so at the default the collector walks them again and again: ~7-9 µs per
# record on this VM, ~0.1 µs with a threshold above a batch's growth. Nearly all garbage here
# is freed by reference counting; what is left for the collector is bounded by the batch size.
GC_YOUNG_OBJECTS_PER_RECORD = 64
_PASSED = attrgetter("passed")
GROUNDING_OF_KIND = {
    EvidenceKind.lexical: "quote_grounding",
    EvidenceKind.acoustic: "acoustic_grounding",
    EvidenceKind.contextual: "context_grounding",
}
_ACOUSTIC = EvidenceKind.acoustic  # an enum member read off its class costs ~170 ns per access (Python 3.11)
# A record's check results are a list in CHECK_NAMES order; these are positions in it.
_SCHEMA = CHECK_NAMES.index("schema")
_DUPLICATE = CHECK_NAMES.index(DUPLICATE)
_GROUNDING_AT = {kind: CHECK_NAMES.index(name) for kind, name in GROUNDING_OF_KIND.items()}
# The duplicate check's slot until the batch's index has run (never in a verdict).
_PENDING = CheckResult(name=DUPLICATE, passed=True, reason="pending")
_FRAMED = not_applicable(DUPLICATE, "framed reasoning, built from the utterance's own cues")
_VERIFIED_FIELDS = frozenset(VerifiedRecord.model_fields)


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

    checks: list[str] = Field(
        default_factory=lambda: [n for n in CHECK_NAMES if n not in OPTIONAL_CHECKS],
        description="checks that run; the others are recorded as 'n/a: disabled'",
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

    @model_validator(mode="after")
    def _known_checks(self) -> VerifyConfig:
        unknown = sorted(set(self.checks) - set(CHECK_NAMES))
        if unknown:
            raise ValueError(f"unknown check(s) {', '.join(unknown)}; known: {', '.join(CHECK_NAMES)}")
        return self

    def enabled(self, name: str) -> bool:
        if name == "blind_consistency":
            return self.blind
        if name == "judge":
            return self.judge
        return name in self.checks


def score(record: GenerationRecord, checks: Sequence[CheckResult], weights: ScoreWeights) -> float:
    """Best-of-n score of one candidate (see module doc); ``checks`` in :data:`CHECK_NAMES` order."""
    answer = record.answer
    if answer is None:
        return 0.0
    # Small teachers often list one item twice: (kind, cue as words) identifies an item.
    verified = {
        (item.kind, " ".join(item.cue.lower().split()))
        for item in answer.evidence
        if checks[_GROUNDING_AT[item.kind]].passed
    }
    kinds = {kind for kind, _ in verified}
    value = weights.verified_evidence * min(len(verified), MAX_SCORED_EVIDENCE)
    value += weights.evidence_kinds * max(len(kinds) - 1, 0)
    if _ACOUSTIC in kinds:
        value += weights.acoustic
    low, high = weights.length_band
    if low <= len(answer.reasoning.split()) <= high:
        value += weights.length
    return value


def _runner(name: str, disabled: Mapping[str, CheckResult]) -> Callable[[GenerationRecord, CheckInput], CheckResult]:
    """What fills the slot of check ``name``: the check, or a fixed result (disabled, or pending)."""
    fixed = disabled.get(name, _PENDING if name == DUPLICATE else None)
    if fixed is None:
        return CHECKS[name]
    return lambda record, evidence: fixed


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
        self.duplicates = DuplicateIndex(cfg.settings) if cfg.enabled(DUPLICATE) else None
        disabled = {name: not_applicable(name, "disabled") for name in CHECK_NAMES if not cfg.enabled(name)}
        # What runs at each position of CHECK_NAMES: the check, or the fixed result of a disabled one.
        # The duplicate check runs later, over the batch; its slot holds _PENDING until then.
        self.row = [_runner(name, disabled) for name in CHECK_NAMES]
        # A record without an answer: every check that reads one is n/a (schema says why), the rest as usual.
        self.no_answer = [
            disabled.get(name, _PENDING if name == DUPLICATE else not_applicable(name, "no answer"))
            for name in CHECK_NAMES
        ]
        self.unknown = [not_applicable(name, "unknown utterance") for name in CHECK_NAMES]

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

    def _run_checks(self, record: GenerationRecord, evidence: CheckInput) -> list[CheckResult]:
        """Every check's result, in CHECK_NAMES order."""
        if evidence.utterance is None:
            # Nothing to check against: a generation for an utterance the dataset does not have.
            results = list(self.unknown)
            results[_SCHEMA] = failed("schema", f"utterance {record.utterance_id!r} is not in the dataset")
            return results
        if record.answer is None or record.error:
            results = list(self.no_answer)
            results[_SCHEMA] = CHECKS["schema"](record, evidence)
            return results
        results = [check(record, evidence) for check in self.row]
        if record.schema_version == FRAMED_SCHEMA_VERSION and results[_DUPLICATE] is _PENDING:
            # A framed reasoning is built from this utterance's own measured cues (pipeline.grounded):
            # two clips with the same cues and label say the same true thing, not a copied loop.
            results[_DUPLICATE] = _FRAMED
        return results

    def batch(self, records: list[GenerationRecord]) -> Iterator[VerifiedRecord]:
        """Verdicts of one batch, built one at a time as they are consumed.

        Lazily, so a consumer that writes and drops each record frees it young instead of holding
        a batch of verdicts that the garbage collector would scan and promote.
        """
        inputs: dict[str, CheckInput] = {}
        evidences, results = [], []
        words: list[tuple[str, ...] | None] = []  # the reasoning's words, for the duplicate index
        for record in records:
            evidence = inputs.get(record.utterance_id)
            if evidence is None:
                evidence = inputs[record.utterance_id] = self._input(record.utterance_id, record)
            evidences.append(evidence)
            results.append(self._run_checks(record, evidence))
            if self.duplicates is not None:  # split by the checks just now: a cache hit
                words.append(plain_words(record.answer.reasoning) if record.answer is not None else None)
        # Whether every check so far passed: the duplicate index only indexes those records, and a
        # record is accepted when its duplicate check (added now, or already n/a) passes as well.
        passing = [all(map(_PASSED, checks)) for checks in results]
        self._duplicates(records, results, passing, words)
        weights = self.cfg.weights
        scores = [score(record, checks, weights) for record, checks in zip(records, results, strict=True)]
        accepted = [ok and checks[_DUPLICATE].passed for ok, checks in zip(passing, results, strict=True)]
        selected = _select(records, scores, accepted)
        self.stats.add_batch(records, results, accepted, selected, inputs)
        for i, record in enumerate(records):
            yield self._verdict(record, results[i], evidences[i], scores[i], i in selected, accepted[i])

    def _duplicates(
        self,
        records: list[GenerationRecord],
        results: list[list[CheckResult]],
        passing: list[bool],
        words: list[tuple[str, ...] | None],
    ) -> None:
        if self.duplicates is not None:
            rows = [i for i, r in enumerate(records) if r.answer is not None and results[i][_DUPLICATE] is _PENDING]
            if rows:
                copies = self.duplicates.check_batch(
                    [records[i].answer.reasoning for i in rows],
                    [records[i].id for i in rows],
                    [records[i].utterance_id for i in rows],
                    [passing[i] for i in rows],
                    [words[i] for i in rows],
                )
                for i, copied in zip(rows, copies, strict=True):
                    results[i][_DUPLICATE] = (
                        passed(DUPLICATE) if copied is None else failed(DUPLICATE, f"near-copy of {copied}")
                    )
            self.stats.duplicate_index_bytes = self.duplicates.nbytes()
        for checks in results:
            if checks[_DUPLICATE] is _PENDING:
                checks[_DUPLICATE] = not_applicable(DUPLICATE, "no answer")

    def _verdict(
        self,
        record: GenerationRecord,
        checks: list[CheckResult],
        evidence: CheckInput,
        value: float,
        selected: bool,
        accepted: bool,
    ) -> VerifiedRecord:
        blind_emotion = evidence.blind_emotion
        judged = evidence.judged.get(record.id) if evidence.judged is not None else None
        return _extend(
            record,
            accepted=accepted,
            reasons=[] if accepted else [f"{c.name}: {c.reason}" for c in checks if not c.passed],
            checks=checks,
            score=value,
            selected=selected,
            blind_emotion=blind_emotion,
            blind_agrees=(
                blind_agrees(blind_emotion, record, evidence.protocol) if blind_emotion is not None else None
            ),
            judge_relevance=judged.relevance if judged is not None else None,
        )


def _extend(record: GenerationRecord, **verdict: object) -> VerifiedRecord:
    """A VerifiedRecord from a validated GenerationRecord and verdict fields built by the checks.

    What ``model_construct`` does, without its per-field bookkeeping: on this VM that costs
    ~135 µs per record (validation ~55 µs, ``dict(record)`` alone ~58 µs), more than all the
    checks together. Every value here is already valid (tests/test_verify.py compares the
    result with a validated VerifiedRecord).
    """
    values = record.__dict__.copy()  # a C-level clone of the record's field table
    values.update(verdict)
    verified = VerifiedRecord.__new__(VerifiedRecord)
    object.__setattr__(verified, "__dict__", values)
    # Every field is set when the verdict is whole (the same set each time: copied, not rebuilt).
    fields = set(_VERIFIED_FIELDS) if len(values) == len(_VERIFIED_FIELDS) else set(values)
    object.__setattr__(verified, "__pydantic_fields_set__", fields)
    object.__setattr__(verified, "__pydantic_extra__", None)
    object.__setattr__(verified, "__pydantic_private__", None)
    return verified


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
    """Verify stage-one records, in order, streaming; ``stats`` (if given) is filled a batch at a time.

    ``relevance``: the run's relevance table; without one it is fitted here from ``utterances``
    and ``profiles`` (``cfg.relevance``), as ``emoreason data`` does. ``judged``: the judge's
    verdicts by record id (:func:`pipeline.judge_relevance.judge_relevance`), for ``cfg.judge``.
    """
    cfg = cfg or VerifyConfig()
    stats = stats if stats is not None else VerifyStats()
    if relevance is None and (cfg.enabled("relevance") or cfg.enabled("reasoning")):
        relevance = fit_relevance(utterances.values(), profiles, cfg.relevance)
    verifier = _Verifier(utterances, profiles, cfg, blind, stats, relevance, judged)
    rationales = (r for r in records if r.style != cfg.blind_style)  # blind answers are inputs, not rationales
    # What is alive now (the dataset, the profiles, imported modules) lives until the end: frozen, the
    # cyclic garbage collector stops re-scanning it on every full collection, which here cost more
    # per record than most checks (and grows with the dataset). Objects are still freed by
    # reference counting; a freeze the caller made is left in place. Young collections wait
    # for a batch's growth (GC_YOUNG_OBJECTS_PER_RECORD) for the same reason; the caller's thresholds
    # are restored after.
    frozen_before = gc.get_freeze_count()
    gc.freeze()
    threshold = gc.get_threshold()
    if threshold[0]:  # 0: the caller switched automatic collection off; leave it off
        gc.set_threshold(max(threshold[0], GC_YOUNG_OBJECTS_PER_RECORD * cfg.batch_size), *threshold[1:])
    try:
        for group in _groups(rationales, cfg.batch_size):
            yield from verifier.batch(group)
    finally:
        gc.set_threshold(*threshold)
        if not frozen_before:
            gc.unfreeze()
