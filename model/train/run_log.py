"""What a training run reports: one JSONL line per logging window (TensorBoard too when asked),
the evaluations, and a progress bar. Only the main process writes; the others keep no state.

A logging window sums, per task, the token-weighted loss, tokens, gradient norms and steps since
the last line; throughput is measured over the window's wall-clock time, minus evaluation and
checkpointing (``restart_clock``).
"""

from __future__ import annotations

import json
import math
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import torch

from model.schedule import Step
from model.train.evaluation import EvalResult

LOG_FILE = "train_log.jsonl"


@dataclass
class StepStats:
    """One optimizer step's numbers, before the update is applied."""

    loss: float  # mean over every answer token of the global batch
    tokens: float  # answer tokens of the global batch
    grad_norm: float
    data_wait: float  # seconds spent waiting for the loader
    token_padding: list[float] = field(default_factory=list)  # per micro-batch, share of padded positions

    @property
    def finite(self) -> bool:
        return math.isfinite(self.loss) and math.isfinite(self.grad_norm)


class RunLog:
    def __init__(self, out: Path, *, tensorboard: bool, progress: bool, enabled: bool, total_steps: int, start: int):
        self.enabled = enabled
        self.file = (out / LOG_FILE).open("a") if enabled else None
        self.tb = None
        if enabled and tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(out / "tensorboard"))
        self.progress = None
        if enabled and progress:
            from tqdm import tqdm

            self.progress = tqdm(total=total_steps, initial=start, desc="train", dynamic_ncols=True)
        self.window = defaultdict(lambda: defaultdict(float))  # task -> sums over the logging window
        self.window_start, self.data_wait, self.token_padding = time.perf_counter(), 0.0, []

    def write(self, step: int, record: dict) -> None:
        if not self.enabled:
            return
        self.file.write(json.dumps({"step": step, **record}) + "\n")
        self.file.flush()
        if self.tb is not None:
            for key, value in record.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    self.tb.add_scalar(key, value, step)

    def step(self, task: str, stats: StepStats, audio_padding: float) -> None:
        """Add an applied step to the window."""
        self.data_wait += stats.data_wait
        self.token_padding += stats.token_padding
        w = self.window[task]
        w["loss"] += stats.loss * stats.tokens
        w["tokens"] += stats.tokens
        w["grad_norm"] += stats.grad_norm
        w["steps"] += 1
        w["audio_padding"] += audio_padding
        if self.progress is not None:
            self.progress.update(1)
            self.progress.set_postfix(task=task[:10], loss=f"{stats.loss:.3f}", refresh=False)

    def close_window(self, steps_done: int, s: Step, optimizer: torch.optim.Optimizer, batch_size: int) -> None:
        """Write the window's line (overall and per task) and start a new window."""
        window = self.window
        elapsed = time.perf_counter() - self.window_start
        steps = sum(v["steps"] for v in window.values())
        tokens = sum(v["tokens"] for v in window.values())
        record = {
            "round": s.round_index,
            "round_kind": s.round_kind,
            "loss": sum(v["loss"] for v in window.values()) / max(1.0, tokens),
            "samples_per_s": steps * batch_size / elapsed,
            "tokens_per_s": tokens / elapsed,
            "data_wait_share": self.data_wait / elapsed,
            "audio_padding": sum(v["audio_padding"] for v in window.values()) / steps,
            **({"token_padding": sum(self.token_padding) / len(self.token_padding)} if self.token_padding else {}),
            **{f"lr/{g['name']}": g["lr"] for g in optimizer.param_groups if g["name"].endswith("/decay")},
        }
        for task, v in window.items():
            record[f"loss/{task}"] = v["loss"] / max(1.0, v["tokens"])
            record[f"tokens/{task}"] = v["tokens"]
            record[f"grad_norm/{task}"] = v["grad_norm"] / v["steps"]
            record[f"steps/{task}"] = v["steps"]
        self.write(steps_done, record)
        if self.progress is not None:
            self.progress.set_postfix(loss=f"{record['loss']:.3f}", samples_s=f"{record['samples_per_s']:.1f}")
        window.clear()
        self.window_start, self.data_wait, self.token_padding = time.perf_counter(), 0.0, []

    def evaluation(self, steps_done: int, ev: EvalResult) -> dict:
        """Write and show an evaluation; return its record for the run's result."""
        self.write(steps_done, ev.flat())
        if self.enabled:
            say = self.progress.write if self.progress else print
            say(
                f"step {steps_done} eval: "
                + ", ".join(f"{k.removeprefix('eval/')} {v:.3f}" for k, v in ev.flat().items())
            )
            for sample_id, gold, text in ev.samples[:3]:
                say(f"  {sample_id} gold={gold} -> {text[:100]!r}")
        self.restart_clock()
        return {"step": steps_done, **ev.flat()}

    def restart_clock(self) -> None:
        """Evaluation and checkpointing are not training throughput."""
        self.window_start = time.perf_counter()

    def close(self) -> None:
        if self.progress is not None:
            self.progress.close()
        if self.file is not None:
            self.file.close()
        if self.tb is not None:
            self.tb.close()
