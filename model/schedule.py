"""Which task the next batch comes from, and which parameter groups train while it does.

The paper trains in *rounds*: a speech round (ASR, spoken QA) updates the speech encoder, its
adapter and the LoRA with the emotion branch frozen; an emotion round (emotion recognition,
emotion reasoning, sentiment) updates the emotion branch and the LoRA with the speech branch
frozen; a final joint round updates all adapters and the LoRA (and, unless
``final_joint_encoders: false`` as in the paper, the encoders too). ``TaskScheduler`` turns that recipe (or the joint
and weighted baselines) into a step-by-step sequence:

    scheduler = TaskScheduler(ScheduleConfig(mode="alternating"), batches_per_epoch, seed=0)
    step = scheduler.next()          # Step(task=Task.asr, trainable_groups={...}, round_index=0)
    state = scheduler.state_dict()   # a resumed run continues the same sequence

The whole sequence is a pure function of (config, batches per epoch, seed, step index), so the
state is just the step counter plus a fingerprint that refuses a resume on different data.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from pipeline.records import EMOTION_TASKS, SPEECH_TASKS, Task

SPEECH_GROUPS = frozenset({"speech_encoder", "speech_adapter", "lora"})
EMOTION_GROUPS = frozenset({"emotion_encoder", "emotion_adapter", "lora"})
ALL_GROUPS = SPEECH_GROUPS | EMOTION_GROUPS

RoundKind = Literal["speech", "emotion", "joint"]


class ScheduleConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mode: Literal["alternating", "joint", "weighted"] = "alternating"
    round_unit: Literal["epoch", "step"] = Field(
        "epoch", description="alternating: a round is `round_length` passes over its branch's data, or that many steps"
    )
    round_length: int = Field(1, ge=1, description="the paper's Alt-1ep = 1, Alt-4ep = 4 (in `round_unit`s)")
    first_round: Literal["speech", "emotion"] = "speech"
    final_joint_epochs: int = Field(1, ge=0, description="alternating: epochs of the final joint round (0: none)")
    final_joint_encoders: bool = Field(
        True,
        description="alternating: the final joint round trains the encoders too (the paper: adapters and LoRA only)",
    )
    task_weights: dict[Task, float] | None = Field(
        None, description="weighted: sampling weight per task; None: sizes ** (1 / temperature)"
    )
    temperature: float = Field(1.0, gt=0, description="weighted: 1 = proportional to size, large = uniform")

    @model_validator(mode="after")
    def _weights_positive(self) -> ScheduleConfig:
        if self.task_weights is not None and any(w < 0 for w in self.task_weights.values()):
            raise ValueError("task_weights must be >= 0")
        return self


@dataclass(frozen=True)
class Step:
    task: Task
    trainable_groups: frozenset[str]
    round_index: int
    round_kind: RoundKind


@dataclass(frozen=True)
class Round:
    kind: RoundKind
    tasks: tuple[Task, ...]
    steps: int
    passes: int  # epochs over the round's tasks; 0 for step-sized rounds (tasks sampled by size)


ENCODER_GROUPS = frozenset({"speech_encoder", "emotion_encoder"})


def groups_for(kind: RoundKind, joint_encoders: bool = True) -> frozenset[str]:
    if kind == "joint" and not joint_encoders:
        return ALL_GROUPS - ENCODER_GROUPS
    return {"speech": SPEECH_GROUPS, "emotion": EMOTION_GROUPS, "joint": ALL_GROUPS}[kind]


def _branch_tasks(kind: RoundKind, sizes: Mapping[Task, int]) -> tuple[Task, ...]:
    wanted = {"speech": SPEECH_TASKS, "emotion": EMOTION_TASKS, "joint": SPEECH_TASKS | EMOTION_TASKS}[kind]
    return tuple(t for t in Task if t in wanted and sizes.get(t, 0) > 0)


def plan_rounds(cfg: ScheduleConfig, sizes: Mapping[Task, int], epochs: int) -> list[Round]:
    """The rounds of a whole run. ``sizes``: batches per epoch of each task (tasks with 0 are absent)."""
    if not any(sizes.values()):
        raise ValueError("no task has any batch: nothing to schedule")
    total_per_epoch = sum(sizes.values())
    if cfg.mode != "alternating":
        return [Round("joint", _branch_tasks("joint", sizes), epochs * total_per_epoch, epochs)]

    joint_epochs = min(cfg.final_joint_epochs, epochs)
    alt_epochs = epochs - joint_epochs
    order: list[RoundKind] = ["speech", "emotion"] if cfg.first_round == "speech" else ["emotion", "speech"]
    rounds: list[Round] = []
    if cfg.round_unit == "epoch":
        done = 0
        while done < alt_epochs:
            passes = min(cfg.round_length, alt_epochs - done)
            for kind in order:
                tasks = _branch_tasks(kind, sizes)
                if tasks:  # a corpus without speech tasks simply has no speech rounds
                    rounds.append(Round(kind, tasks, passes * sum(sizes[t] for t in tasks), passes))
            done += passes
    else:
        budget = alt_epochs * total_per_epoch
        branches = [k for k in order if _branch_tasks(k, sizes)]
        i = 0
        while budget > 0:
            kind = branches[i % len(branches)]
            n = min(cfg.round_length, budget)
            rounds.append(Round(kind, _branch_tasks(kind, sizes), n, 0))
            budget -= n
            i += 1
    if joint_epochs:
        rounds.append(Round("joint", _branch_tasks("joint", sizes), joint_epochs * total_per_epoch, joint_epochs))
    return rounds


class TaskScheduler:
    """Yields one ``Step`` per optimizer step; ``max_steps`` (if given) cuts the plan short."""

    def __init__(
        self,
        cfg: ScheduleConfig,
        batches_per_epoch: Mapping[Task, int],
        *,
        epochs: int = 1,
        seed: int = 0,
        max_steps: int | None = None,
    ):
        self.cfg = cfg
        self.sizes = {Task(t): int(n) for t, n in batches_per_epoch.items() if n > 0}
        self.seed = seed
        self.rounds = plan_rounds(cfg, self.sizes, epochs)
        planned = sum(r.steps for r in self.rounds)
        self.total_steps = planned if max_steps is None else min(planned, max_steps)
        self._starts = np.cumsum([0] + [r.steps for r in self.rounds])  # first step of each round
        self._probs = self._weighted_probs() if cfg.mode == "weighted" else None
        self._cached_round: tuple[int, list[Task]] | None = None
        self.step = 0

    # ---- the sequence ----

    def _weighted_probs(self) -> np.ndarray:
        tasks = list(self.sizes)
        if self.cfg.task_weights is not None:
            w = np.array([self.cfg.task_weights.get(t, 0.0) for t in tasks], dtype=np.float64)
        else:
            w = np.array([self.sizes[t] for t in tasks], dtype=np.float64) ** (1.0 / self.cfg.temperature)
        if w.sum() <= 0:
            raise ValueError(f"task_weights give every task with data ({[t.value for t in tasks]}) zero weight")
        return w / w.sum()

    def _round_tasks(self, r: int) -> list[Task]:
        """The task of every step in round ``r``, shuffled with a seed of its own (so resume is exact)."""
        if self._cached_round is not None and self._cached_round[0] == r:
            return self._cached_round[1]
        rnd = self.rounds[r]
        rng = np.random.default_rng([self.seed, r])
        if rnd.passes:  # each task appears exactly its batches-per-epoch times per pass
            seq = [t for t in rnd.tasks for _ in range(self.sizes[t] * rnd.passes)]
            seq = [seq[i] for i in rng.permutation(len(seq))]
        else:  # step-sized round: tasks in proportion to their sizes
            p = np.array([self.sizes[t] for t in rnd.tasks], dtype=np.float64)
            seq = [rnd.tasks[i] for i in rng.choice(len(rnd.tasks), size=rnd.steps, p=p / p.sum())]
        self._cached_round = (r, seq)
        return seq

    def at(self, step: int) -> Step:
        """The step with index ``step`` (0-based), without moving the scheduler."""
        if not 0 <= step < self.total_steps:
            raise IndexError(f"step {step} outside the schedule of {self.total_steps} steps")
        r = int(np.searchsorted(self._starts, step, side="right")) - 1
        rnd = self.rounds[r]
        if self._probs is not None:
            rng = np.random.default_rng([self.seed, 1_000_003, step])  # per-step stream: resume needs no RNG state
            task = list(self.sizes)[int(rng.choice(len(self._probs), p=self._probs))]
        else:
            task = self._round_tasks(r)[step - int(self._starts[r])]
        joint_encoders = self.cfg.mode != "alternating" or self.cfg.final_joint_encoders
        return Step(task, groups_for(rnd.kind, joint_encoders), r, rnd.kind)

    def next(self) -> Step:
        step = self.at(self.step)
        self.step += 1
        return step

    def __iter__(self):
        while self.step < self.total_steps:
            yield self.next()

    def __len__(self) -> int:
        return self.total_steps

    def describe(self) -> str:
        lines = [f"{self.cfg.mode} schedule, {self.total_steps} steps:"]
        for i, r in enumerate(self.rounds):
            if self._starts[i] >= self.total_steps:  # cut short by max_steps
                lines.append(f"  ... {len(self.rounds) - i} more round(s) beyond max_steps")
                break
            size = f"{r.passes} epoch(s)" if r.passes else "step round"
            lines.append(f"  round {i}: {r.kind:<7} {r.steps:>6} steps ({size}) tasks={[t.value for t in r.tasks]}")
        return "\n".join(lines)

    # ---- resume ----

    def _fingerprint(self) -> str:
        cfg = self.cfg.model_dump(mode="json")
        if cfg["final_joint_encoders"]:  # the default: left out, so runs saved before the field existed resume
            del cfg["final_joint_encoders"]
        blob = json.dumps(
            [cfg, {t.value: n for t, n in self.sizes.items()}, self.seed],
            sort_keys=True,
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def state_dict(self) -> dict:
        return {"step": self.step, "fingerprint": self._fingerprint()}

    def load_state_dict(self, state: Mapping) -> None:
        if state["fingerprint"] != self._fingerprint():
            raise ValueError(
                "the checkpoint's task schedule was built from a different config, corpus or seed "
                f"(fingerprint {state['fingerprint']} != {self._fingerprint()}): resuming would not continue the run"
            )
        self.step = int(state["step"])


def epochs_to_cover(total_steps: int, batches_per_epoch: Mapping[Task, int]) -> int:
    """Smallest number of epochs whose plan has at least ``total_steps`` steps (for --max-steps runs)."""
    return max(1, math.ceil(total_steps / max(1, sum(batches_per_epoch.values()))))
