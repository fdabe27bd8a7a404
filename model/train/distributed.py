"""One process or many, through torch.distributed: torchrun sets RANK/WORLD_SIZE/LOCAL_RANK.

``python -m model.commands.train`` runs one process; ``torchrun --nproc_per_node=8 -m
model.commands.train`` runs eight (and ``--nnodes``/``--rdzv-endpoint`` many machines). NCCL on
CUDA, gloo on CPU (which is how the tests run two processes on a laptop).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class DistEnv:
    rank: int
    local_rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def sum(self, values: list[float]) -> list[float]:
        """Element-wise sum over processes (float64, on the process's device for NCCL)."""
        if not self.distributed:
            return list(values)
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return t.tolist()


class PreflightError(RuntimeError):
    """Something that would make training fail or meaningless, found before the first step."""


def resolve_device(requested: str, local_rank: int) -> torch.device:
    if requested == "cuda" and not torch.cuda.is_available():
        raise PreflightError(
            "the config asks for device: cuda but torch sees no CUDA GPU "
            f"(torch {torch.__version__}, built with CUDA {torch.version.cuda}); "
            "use configs/tiny.yaml or --device cpu to train on the CPU"
        )
    if requested == "cpu" or (requested == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    return torch.device("cuda", local_rank)


def init_distributed(requested_device: str) -> DistEnv:
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(requested_device, local_rank)
    if world_size > 1 and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo", device_id=None)
    return DistEnv(rank, local_rank, world_size, device)


def close_distributed() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def wrap_model(model: nn.Module, env: DistEnv) -> nn.Module:
    """The module the training step calls: DDP over several processes, the model itself otherwise.

    Re-wrap after each ``set_trainable``: DDP builds its gradient buckets from the parameters that
    require grad at wrap time. (No FSDP yet: the model's parameter groups hold parameter objects,
    which sharding replaces; the paper config fits one 80 GB GPU per process, see docs/training.md.)"""
    if not env.distributed:
        return model
    ids = [env.device.index] if env.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)
