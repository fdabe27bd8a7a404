"""Speaker/session-independent splits and the leakage guard of the training corpora.

Policies, by dataset:
- IEMOCAP: leave-one-session-out. ``test_session`` names the held-out session (EmoBox runs five
  folds, one per session); ``dev_session`` optionally holds out another one for model selection.
  Without ``test_session`` the last session is the test fold, and the plan says so.
- Every other dataset: the adapter's ``split`` field (MELD official; RAVDESS by actor; the demo
  corpus by speaker), normalised to train/dev/test.

The guard is independent of how the plan was made: before an example is written to train or dev,
it refuses (raises :class:`LeakageError`) when the example's utterance, or the group it belongs to,
is in the test split. The group is the speaker, except for MELD: its official split separates
episodes, and the Friends main cast speaks in every split, so a speaker guard would refuse the
official protocol itself; there the guard checks utterances only (say ``guard="speaker"`` to
insist).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from pipeline.records import TrainingExample, Utterance

SPLITS = ("train", "dev", "test")
_ALIASES = {"validation": "dev", "valid": "dev", "val": "dev", "development": "dev", "eval": "test"}
GuardUnit = Literal["auto", "speaker", "dialogue", "utterance"]
# Datasets whose documented split is not speaker-independent; see the module docstring.
_UTTERANCE_GUARD = {"meld": "official split shares speakers across train/dev/test by design"}
_SESSION_DATASETS = frozenset({"iemocap"})


class LeakageError(RuntimeError):
    """A train/dev example whose utterance or speaker belongs to the test split."""


class SplitError(ValueError):
    """A split the plan cannot honour: unknown names, a missing session."""


def normalise_split(name: str) -> str:
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    if key not in SPLITS:
        raise SplitError(f"split {name!r} is not one of {', '.join(SPLITS)} (or validation/val)")
    return key


@dataclass(frozen=True)
class SplitPlan:
    assignment: dict[str, str]  # utterance id -> train/dev/test
    test_ids: frozenset[str]
    test_groups: frozenset[str]  # '<dataset>/<unit>/<value>' keys of the guard
    guard: dict[str, str]  # dataset -> guard unit
    notes: tuple[str, ...]  # how each dataset was split, for logs and the dataset card

    def split_of(self, utterance_id: str) -> str:
        return self.assignment[utterance_id]

    def check(self, example: TrainingExample, dialogue_id: str | None = None) -> None:
        """Raise LeakageError when a non-test example touches the test split."""
        what = f"{example.task.value} example {example.id!r}"
        self._check(what, example.split, example.utterance_id, example.dataset, example.speaker, dialogue_id)

    def check_utterances(self, utterances: Iterable[Utterance]) -> None:
        """The same guard on the utterances themselves, so that a split that would leak stops a run
        when the data set is loaded rather than when the corpora are cut, after generation."""
        for u in utterances:
            self._check(f"utterance {u.id!r}", self.assignment[u.id], u.id, u.dataset, u.speaker, u.dialogue_id)

    def _check(
        self, what: str, split: str, utterance_id: str, dataset: str, speaker: str, dialogue_id: str | None
    ) -> None:
        if split == "test":
            return
        if utterance_id in self.test_ids:
            raise LeakageError(
                f"refusing to write {what} to {split}: utterance {utterance_id!r} belongs to the test split"
            )
        unit = self.guard.get(dataset, "speaker")
        value = {"speaker": speaker, "dialogue": dialogue_id}.get(unit)
        if value is not None and _group(dataset, unit, value) in self.test_groups:
            raise LeakageError(
                f"refusing to write {what} to {split}: "
                f"{unit} {value!r} of {dataset} has utterances in the test split "
                "(splits must be speaker-independent; fix the split or choose another test fold)"
            )


def _group(dataset: str, unit: str, value: str) -> str:
    return f"{dataset}/{unit}/{value}"


def _guard_unit(dataset: str, requested: GuardUnit) -> str:
    if requested != "auto":
        return requested
    return "utterance" if dataset in _UTTERANCE_GUARD else "speaker"


def plan_splits(
    utterances: Iterable[Utterance],
    test_session: str | None = None,
    dev_session: str | None = None,
    guard: GuardUnit = "auto",
) -> SplitPlan:
    utterances = list(utterances)
    sessions: dict[str, set[str]] = defaultdict(set)
    for u in utterances:
        if u.dataset in _SESSION_DATASETS:
            if u.session is None:
                raise SplitError(f"{u.id}: {u.dataset} utterance without a session; cannot split leave-one-session-out")
            sessions[u.dataset].add(u.session)

    notes: list[str] = []
    held_out: dict[str, tuple[str, str | None]] = {}
    for dataset, names in sessions.items():
        test = test_session or sorted(names)[-1]
        for name in filter(None, (test, dev_session)):
            if name not in names:
                raise SplitError(f"{dataset}: session {name!r} not found; sessions: {', '.join(sorted(names))}")
        held_out[dataset] = (test, dev_session)
        notes.append(
            f"{dataset}: leave-one-session-out, test session {test}"
            + (f", dev session {dev_session}" if dev_session else "")
            + ("" if test_session else " (the last session; set test_session to choose a fold)")
        )

    assignment: dict[str, str] = {}
    for u in utterances:
        if u.dataset in held_out:
            test, dev = held_out[u.dataset]
            assignment[u.id] = "test" if u.session == test else "dev" if u.session == dev else "train"
        else:
            assignment[u.id] = normalise_split(u.split)
    for dataset in sorted({u.dataset for u in utterances} - set(held_out)):
        notes.append(f"{dataset}: the adapter's split field")

    units = {u.dataset: _guard_unit(u.dataset, guard) for u in utterances}
    for dataset, unit in sorted(units.items()):
        why = f" ({_UTTERANCE_GUARD[dataset]})" if dataset in _UTTERANCE_GUARD and unit == "utterance" else ""
        notes.append(f"{dataset}: leakage guard by {unit}{why}")
    test_ids, test_groups = set(), set()
    for u in utterances:
        if assignment[u.id] != "test":
            continue
        test_ids.add(u.id)
        value = {"speaker": u.speaker, "dialogue": u.dialogue_id}.get(units[u.dataset])
        if value is not None:
            test_groups.add(_group(u.dataset, units[u.dataset], value))
    return SplitPlan(
        assignment=assignment,
        test_ids=frozenset(test_ids),
        test_groups=frozenset(test_groups),
        guard=units,
        notes=tuple(notes),
    )
