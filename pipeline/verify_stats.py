"""Counts of one stage-two run: per check, failures and not-applicable; per dataset, acceptance."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain
from typing import TYPE_CHECKING

from pipeline.checks.base import NOT_APPLICABLE, shared_results
from pipeline.records import CheckResult, GenerationRecord, VerifiedRecord

if TYPE_CHECKING:
    from pipeline.checks.base import CheckInput


@dataclass
class VerifyStats:
    """Counts of one verify run: per check, failures and not-applicable; per dataset, acceptance."""

    records: int = 0
    accepted: int = 0
    selected: int = 0
    utterances: int = 0
    failed: Counter[str] = field(default_factory=Counter)
    not_applicable: Counter[str] = field(default_factory=Counter)
    by_dataset: dict[str, list[int]] = field(default_factory=dict)  # dataset -> [records, accepted]
    unknown_utterances: int = 0
    duplicate_index_bytes: int = 0  # memory of the near-duplicate index, the one state that grows

    def add(self, record: VerifiedRecord) -> None:
        """Count one verdict."""
        self.records += 1
        self.accepted += record.accepted
        self.selected += record.selected
        counts = self.by_dataset.setdefault(record.dataset, [0, 0])
        counts[0] += 1
        counts[1] += record.accepted
        self._count_checks([record.checks])

    def add_batch(
        self,
        records: Sequence[GenerationRecord],
        results: Sequence[Sequence[CheckResult]],
        accepted: Sequence[bool],
        selected: Collection[int],
        inputs: Mapping[str, CheckInput],
    ) -> None:
        """Count the verdicts of one batch of verify() before they are built: the same as ``add`` of each."""
        self.records += len(records)
        self.accepted += sum(accepted)
        self.selected += len(selected)
        self.utterances += len(inputs)
        self.unknown_utterances += sum(evidence.utterance is None for evidence in inputs.values())
        for record, ok in zip(records, accepted, strict=True):
            counts = self.by_dataset.get(record.dataset)
            if counts is None:
                counts = self.by_dataset[record.dataset] = [0, 0]
            counts[0] += 1
            counts[1] += ok
        self._count_checks(results, accepted)

    def _count_checks(self, results: Sequence[Sequence[CheckResult]], accepted: Sequence[bool] | None = None) -> None:
        """Failures and n/a results per check; ``accepted`` (if known) says which records have no failure.

        Passes and n/a results are shared objects (pipeline.checks.base.shared_results), so they
        are counted by identity at C speed; the others, failures, are looked at one by one, in
        the records that were not accepted (an accepted record passed every check).
        """
        shared = shared_results()
        counts = Counter(map(id, chain.from_iterable(results)))
        for key, count in counts.items():
            check = shared.get(key)
            if check is not None and check.reason.startswith(NOT_APPLICABLE):
                self.not_applicable[check.name] += count
        others = sum(counts[key] for key in counts.keys() - shared.keys())
        if not others:
            return
        rejected = results if accepted is None else [r for r, ok in zip(results, accepted, strict=True) if not ok]
        for checks in rejected:
            for check in checks:
                if id(check) not in shared:
                    others -= 1
                    self._count_one(check)
        if others and accepted is not None:  # a result built outside base's constructors, in an accepted record
            for checks, ok in zip(results, accepted, strict=True):
                if ok:
                    for check in checks:
                        if id(check) not in shared:
                            self._count_one(check)

    def _count_one(self, check: CheckResult) -> None:
        if not check.passed:
            self.failed[check.name] += 1
        elif check.reason and check.reason.startswith(NOT_APPLICABLE):  # a real pass has no reason
            self.not_applicable[check.name] += 1

    def to_dict(self) -> dict:
        return {
            "records": self.records,
            "accepted": self.accepted,
            "acceptance_rate": round(self.accepted / self.records, 4) if self.records else None,
            "selected": self.selected,
            "utterances": self.utterances,
            "unknown_utterances": self.unknown_utterances,
            "duplicate_index_bytes": self.duplicate_index_bytes,
            "failed": dict(self.failed.most_common()),
            "not_applicable": dict(self.not_applicable.most_common()),
            "by_dataset": {k: {"records": v[0], "accepted": v[1]} for k, v in sorted(self.by_dataset.items())},
        }

    def summary(self) -> str:
        lines = [
            f"{self.records} records, {self.accepted} accepted, {self.selected} selected ({self.utterances} utterances)"
        ]
        lines += [f"  {name:<20} failed {count}" for name, count in self.failed.most_common()]
        return "\n".join(lines)
