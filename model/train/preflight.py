"""Errors found before training starts, which would otherwise surface hours into a run, or never:
a task in the schedule without examples, too few examples for one global batch, an example whose
audio tokens and text do not fit the decoder's context."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from model.train.config import TrainConfig
from model.train.distributed import PreflightError
from pipeline.records import Task, TrainingExample

SAMPLE_RATE = 16_000  # pipeline.audio.load_audio's output rate


def preflight(cfg: TrainConfig, train_by_task: dict[Task, list[TrainingExample]], world_size: int) -> None:
    """Errors that would otherwise surface hours into a run, or never."""
    if not train_by_task:
        raise PreflightError(f"the corpus has no examples in split {cfg.train_split!r} for tasks {cfg.tasks or 'any'}")
    for task in cfg.tasks or []:
        if task not in train_by_task:
            raise PreflightError(f"task {task.value!r} is in the schedule but has no {cfg.train_split!r} examples")
    weights = cfg.schedule.task_weights or {}
    for task, w in weights.items():
        if w > 0 and task not in train_by_task:
            raise PreflightError(f"task {task.value!r} has weight {w} but no {cfg.train_split!r} examples")
    for task, exs in train_by_task.items():
        if len(exs) < cfg.global_batch_size:
            raise PreflightError(
                f"task {task.value!r} has {len(exs)} examples, fewer than one global batch ({cfg.global_batch_size})"
            )
    cfg.accumulation_steps(world_size)


def check_context(examples: Sequence[TrainingExample], collate_fn: Callable, item_type, context: int | None) -> None:
    """The longest audio and the longest answer, collated as training rows, must fit the decoder.

    Uses silent waveforms of the real durations: the token counts depend on length, not content."""
    if context is None or not examples:
        return
    longest_audio = max(examples, key=lambda e: e.duration_s or 0.0)
    longest_text = max(examples, key=lambda e: len(e.instruction) + len(e.target))
    for ex in {longest_audio.id: longest_audio, longest_text.id: longest_text}.values():
        samples = max(1, int(round((ex.duration_s or 1.0) * SAMPLE_RATE)))
        batch = collate_fn([item_type(example=ex, waveform=np.zeros(samples, dtype=np.float32))])
        length = int(batch.input_ids.shape[1])
        audio = int(batch.audio_mask.sum()) if getattr(batch, "audio_mask", None) is not None else "?"
        if length > context:
            raise PreflightError(
                f"example {ex.id} ({ex.duration_s} s of audio -> {audio} audio tokens, instruction and answer) is "
                f"{length} tokens, more than the decoder's context of {context}: lower the audio token budget, "
                "shorten the answers or drop such examples"
            )


def context_length(model) -> int | None:
    """The decoder's maximum sequence length, when the model tells it."""
    decoder_config = getattr(getattr(model, "decoder", None), "config", None)
    length = getattr(decoder_config, "max_position_embeddings", None)
    return int(length) if length is not None else None
