"""Checkpoints that resume exactly, written atomically, the last K kept.

    <out>/checkpoints/step-000500/
        model/                  the model's own save_pretrained (reloads without any training code)
        trainable.safetensors   every parameter of every trainable group (what resume loads)
        trainer_state.pt        optimizer, LR scheduler, data plan (task scheduler + batch positions), step
        rng-rank0.pt ...        python / numpy / torch RNG states of each process

A checkpoint is written into ``step-000500.tmp`` and renamed when complete, so a run killed while
saving leaves the previous checkpoint as the latest one; stale ``.tmp`` folders are removed.
"""

from __future__ import annotations

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
    """Name -> tensor of every parameter that some round may train (frozen base weights excluded)."""
    wanted = {id(p) for ps in groups.values() for p in ps}
    return {n: p.detach().cpu().contiguous() for n, p in model.named_parameters() if id(p) in wanted}


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
) -> Path:
    """Every process calls this (each saves its RNG); rank 0 writes the rest and renames."""
    root = Path(out) / "checkpoints"
    final = root / f"step-{state.step:06d}"
    tmp = root / f"{final.name}.tmp"
    if rank == 0:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    barrier()
    torch.save(rng_state(), tmp / f"rng-rank{rank}.pt")
    if rank == 0:
        if hasattr(model, "save_pretrained"):
            model.save_pretrained(tmp / "model")
        save_file(trainable_tensors(model, groups), tmp / "trainable.safetensors")
        torch.save(
            {
                "step": state.step,
                "plan": state.plan,
                "optimizer": state.optimizer,
                "lr_scheduler": state.lr_scheduler,
                "last_loss": state.last_loss,
                "world_size": world_size,
            },
            tmp / "trainer_state.pt",
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
    """Load trainable weights into ``model`` and this process's RNG; return the trainer state."""
    path = Path(path)
    trainer = torch.load(path / "trainer_state.pt", map_location="cpu", weights_only=False)
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
            params[name].copy_(tensor)
    rng_file = path / f"rng-rank{rank}.pt"
    set_rng_state(torch.load(rng_file, weights_only=False))
    return trainer
