"""The training loop, top to bottom: preflight (model.train.preflight), data, optimizer, resume, then one loop.

    result = train(cfg, model, collate_fn, examples)

``model`` follows the AudioLLM contract: ``forward(batch).loss`` (mean over answer tokens),
``parameter_groups()``, ``generate(batch)``, ``save_pretrained(dir)``. The groups are read once
and kept by parameter name (FSDP replaces the parameter objects); each round sets
``requires_grad`` by name, as ``model.set_trainable`` would.
Each optimizer step trains on one task; the task scheduler says which, and which parameter
groups train in the current round. The loss of a step is the mean over every answer token of
the global batch, whatever the number of processes and accumulation steps, so one process with
accumulation and N processes without give the same update.
"""

from __future__ import annotations

import contextlib
import json
import math
import random
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from model.schedule import TaskScheduler, epochs_to_cover
from model.train.checkpoint import (
    TrainerState,
    latest_checkpoint,
    load_checkpoint,
    load_local_optimizer_state,
    save_checkpoint,
    save_model,
)
from model.train.config import TrainConfig
from model.train.data import CorpusDataset, build_plan, seeded_generator, split_by_task
from model.train.distributed import (
    DistEnv,
    ParamNames,
    PreflightError,
    clip_grad_norm,
    gradient_sync,
    init_distributed,
    require_process_group,
    shard_model,
    wrap_model,
)
from model.train.evaluation import answer_tokens, evaluate
from model.train.optim import build_lr_scheduler, build_optimizer
from model.train.preflight import check_context, context_length, preflight
from pipeline.records import Task, TrainingExample


class NonFiniteLossError(RuntimeError):
    """The loss or gradient norm became NaN/inf; the run stopped before applying that step."""


@dataclass
class TrainResult:
    steps: int  # optimizer steps done (including those of a resumed-from run)
    losses: list[float] = field(default_factory=list)  # global loss of each step run in this call
    tasks: list[str] = field(default_factory=list)  # task of each of those steps
    last_checkpoint: Path | None = None
    evals: list[dict] = field(default_factory=list)


def _autocast(cfg: TrainConfig, device: torch.device):
    if cfg.precision == "bf16" and (device.type == "cuda" or (device.type == "cpu" and cfg.cpu_bf16)):
        return lambda: torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext


class _Logger:
    """JSONL always, TensorBoard when asked; only the main process writes."""

    def __init__(self, out: Path, tensorboard: bool, enabled: bool):
        self.enabled = enabled
        self.file = (out / "train_log.jsonl").open("a") if enabled else None
        self.tb = None
        if enabled and tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(out / "tensorboard"))

    def log(self, step: int, record: dict) -> None:
        if not self.enabled:
            return
        self.file.write(json.dumps({"step": step, **record}) + "\n")
        self.file.flush()
        if self.tb is not None:
            for key, value in record.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    self.tb.add_scalar(key, value, step)

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
        if self.tb is not None:
            self.tb.close()


def train(
    cfg: TrainConfig,
    model,
    collate_fn: Callable,
    examples: Sequence[TrainingExample],
    *,
    resume: bool = False,
    env: DistEnv | None = None,
    item_type=None,
) -> TrainResult:
    """``item_type(example=, waveform=)`` builds the collator's input (default: model.collator.AudioExample)."""
    env = env or init_distributed(cfg.device)
    fsdp = cfg.distributed.strategy == "fsdp"
    if fsdp:
        require_process_group(env)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    # every RNG: encoders draw SpecAugment masks from numpy (transformers' _compute_mask_indices)
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)

    # ---- preflight and data ----
    train_by_task = split_by_task(examples, cfg.train_split, cfg.tasks)
    eval_by_task = split_by_task(examples, cfg.eval_split, list(train_by_task)) if cfg.eval_split else {}
    preflight(cfg, train_by_task, env.world_size)
    item_type = item_type or _default_item_type()
    check_context([e for exs in train_by_task.values() for e in exs], collate_fn, item_type, context_length(model))
    accumulation = cfg.accumulation_steps(env.world_size)

    def make_scheduler(batches_per_epoch: dict[Task, int]) -> TaskScheduler:
        epochs = (
            cfg.epochs if cfg.max_steps is None else max(cfg.epochs, epochs_to_cover(cfg.max_steps, batches_per_epoch))
        )
        return TaskScheduler(cfg.schedule, batches_per_epoch, epochs=epochs, seed=cfg.seed, max_steps=cfg.max_steps)

    dataset, plan = build_plan(
        train_by_task,
        make_scheduler,
        global_batch_size=cfg.global_batch_size,
        seed=cfg.seed,
        grouped=cfg.length_grouping,
        group_batches=cfg.group_batches,
        rank=env.rank,
        world_size=env.world_size,
        accumulation=accumulation,
        item_type=item_type,
    )
    scheduler = plan.scheduler
    total_steps = scheduler.total_steps

    # ---- model and optimizer ----
    if cfg.gradient_checkpointing:
        _enable_gradient_checkpointing(model)
    if getattr(model, "needs_speaker_norm", False):  # first: the input statistics read speaker-normalised states
        _fit_speaker_norm(model, train_by_task, eval_by_task, collate_fn, item_type, cfg, env)
    if getattr(model, "needs_input_norm", False):  # before sharding: the encoders run whole, once
        _fit_input_norm(model, train_by_task, collate_fn, item_type, cfg, env)
    names = ParamNames.of(model)  # before sharding, which replaces every parameter object
    if fsdp:  # moves each unit to the device as it shards it
        bf16 = env.device.type == "cuda" and cfg.precision == "bf16"
        shard_model(
            model,
            env,
            names,
            param_dtype=torch.bfloat16 if bf16 else None,
            reshard_after_forward=cfg.distributed.reshard_after_forward,
        )
    else:
        model.to(env.device)
    owned = names.owned if fsdp else None  # what a sharded model's save_pretrained must gather
    groups = names.resolve(model)
    optimizer = build_optimizer(groups, cfg.optim)
    lr_scheduler = build_lr_scheduler(optimizer, cfg.optim, total_steps)

    start, last_checkpoint = 0, None
    if resume and (ckpt := latest_checkpoint(out)) is not None:
        state = load_checkpoint(ckpt, model, rank=env.rank, world_size=env.world_size)
        if (state["optimizer"] is None) != fsdp:
            raise PreflightError(
                f"{ckpt} was written with distributed.strategy {'ddp' if fsdp else 'fsdp'}: resume with the same"
            )
        if fsdp:
            load_local_optimizer_state(optimizer, state["optimizer_shard"])
        else:
            optimizer.load_state_dict(state["optimizer"])
        lr_scheduler.load_state_dict(state["lr_scheduler"])
        plan.load_state_dict(state["plan"])
        start, last_checkpoint = state["step"], ckpt
    if env.is_main:
        print(scheduler.describe())
        print(
            f"{env.world_size} process(es) on {env.device}, global batch {cfg.global_batch_size} = "
            f"{cfg.micro_batch_size} x {accumulation} accumulation x {env.world_size}; "
            f"{'resuming at step ' + str(start) if start else 'starting'}; {sum(map(len, train_by_task.values()))} "
            f"training examples in {[t.value for t in train_by_task]}"
        )
    last_good_plan = plan.state_dict()

    loader = DataLoader(
        dataset,
        batch_sampler=plan,
        collate_fn=collate_fn,
        num_workers=cfg.num_workers,
        prefetch_factor=cfg.prefetch_factor if cfg.num_workers else None,
        pin_memory=env.device.type == "cuda",
        generator=seeded_generator(cfg.seed),  # never draws from the global RNG: resume stays exact
    )
    batches = iter(loader)
    autocast = _autocast(cfg, env.device)
    logger = _Logger(out, cfg.tensorboard, env.is_main)
    result = TrainResult(steps=start, last_checkpoint=last_checkpoint)

    def checkpoint(step_done: int, plan_state: dict, loss: float | None) -> Path:
        trainer_state = TrainerState(step_done, plan_state, optimizer.state_dict(), lr_scheduler.state_dict(), loss)
        return save_checkpoint(
            out,
            model,
            groups,
            trainer_state,
            rank=env.rank,
            world_size=env.world_size,
            keep_last=cfg.keep_last,
            barrier=env.barrier,
            owned=owned,
        )

    progress = None
    if cfg.progress and env.is_main:
        from tqdm import tqdm

        progress = tqdm(total=total_steps, initial=start, desc="train", dynamic_ncols=True)

    # ---- the loop ----
    model.train()
    wrapped, current_round = model, None
    window = defaultdict(lambda: defaultdict(float))  # task -> sums over the logging window
    window_start, data_wait, token_pad = time.perf_counter(), 0.0, []
    for step in range(start, total_steps):
        s = scheduler.at(step)
        if s.round_index != current_round:  # new round: what trains changes, and DDP must re-bucket
            names.set_trainable(model, s.trainable_groups)
            wrapped, current_round = wrap_model(model, env, cfg.distributed.strategy), s.round_index
        trainable = [p for p in model.parameters() if p.requires_grad]

        t0 = time.perf_counter()
        micro = [next(batches) for _ in range(accumulation)]
        data_wait += time.perf_counter() - t0
        counts = [answer_tokens(b) for b in micro]
        global_tokens = env.sum([float(sum(counts))])[0]
        loss_sum = 0.0
        for i, batch in enumerate(micro):
            batch = batch.to(env.device)
            if getattr(batch, "attention_mask", None) is not None:
                token_pad.append(1.0 - float(batch.attention_mask.float().mean()))
            with gradient_sync(wrapped, enabled=i == accumulation - 1):
                with autocast():
                    loss = wrapped(batch).loss
                # sum of token losses / tokens of the whole global batch; DDP/FSDP average over processes
                (loss * (counts[i] * env.world_size / global_tokens)).backward()
            loss_sum += float(loss.detach()) * counts[i]
        step_loss = env.sum([loss_sum])[0] / global_tokens
        grad_norm = clip_grad_norm(trainable, cfg.optim.grad_clip)
        if not (math.isfinite(step_loss) and math.isfinite(grad_norm)):
            optimizer.zero_grad(set_to_none=True)
            if result.last_checkpoint is None or result.steps > _step_of(result.last_checkpoint):
                result.last_checkpoint = checkpoint(result.steps, last_good_plan, None)  # weights still good
            logger.log(step, {"event": "non_finite", "task": s.task.value, "loss": step_loss, "grad_norm": grad_norm})
            logger.close()
            raise NonFiniteLossError(
                f"non-finite {'loss' if not math.isfinite(step_loss) else 'gradient norm'} at step {step} "
                f"(task {s.task.value}, loss {step_loss}, grad norm {grad_norm}); the update was not applied. "
                f"Last good checkpoint: {result.last_checkpoint} (lower the learning rate or check the data, "
                "then --resume)"
            )
        optimizer.step()
        lr_scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        result.steps = step + 1
        result.losses.append(step_loss)
        result.tasks.append(s.task.value)
        last_good_plan = plan.snapshot(step)

        w = window[s.task.value]
        w["loss"] += step_loss * global_tokens
        w["tokens"] += global_tokens
        w["grad_norm"] += grad_norm
        w["steps"] += 1
        w["audio_padding"] += plan.audio_padding.get(step, 0.0)
        if progress is not None:
            progress.update(1)
            progress.set_postfix(task=s.task.value[:10], loss=f"{step_loss:.3f}", refresh=False)

        if result.steps % cfg.log_every == 0 or result.steps == total_steps:
            elapsed = time.perf_counter() - window_start
            steps = sum(v["steps"] for v in window.values())
            record = {
                "round": s.round_index,
                "round_kind": s.round_kind,
                "loss": sum(v["loss"] for v in window.values()) / max(1.0, sum(v["tokens"] for v in window.values())),
                "samples_per_s": steps * cfg.global_batch_size / elapsed,
                "tokens_per_s": sum(v["tokens"] for v in window.values()) / elapsed,
                "data_wait_share": data_wait / elapsed,
                "audio_padding": sum(v["audio_padding"] for v in window.values()) / steps,
                **({"token_padding": sum(token_pad) / len(token_pad)} if token_pad else {}),
                **{f"lr/{g['name']}": g["lr"] for g in optimizer.param_groups if g["name"].endswith("/decay")},
            }
            for task, v in window.items():
                record[f"loss/{task}"] = v["loss"] / max(1.0, v["tokens"])
                record[f"tokens/{task}"] = v["tokens"]
                record[f"grad_norm/{task}"] = v["grad_norm"] / v["steps"]
                record[f"steps/{task}"] = v["steps"]
            logger.log(result.steps, record)
            if progress is not None:
                progress.set_postfix(loss=f"{record['loss']:.3f}", samples_s=f"{record['samples_per_s']:.1f}")
            window.clear()
            window_start, data_wait, token_pad = time.perf_counter(), 0.0, []

        if eval_by_task and (result.steps % cfg.eval_every == 0 or result.steps == total_steps):
            ev = evaluate(
                model,
                eval_by_task,
                collate_fn,
                env.replicated() if fsdp else env,  # FSDP: every process runs every batch (see DistEnv)
                micro_batch_size=cfg.micro_batch_size,
                max_examples=cfg.eval_max_examples,
                max_new_tokens=cfg.eval_max_new_tokens,
                autocast=autocast,
                num_workers=min(cfg.num_workers, 2),
                item_type=item_type,
            )
            logger.log(result.steps, ev.flat())
            result.evals.append({"step": result.steps, **ev.flat()})
            if env.is_main:
                summary = ", ".join(f"{k.removeprefix('eval/')} {v:.3f}" for k, v in ev.flat().items())
                (progress.write if progress else print)(f"step {result.steps} eval: {summary}")
                for sample_id, gold, text in ev.samples[:3]:
                    (progress.write if progress else print)(f"  {sample_id} gold={gold} -> {text[:100]!r}")
            window_start = time.perf_counter()  # evaluation time is not training throughput

        if result.steps % cfg.save_every == 0 or result.steps == total_steps:
            result.last_checkpoint = checkpoint(result.steps, last_good_plan, step_loss)
            window_start = time.perf_counter()

    if progress is not None:
        progress.close()
    logger.close()
    save_model(model, out / "final", rank=env.rank, owned=owned)
    env.barrier()
    return result


def _unique_clips(by_task: dict[Task, list[TrainingExample]]) -> list[TrainingExample]:
    """One example per clip, in id order (the same in every process and on resume)."""
    clips = {}
    for ex in sorted((e for exs in by_task.values() for e in exs), key=lambda e: e.id):
        clips.setdefault((ex.audio_path, ex.start_s, ex.end_s), ex)
    return list(clips.values())


def _clip_batches(model, clips, collate_fn, item_type, cfg: TrainConfig, env: DistEnv):
    for module in (model.speech_encoder, model.emotion_encoder, model.emotion_layers):
        module.to(env.device)
    loader = DataLoader(
        CorpusDataset(clips, item_type),
        batch_size=cfg.micro_batch_size,
        collate_fn=collate_fn,
        generator=seeded_generator(cfg.seed),
    )  # its own generator: the global RNG (and so an exact resume) is untouched
    return (batch.to(env.device) for batch in loader)


def _fit_speaker_norm(model, train_by_task, eval_by_task, collate_fn, item_type, cfg: TrainConfig, env) -> None:
    """Every training and evaluation speaker measured on all of their clips (transductive, labels
    unread: what `emoreason eval` does for unseen test speakers); the pooled fallback from the
    training clips alone."""
    started = time.perf_counter()
    batches = _clip_batches(model, _unique_clips(train_by_task), collate_fn, item_type, cfg, env)
    seen = model.fit_speaker_norm(batches, pooled=True)
    if eval_by_task:
        batches = _clip_batches(model, _unique_clips(eval_by_task), collate_fn, item_type, cfg, env)
        seen += model.fit_speaker_norm(batches, pooled=False)
    if env.is_main:
        speakers = len(model.speech_speaker_norm.table)
        print(
            f"per-speaker statistics of {speakers} speakers from {seen} clips in {time.perf_counter() - started:.1f} s"
        )


def _fit_input_norm(model, train_by_task, collate_fn, item_type, cfg: TrainConfig, env: DistEnv) -> None:
    """The adapters' input statistics from a seeded sample of training clips: the same clips in
    every process and on resume, so the statistics (and an exact resume) are reproducible."""
    clips = _unique_clips(train_by_task)
    sample = random.Random(cfg.seed).sample(clips, min(cfg.input_norm_clips, len(clips)))
    started = time.perf_counter()
    seen = model.fit_input_norm(_clip_batches(model, sample, collate_fn, item_type, cfg, env))
    if env.is_main:
        print(f"adapter input statistics fitted on {seen} training clips in {time.perf_counter() - started:.1f} s")


def _default_item_type():
    from model.collator import AudioExample

    return AudioExample


def _enable_gradient_checkpointing(model) -> None:
    """Recompute decoder layers (and the blocks of trainable encoders) in backward (non-reentrant:
    works with frozen input embeddings)."""
    target = model if hasattr(model, "gradient_checkpointing_enable") else getattr(model, "decoder", None)
    if target is None or not hasattr(target, "gradient_checkpointing_enable"):
        raise PreflightError("gradient_checkpointing: true, but the model has no gradient_checkpointing_enable()")
    target.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})


def _step_of(checkpoint: Path) -> int:
    return int(checkpoint.name.removeprefix("step-"))
