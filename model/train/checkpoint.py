"""Checkpoints that resume exactly, written atomically, the last K kept.

    <out>/checkpoints/step-000500/
        model/                  the model's own save_pretrained (reloads without any training code)
        trainable.safetensors   every parameter of every trainable group (what resume loads)
        trainer_state.json/.safetensors  optimizer, LR scheduler, data plan (task scheduler + batch
                                positions), step
        rng-rank0.json/.safetensors ...  python / numpy / torch RNG states of each process
        optimizer-rank0.json/.safetensors ...  FSDP only: each process's shard of the AdamW moments

Nothing here is a pickle: state is JSON plus safetensors (model/train/safe_state.py), so reading
a checkpoint cannot run code, and a folder holding ``trainer_state.pt`` instead is refused.

Under FSDP the weights are gathered from the shards (every process takes part) and rank 0 writes
them whole, so ``model/`` loads with ``AudioLLM.from_pretrained`` in a single process and
``trainable.safetensors`` loads into whole or sharded parameters alike. The optimizer state
stays sharded, one file per process, and is restored into the same shards: resume with the same
number of processes (which resume requires anyway, for the data split). torch.distributed.
checkpoint's ``set_optimizer_state_dict`` is not used: on a fresh optimizer it first runs a
zero-gradient step for every parameter that requires grad and keeps that state where the
checkpoint has none, so a branch frozen in every round so far would resume with AdamW step
count 1 instead of none, and the resumed run would drift from the uninterrupted one.

A checkpoint is written into ``step-000500.tmp`` and renamed when complete, so a run killed while
saving leaves the previous checkpoint as the latest one; stale ``.tmp`` folders are removed.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from model.train.distributed import full_tensor
from model.train.safe_state import load_state, save_state

_STEP_DIR = re.compile(r"^step-(\d+)$")


@dataclass
class TrainerState:
    step: int  # optimizer steps done
    plan: dict  # TrainPlan.state_dict() after that step
    optimizer: dict
    lr_scheduler: dict
    last_loss: float | None = None


def rng_state() -> dict:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def trainable_tensors(model: nn.Module, groups: dict[str, list[nn.Parameter]]) -> dict[str, torch.Tensor]:
    """Name -> whole tensor of every parameter that some round may train (frozen base weights
    excluded). Gathers shards: under FSDP every process must call it."""
    wanted = {id(p) for ps in groups.values() for p in ps}
    return {n: full_tensor(p) for n, p in model.named_parameters() if id(p) in wanted}


def gathered_state(model: nn.Module, names: tuple[str, ...]) -> dict[str, torch.Tensor]:
    """Name -> whole tensor for the named parameters and buffers (collective under FSDP)."""
    state = model.state_dict()
    return {n: full_tensor(state[n]) for n in names}


def save_model(model: nn.Module, directory: Path, *, rank: int = 0, owned: tuple[str, ...] | None = None) -> None:
    """``model.save_pretrained(directory)`` on rank 0; for a sharded model (``owned``: the names
    save_pretrained writes) every process gathers and rank 0 writes the same files."""
    if not hasattr(model, "save_pretrained"):
        return
    if owned is None:
        if rank == 0:
            model.save_pretrained(directory)
        return
    state = gathered_state(model, owned)
    if rank == 0:
        _write_pretrained(model, Path(directory), state)


def _write_pretrained(model: nn.Module, directory: Path, state: dict[str, torch.Tensor]) -> None:
    """AudioLLM.save_pretrained's files from a gathered state: its own method reads parameter
    objects that sharding replaced (see docs/training.md, FSDP)."""
    from model.audiollm import CONFIG_FILE, WEIGHTS_FILE

    directory.mkdir(parents=True, exist_ok=True)
    save_file(state, directory / WEIGHTS_FILE)
    (directory / CONFIG_FILE).write_text(json.dumps(model.config.model_dump(mode="json"), indent=2))


def local_optimizer_state(state: dict) -> dict:
    """An optimizer state dict with each sharded tensor replaced by this process's shard."""
    from torch.distributed.tensor import DTensor

    def local(v):
        return v.to_local().cpu() if isinstance(v, DTensor) else v

    return {
        "state": {k: {n: local(v) for n, v in s.items()} for k, s in state["state"].items()},
        "param_groups": state["param_groups"],
    }


def load_local_optimizer_state(optimizer: torch.optim.Optimizer, state: dict) -> None:
    """Inverse of ``local_optimizer_state``: shards back into DTensors laid out as the parameters."""
    params = [p for g in optimizer.param_groups for p in g["params"]]
    restored = {k: {n: _shard_like(v, params[int(k)]) for n, v in s.items()} for k, s in state["state"].items()}
    optimizer.load_state_dict({"state": restored, "param_groups": state["param_groups"]})


def _shard_like(value, param: torch.Tensor):
    """A saved local moment as a DTensor laid out like its parameter (AdamW's scalar step stays)."""
    from torch.distributed.tensor import DTensor

    if not (isinstance(param, DTensor) and isinstance(value, torch.Tensor) and value.ndim == param.ndim):
        return value
    return DTensor.from_local(
        value.to(param.device), param.device_mesh, param.placements, run_check=False, shape=param.shape,
        stride=param.stride(),
    )  # fmt: skip


def checkpoint_dirs(out: Path) -> list[Path]:
    root = Path(out) / "checkpoints"
    if not root.is_dir():
        return []
    dirs = [d for d in root.iterdir() if d.is_dir() and _STEP_DIR.match(d.name)]
    return sorted(dirs, key=lambda d: int(_STEP_DIR.match(d.name).group(1)))


def latest_checkpoint(out: Path) -> Path | None:
    dirs = checkpoint_dirs(out)
    return dirs[-1] if dirs else None


def save_checkpoint(
    out: Path,
    model: nn.Module,
    groups: dict[str, list[nn.Parameter]],
    state: TrainerState,
    *,
    rank: int = 0,
    world_size: int = 1,
    keep_last: int = 3,
    barrier=lambda: None,
    owned: tuple[str, ...] | None = None,
) -> Path:
    """Every process calls this (each saves its RNG); rank 0 writes the rest and renames.

    ``owned`` (FSDP): the names ``save_pretrained`` writes; the model is sharded, every process
    takes part in gathering the weights and saves its own shard of the optimizer."""
    sharded = owned is not None
    root = Path(out) / "checkpoints"
    final = root / f"step-{state.step:06d}"
    tmp = root / f"{final.name}.tmp"
    if rank == 0:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    barrier()
    save_state(rng_state(), tmp, f"rng-rank{rank}")
    if sharded:
        save_state(local_optimizer_state(state.optimizer), tmp, f"optimizer-rank{rank}")
    save_model(model, tmp / "model", rank=rank, owned=owned)
    tensors = trainable_tensors(model, groups) if sharded or rank == 0 else {}
    if rank == 0:
        save_file(tensors, tmp / "trainable.safetensors")
        save_state(
            {
                "step": state.step,
                "plan": state.plan,
                "optimizer": None if sharded else state.optimizer,
                "lr_scheduler": state.lr_scheduler,
                "last_loss": state.last_loss,
                "world_size": world_size,
            },
            tmp,
            "trainer_state",
        )
    barrier()
    if rank == 0:
        if final.exists():  # a re-run of the same step (e.g. resumed and saved again): replace it
            shutil.rmtree(final)
        os.replace(tmp, final)
        for old in checkpoint_dirs(out)[:-keep_last]:
            shutil.rmtree(old)
        for stale in root.glob("step-*.tmp"):
            shutil.rmtree(stale, ignore_errors=True)
    barrier()
    return final


def load_checkpoint(path: Path, model: nn.Module, *, rank: int = 0, world_size: int = 1) -> dict:
    """Load trainable weights into ``model`` (whole tensors, or this process's shards of them) and
    this process's RNG; return the trainer state (``optimizer_shard``: this process's optimizer
    state for a checkpoint written under FSDP; load it with ``load_local_optimizer_state``)."""
    from torch.distributed.tensor import DTensor, distribute_tensor

    path = Path(path)
    trainer = load_state(path, "trainer_state")
    if trainer["world_size"] != world_size:
        raise ValueError(
            f"{path} was written by {trainer['world_size']} process(es), this run has {world_size}: the data "
            "split across processes would differ (resume with the same number of processes)"
        )
    tensors = load_file(path / "trainable.safetensors")
    params = dict(model.named_parameters())
    missing = sorted(set(tensors) - set(params))
    if missing:
        raise ValueError(f"{path}: checkpoint has parameters the model lacks, e.g. {missing[:3]}")
    with torch.no_grad():
        for name, tensor in tensors.items():
            p = params[name]
            if isinstance(p, DTensor):  # keep this process's shard of the whole tensor
                tensor = distribute_tensor(tensor.to(p.device, p.dtype), p.device_mesh, p.placements)
            p.copy_(tensor)
    set_rng_state(load_state(path, f"rng-rank{rank}"))
    sharded = trainer["optimizer"] is None
    trainer["optimizer_shard"] = load_state(path, f"optimizer-rank{rank}") if sharded else None
    return trainer
