"""Corpus -> per-task, length-grouped, resumable batches, decoded in DataLoader worker processes.

Layout of one optimizer step: the task scheduler picks a task; that task's ``TaskBatches`` hands
out the next *global* batch (indices sorted by length); the global batch is cut into
``world_size x accumulation`` contiguous micro-batches and each process takes its own. So one
process with accumulation 2 and two processes with accumulation 1 see exactly the same examples
per micro-batch, and a resumed run sees exactly the batches the interrupted one would have seen.

``TrainPlan`` is the DataLoader's ``batch_sampler``: index lists are produced in the main process
(cheap arithmetic) while workers decode audio ahead of the GPU. Because the loader runs ahead, the
plan keeps a snapshot of its state at the end of every step it has emitted; a checkpoint after
step ``k`` stores ``plan.snapshot(k)``, not the state of the look-ahead.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from model.schedule import TaskScheduler
from pipeline.audio import AudioError, load_audio
from pipeline.audio_roots import ROOTS_FILE, AudioRootError, AudioRoots, parse_overrides, read_roots, resolved
from pipeline.parquet import iter_records
from pipeline.records import Task, TrainingExample

# Columns a parquet file must have to be read as a corpus file (a folder may also hold rejects etc.).
_CORPUS_COLUMNS = {"task", "instruction", "target", "audio_path", "split"}


class CorpusError(ValueError):
    """The corpus is missing, empty or unusable; raised before training starts."""


def corpus_files(path: str | Path) -> list[Path]:
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise CorpusError(f"corpus not found: {path} (build one with `emoreason data`, or pass --corpus)")
    import pyarrow.parquet as pq

    files = [f for f in sorted(path.rglob("*.parquet")) if set(pq.read_schema(f).names) >= _CORPUS_COLUMNS]
    if not files:
        raise CorpusError(f"{path} holds no parquet file with TrainingExample rows (columns {sorted(_CORPUS_COLUMNS)})")
    return files


def _roots_of(file: Path, top: Path) -> AudioRoots:
    """The audio roots recorded nearest to ``file``: its folder, then each parent up to ``top``."""
    for folder in [file.parent, *file.parent.parents]:
        if (folder / ROOTS_FILE).is_file():
            return read_roots(folder)
        if folder == top:
            break
    return AudioRoots()


def load_corpus(path: str | Path, audio_root: Sequence[str] = ()) -> list[TrainingExample]:
    """Every example of a corpus, audio paths resolved against the recorded roots (or ``audio_root``
    values, ``[DATASET=]PATH``, for a dataset that lives elsewhere on this machine); every audio
    file must exist, so a moved dataset fails here, before training, naming the option."""
    path = Path(path)
    top = path if path.is_dir() else path.parent
    examples, datasets = [], set()
    per_file = []
    for f in corpus_files(path):
        rows = list(iter_records(f, TrainingExample))
        datasets.update(ex.dataset for ex in rows)
        per_file.append((f, rows))
    try:
        overrides = parse_overrides(audio_root, datasets)
        for f, rows in per_file:
            examples += resolved(rows, _roots_of(f, top), overrides, where=f)
    except AudioRootError as err:
        raise CorpusError(str(err)) from err
    ids = [e.id for e in examples]
    if len(set(ids)) != len(ids):
        raise CorpusError(f"{path}: duplicate example ids (the same file read twice?)")
    return examples


def split_by_task(
    examples: Sequence[TrainingExample], split: str, tasks: Sequence[Task] | None = None
) -> dict[Task, list[TrainingExample]]:
    out: dict[Task, list[TrainingExample]] = {}
    for ex in examples:
        if ex.split == split and (tasks is None or ex.task in tasks):
            out.setdefault(ex.task, []).append(ex)
    return {t: out[t] for t in Task if t in out}


class CorpusDataset(Dataset):
    """Examples of all tasks in one list; ``__getitem__`` decodes audio (runs in a worker process)."""

    def __init__(self, examples: Sequence[TrainingExample], item_type=None):
        self.examples = list(examples)
        self.item_type = item_type  # the collator's input type; None: model.collator.AudioExample

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, i: int):
        if self.item_type is None:
            from model.collator import AudioExample

            self.item_type = AudioExample
        ex = self.examples[i]
        try:
            waveform = load_audio(ex.audio_path, ex.start_s, ex.end_s)
        except AudioError as err:  # name the example: a bare decode error deep in a worker is hard to trace
            raise RuntimeError(f"example {ex.id}: {err.reason}: {err}") from err
        return self.item_type(example=ex, waveform=waveform)


def length_key(ex: TrainingExample) -> tuple[float, int]:
    """Sort key: audio duration first (the encoders' cost), then answer length (the decoder's padding)."""
    return (ex.duration_s if ex.duration_s is not None else 0.0, len(ex.target))


def padding_ratio(durations: Sequence[float]) -> float:
    """Share of a padded audio batch that is padding (each clip padded to the longest)."""
    d = np.asarray(durations, dtype=np.float64)
    return float(1.0 - d.sum() / (len(d) * d.max())) if len(d) and d.max() > 0 else 0.0


class TaskBatches:
    """Global batches of one task, epoch after epoch; position (epoch, cursor) is its state.

    With ``grouped``, each epoch is shuffled, cut into windows of ``group_batches`` batches, sorted
    by ``length_key`` inside each window, cut into batches and the batch order shuffled: similar
    lengths share a batch while the epoch stays random. The remainder that does not fill a batch is
    left out of that epoch (a different remainder each epoch).
    """

    def __init__(
        self,
        keys: Sequence[tuple[float, int]],
        batch_size: int,
        *,
        seed: int,
        salt: int = 0,
        grouped: bool = True,
        group_batches: int = 50,
    ):
        self.keys = list(keys)
        self.batch_size = batch_size
        self.seed, self.salt = seed, salt
        self.grouped, self.group_batches = grouped, group_batches
        self.epoch, self.cursor = 0, 0
        self._cache: tuple[int, list[np.ndarray]] | None = None

    def __len__(self) -> int:
        return len(self.keys) // self.batch_size

    def epoch_batches(self, epoch: int) -> list[np.ndarray]:
        if self._cache is not None and self._cache[0] == epoch:
            return self._cache[1]
        rng = np.random.default_rng([self.seed, self.salt, epoch])
        order = rng.permutation(len(self.keys))
        n = len(self) * self.batch_size
        order = order[:n]
        if self.grouped:
            window = self.batch_size * self.group_batches
            chunks = [order[i : i + window] for i in range(0, n, window)]
            order = np.concatenate([sorted(c, key=lambda j: self.keys[j]) for c in chunks]) if chunks else order
        # inside a batch: by length, so that contiguous micro-batches are length-homogeneous too
        batches = [
            np.array(sorted(order[i : i + self.batch_size], key=lambda j: (self.keys[j], j)))
            for i in range(0, n, self.batch_size)
        ]
        batches = [batches[i] for i in rng.permutation(len(batches))]
        self._cache = (epoch, batches)
        return batches

    def next(self) -> np.ndarray:
        batches = self.epoch_batches(self.epoch)
        batch = batches[self.cursor]
        self.cursor += 1
        if self.cursor == len(batches):
            self.epoch, self.cursor = self.epoch + 1, 0
        return batch

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "cursor": self.cursor}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.cursor = int(state["epoch"]), int(state["cursor"])


class TrainPlan:
    """The DataLoader's batch sampler: one index list per micro-batch of this process, step after step."""

    def __init__(
        self,
        scheduler: TaskScheduler,
        batches: dict[Task, TaskBatches],
        offsets: dict[Task, int],
        *,
        rank: int = 0,
        world_size: int = 1,
        accumulation: int = 1,
    ):
        self.scheduler, self.batches, self.offsets = scheduler, batches, offsets
        self.rank, self.world_size, self.accumulation = rank, world_size, accumulation
        self._snapshots: dict[int, dict] = {}
        self.audio_padding: dict[int, float] = {}  # step -> audio padding ratio of its global batch
        self.durations: dict[Task, np.ndarray] = {}

    def micro_batches(self, global_batch: np.ndarray) -> list[np.ndarray]:
        """This process's micro-batches of one global batch (contiguous chunks of the length-sorted batch)."""
        chunks = np.array_split(global_batch, self.world_size * self.accumulation)
        return [chunks[m * self.world_size + self.rank] for m in range(self.accumulation)]

    def __iter__(self) -> Iterator[list[int]]:
        while self.scheduler.step < self.scheduler.total_steps:
            step_index = self.scheduler.step
            step = self.scheduler.next()
            global_batch = self.batches[step.task].next()
            if step.task in self.durations:
                self.audio_padding[step_index] = padding_ratio(self.durations[step.task][global_batch])
            self._snapshots[step_index] = self.state_dict()
            for micro in self.micro_batches(global_batch):
                yield (micro + self.offsets[step.task]).tolist()

    def __len__(self) -> int:
        return (self.scheduler.total_steps - self.scheduler.step) * self.accumulation

    def state_dict(self) -> dict:
        return {
            "scheduler": self.scheduler.state_dict(),
            "batches": {t.value: b.state_dict() for t, b in self.batches.items()},
        }

    def load_state_dict(self, state: dict) -> None:
        self.scheduler.load_state_dict(state["scheduler"])
        for t, s in state["batches"].items():
            self.batches[Task(t)].load_state_dict(s)

    def snapshot(self, step_index: int) -> dict:
        """State after step ``step_index`` was emitted; forgets older snapshots."""
        for k in [k for k in self._snapshots if k < step_index]:
            del self._snapshots[k]
            self.audio_padding.pop(k, None)
        return self._snapshots[step_index]


def build_plan(
    by_task: dict[Task, list[TrainingExample]],
    scheduler_factory,
    *,
    global_batch_size: int,
    seed: int,
    grouped: bool,
    group_batches: int,
    rank: int,
    world_size: int,
    accumulation: int,
    item_type=None,
) -> tuple[CorpusDataset, TrainPlan]:
    """One dataset over all tasks (concatenated, with per-task offsets) and the plan that indexes it."""
    examples: list[TrainingExample] = []
    offsets: dict[Task, int] = {}
    batches: dict[Task, TaskBatches] = {}
    for salt, (task, exs) in enumerate(by_task.items()):
        offsets[task] = len(examples)
        examples.extend(exs)
        batches[task] = TaskBatches(
            [length_key(e) for e in exs],
            global_batch_size,
            seed=seed,
            salt=salt,
            grouped=grouped,
            group_batches=group_batches,
        )
    scheduler = scheduler_factory({t: len(b) for t, b in batches.items()})
    plan = TrainPlan(scheduler, batches, offsets, rank=rank, world_size=world_size, accumulation=accumulation)
    plan.durations = {t: np.array([e.duration_s or 0.0 for e in exs], dtype=np.float64) for t, exs in by_task.items()}
    return CorpusDataset(examples, item_type), plan


def eval_batches(n: int, micro_batch_size: int, keys: Sequence[tuple[float, int]], rank: int, world_size: int):
    """Fixed, length-sorted evaluation batches of ``n`` examples, dealt round-robin to processes."""
    order = sorted(range(n), key=lambda j: keys[j])
    batches = [order[i : i + micro_batch_size] for i in range(0, n, micro_batch_size)]
    return batches[rank::world_size]


def seeded_generator(seed: int) -> torch.Generator:
    """The DataLoader's own generator, so building a loader never draws from the global torch RNG."""
    g = torch.Generator()
    g.manual_seed(seed)
    return g
