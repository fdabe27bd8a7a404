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

``train`` reads top to bottom; its named pieces follow it: ``_forward_backward`` (one step's
gradients), ``RunLog`` (model.train.run_log: the logging window, evaluation lines, progress),
``_evaluator`` (the in-training evaluation), ``_Checkpoints`` (save, and load for resume).
"""

from __future__ import annotations

import contextlib
import functools
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from model.schedule import Step, TaskScheduler, epochs_to_cover
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
from model.train.run_log import RunLog, StepStats
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
    _seed_everything(cfg.seed)

    # ---- preflight and data ----
    train_by_task = split_by_task(examples, cfg.train_split, cfg.tasks)
    eval_by_task = split_by_task(examples, cfg.eval_split, list(train_by_task)) if cfg.eval_split else {}
    preflight(cfg, train_by_task, env.world_size)
    item_type = item_type or _default_item_type()
    check_context([e for exs in train_by_task.values() for e in exs], collate_fn, item_type, context_length(model))
    accumulation = cfg.accumulation_steps(env.world_size)
    dataset, plan = _plan(cfg, train_by_task, env, accumulation, item_type)
    scheduler, total_steps = plan.scheduler, plan.scheduler.total_steps

    # ---- model, optimizer, resume ----
    if cfg.gradient_checkpointing:
        _enable_gradient_checkpointing(model)
    if getattr(model, "needs_speaker_norm", False):  # first: the input statistics read speaker-normalised states
        _fit_speaker_norm(model, train_by_task, eval_by_task, collate_fn, item_type, cfg, env)
    if getattr(model, "needs_input_norm", False):  # before sharding: the encoders run whole, once
        _fit_input_norm(model, train_by_task, collate_fn, item_type, cfg, env)
    names = ParamNames.of(model)  # before sharding, which replaces every parameter object
    _place(model, cfg, env, names)
    groups = names.resolve(model)
    optimizer = build_optimizer(groups, cfg.optim)
    lr_scheduler = build_lr_scheduler(optimizer, cfg.optim, total_steps)
    checkpoints = _Checkpoints(cfg, env, out, model, groups, optimizer, lr_scheduler, names.owned if fsdp else None)
    start, last_checkpoint = checkpoints.resume(plan) if resume else (0, None)
    if env.is_main:
        _announce(cfg, env, scheduler, accumulation, start, train_by_task)
    last_good_plan = plan.state_dict()  # the plan as of the last applied step: what a checkpoint saves

    # ---- the loop ----
    batches = iter(_loader(cfg, env, dataset, plan, collate_fn))
    autocast = _autocast(cfg, env.device)
    run_eval = _evaluator(cfg, env, model, eval_by_task, collate_fn, autocast, item_type)
    log = RunLog(out, tensorboard=cfg.tensorboard, progress=cfg.progress, enabled=env.is_main,
                 total_steps=total_steps, start=start)  # fmt: skip
    result = TrainResult(steps=start, last_checkpoint=last_checkpoint)
    model.train()
    current_round = None
    for step in range(start, total_steps):
        s = scheduler.at(step)
        if s.round_index != current_round:  # new round: what trains changes, and DDP must re-bucket
            names.set_trainable(model, s.trainable_groups)
            wrapped, current_round = wrap_model(model, env, cfg.distributed.strategy), s.round_index
            trainable = [p for p in model.parameters() if p.requires_grad]
        stats = _forward_backward(wrapped, batches, accumulation, env, autocast)
        stats.grad_norm = clip_grad_norm(trainable, cfg.optim.grad_clip)
        if not stats.finite:  # stop before the update: the weights are still those of the last good step
            optimizer.zero_grad(set_to_none=True)
            raise _non_finite(step, s, stats, checkpoints.of_step(result.steps, last_good_plan), log)
        optimizer.step()
        lr_scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        result.steps = step + 1
        result.losses.append(stats.loss)
        result.tasks.append(s.task.value)
        last_good_plan = plan.snapshot(step)

        log.step(s.task.value, stats, plan.audio_padding.get(step, 0.0))
        if _due(result.steps, cfg.log_every, total_steps):
            log.close_window(result.steps, s, optimizer, cfg.global_batch_size)
        if eval_by_task and _due(result.steps, cfg.eval_every, total_steps):
            result.evals.append(log.evaluation(result.steps, run_eval()))
        if _due(result.steps, cfg.save_every, total_steps):
            result.last_checkpoint = checkpoints.save(result.steps, last_good_plan, stats.loss)
            log.restart_clock()

    log.close()
    save_model(model, out / "final", rank=env.rank, owned=checkpoints.owned)
    env.barrier()
    return result


def _forward_backward(wrapped, batches, accumulation: int, env: DistEnv, autocast) -> StepStats:
    """One step's gradients, accumulated over its micro-batches: the loss is the sum of token losses
    over the answer tokens of the whole global batch, so one process with accumulation and N
    processes without give the same update. The gradient norm is left for the caller to fill in."""
    t0 = time.perf_counter()
    micro = [next(batches) for _ in range(accumulation)]
    stats = StepStats(loss=0.0, tokens=0.0, grad_norm=math.nan, data_wait=time.perf_counter() - t0)
    counts = [answer_tokens(b) for b in micro]
    stats.tokens = env.sum([float(sum(counts))])[0]
    loss_sum = 0.0
    for i, batch in enumerate(micro):
        batch = batch.to(env.device)
        if getattr(batch, "attention_mask", None) is not None:
            stats.token_padding.append(1.0 - float(batch.attention_mask.float().mean()))
        with gradient_sync(wrapped, enabled=i == accumulation - 1):
            with autocast():
                loss = wrapped(batch).loss
            # sum of token losses / tokens of the whole global batch; DDP/FSDP average over processes
            (loss * (counts[i] * env.world_size / stats.tokens)).backward()
        loss_sum += float(loss.detach()) * counts[i]
    stats.loss = env.sum([loss_sum])[0] / stats.tokens
    return stats


def _non_finite(step: int, s: Step, stats: StepStats, checkpoint: Path | None, log: RunLog) -> NonFiniteLossError:
    log.write(step, {"event": "non_finite", "task": s.task.value, "loss": stats.loss, "grad_norm": stats.grad_norm})
    log.close()
    return NonFiniteLossError(
        f"non-finite {'loss' if not math.isfinite(stats.loss) else 'gradient norm'} at step {step} "
        f"(task {s.task.value}, loss {stats.loss}, grad norm {stats.grad_norm}); the update was not applied. "
        f"Last good checkpoint: {checkpoint} (lower the learning rate or check the data, then --resume)"
    )


def _evaluator(cfg: TrainConfig, env: DistEnv, model, eval_by_task, collate_fn, autocast, item_type):
    """``run_eval()``: the evaluation on the eval split, as the loop calls it (model.train.evaluation)."""
    return functools.partial(
        evaluate,
        model,
        eval_by_task,
        collate_fn,
        env.replicated() if cfg.distributed.strategy == "fsdp" else env,  # FSDP: every process runs every batch
        micro_batch_size=cfg.micro_batch_size,
        max_examples=cfg.eval_max_examples,
        max_new_tokens=cfg.eval_max_new_tokens,
        autocast=autocast,
        num_workers=min(cfg.num_workers, 2),
        item_type=item_type,
    )


def _due(steps_done: int, every: int, total_steps: int) -> bool:
    return steps_done % every == 0 or steps_done == total_steps


class _Checkpoints:
    """Saves and restores what an exact resume needs: trainable weights, optimizer, LR schedule, data
    plan and every process's RNG (model.train.checkpoint)."""

    def __init__(self, cfg: TrainConfig, env: DistEnv, out: Path, model, groups, optimizer, lr_scheduler, owned):
        self.cfg, self.env, self.out, self.model, self.groups = cfg, env, out, model, groups
        self.optimizer, self.lr_scheduler = optimizer, lr_scheduler
        self.owned = owned  # FSDP: the names a sharded model's save_pretrained must gather
        self.last: Path | None = None  # the latest checkpoint saved or resumed from

    def save(self, step_done: int, plan_state: dict, loss: float | None) -> Path:
        state = TrainerState(step_done, plan_state, self.optimizer.state_dict(), self.lr_scheduler.state_dict(), loss)
        env = self.env
        self.last = save_checkpoint(self.out, self.model, self.groups, state, rank=env.rank,
                                    world_size=env.world_size, keep_last=self.cfg.keep_last, barrier=env.barrier,
                                    owned=self.owned)  # fmt: skip
        return self.last

    def of_step(self, step_done: int, plan_state: dict) -> Path:
        """A checkpoint of the weights after ``step_done`` steps: the latest, or a new one (with no
        loss) when the latest is older."""
        if self.last is None or step_done > _step_of(self.last):
            self.save(step_done, plan_state, None)
        return self.last

    def resume(self, plan) -> tuple[int, Path | None]:
        """Load the latest checkpoint, if any; return the steps it had done and its folder."""
        if (ckpt := latest_checkpoint(self.out)) is None:
            return 0, None
        sharded = self.owned is not None
        state = load_checkpoint(ckpt, self.model, rank=self.env.rank, world_size=self.env.world_size)
        if (state["optimizer"] is None) != sharded:
            raise PreflightError(
                f"{ckpt} was written with distributed.strategy {'ddp' if sharded else 'fsdp'}: resume with the same"
            )
        if sharded:
            load_local_optimizer_state(self.optimizer, state["optimizer_shard"])
        else:
            self.optimizer.load_state_dict(state["optimizer"])
        self.lr_scheduler.load_state_dict(state["lr_scheduler"])
        plan.load_state_dict(state["plan"])
        self.last = ckpt
        return state["step"], ckpt


def _seed_everything(seed: int) -> None:
    # every RNG: encoders draw SpecAugment masks from numpy (transformers' _compute_mask_indices)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _plan(cfg: TrainConfig, train_by_task, env: DistEnv, accumulation: int, item_type):
    """The dataset and the plan of every step's batch (model.train.data), for this process."""

    def make_scheduler(batches_per_epoch: dict[Task, int]) -> TaskScheduler:
        epochs = (
            cfg.epochs if cfg.max_steps is None else max(cfg.epochs, epochs_to_cover(cfg.max_steps, batches_per_epoch))
        )
        return TaskScheduler(cfg.schedule, batches_per_epoch, epochs=epochs, seed=cfg.seed, max_steps=cfg.max_steps)

    return build_plan(
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


def _place(model, cfg: TrainConfig, env: DistEnv, names: ParamNames) -> None:
    if cfg.distributed.strategy == "fsdp":  # moves each unit to the device as it shards it
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


def _loader(cfg: TrainConfig, env: DistEnv, dataset, plan, collate_fn: Callable) -> DataLoader:
    return DataLoader(
        dataset,
        batch_sampler=plan,
        collate_fn=collate_fn,
        num_workers=cfg.num_workers,
        prefetch_factor=cfg.prefetch_factor if cfg.num_workers else None,
        pin_memory=env.device.type == "cuda",
        generator=seeded_generator(cfg.seed),  # never draws from the global RNG: resume stays exact
    )


def _announce(cfg: TrainConfig, env: DistEnv, scheduler: TaskScheduler, accumulation: int, start: int, train_by_task):
    print(scheduler.describe())
    print(
        f"{env.world_size} process(es) on {env.device}, global batch {cfg.global_batch_size} = "
        f"{cfg.micro_batch_size} x {accumulation} accumulation x {env.world_size}; "
        f"{'resuming at step ' + str(start) if start else 'starting'}; {sum(map(len, train_by_task.values()))} "
        f"training examples in {[t.value for t in train_by_task]}"
    )


def _autocast(cfg: TrainConfig, device: torch.device):
    if cfg.precision == "bf16" and (device.type == "cuda" or (device.type == "cpu" and cfg.cpu_bf16)):
        return lambda: torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext


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
