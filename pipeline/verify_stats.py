"""Counts of one stage-two run: per check, failures and not-applicable; per dataset, acceptance."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from pipeline.records import VerifiedRecord


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
        for check in record.checks:
            if not check.passed:
                self.failed[check.name.value] += 1
            elif not check.applicable:
                self.not_applicable[check.name.value] += 1

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
