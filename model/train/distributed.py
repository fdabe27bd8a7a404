"""One process or many, through torch.distributed: torchrun sets RANK/WORLD_SIZE/LOCAL_RANK.

``python -m model.commands.train`` runs one process; ``torchrun --nproc_per_node=8 -m
model.commands.train`` runs eight (and ``--nnodes``/``--rdzv-endpoint`` many machines). NCCL on
CUDA, gloo on CPU (which is how the tests run two processes on a laptop).

Two strategies (``train.distributed.strategy``):

- ``ddp``: every process holds the whole model; gradients are all-reduced.
- ``fsdp``: PyTorch's FSDP2 (``torch.distributed.fsdp.fully_shard``): every parameter is split
  over the processes and gathered one unit at a time for forward and backward, so the weights,
  gradients and AdamW moments of a process are 1/N of the model's. Units: each transformer block
  (every element of a ``ModuleList`` named ``layers``), each encoder, and the root (adapters,
  the decoder's embeddings, final norm and head, which the AudioLLM uses outside the decoder's
  own forward). Sharding replaces every parameter object by a DTensor of the same name, so
  parameter groups are kept by name (``ParamNames``) and resolved again after wrapping.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from typing import Literal

import torch
import torch.distributed as dist
from torch import nn

Strategy = Literal["ddp", "fsdp"]
TRANSFORMER_BLOCKS = "layers"  # transformers' name for the ModuleList of blocks (Llama, Gemma, Whisper, WavLM, ...)


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

    def replicated(self) -> DistEnv:
        """This process as if it were alone: under FSDP every process must run the same forward
        calls (each one gathers weights from all), so evaluation runs every batch everywhere."""
        return replace(self, rank=0, world_size=1)


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


def _init_process_group(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo", device_id=None)


def init_distributed(requested_device: str) -> DistEnv:
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(requested_device, local_rank)
    if world_size > 1 and not dist.is_initialized():
        _init_process_group(device)
    return DistEnv(rank, local_rank, world_size, device)


def require_process_group(env: DistEnv) -> None:
    """FSDP needs a process group even for one process (``torchrun --nproc_per_node=1``)."""
    if not dist.is_available():
        raise PreflightError(
            "distributed.strategy: fsdp, but this torch build has no torch.distributed; use strategy ddp"
        )
    if dist.is_initialized():
        return
    if "MASTER_ADDR" not in os.environ:  # set by torchrun (and by any launcher that sets RANK/WORLD_SIZE)
        raise PreflightError(
            "distributed.strategy: fsdp shards the model over processes started by torchrun, e.g. "
            "`torchrun --standalone --nproc_per_node=8 -m model.commands.train ...` (`make train GPUS=8`); "
            "for one process without torchrun use distributed.strategy: ddp"
        )
    _init_process_group(env.device)


def close_distributed() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


# ---- parameter groups by name ----


@dataclass(frozen=True)
class ParamNames:
    """The model's parameter groups as parameter names, which survive sharding.

    ``groups``: group -> names (``model.parameter_groups()`` read once, before any wrapping);
    ``owned``: the names ``save_pretrained`` writes (AudioLLM: trainable weights, plus a randomly
    initialised encoder), so a checkpoint written from shards loads with ``from_pretrained``."""

    groups: dict[str, tuple[str, ...]]
    owned: tuple[str, ...]

    @classmethod
    def of(cls, model: nn.Module) -> ParamNames:
        name_of = {id(p): n for n, p in model.named_parameters()}
        groups = {}
        for group, params in model.parameter_groups().items():
            unnamed = [p for p in params if id(p) not in name_of]
            if unnamed:
                raise ValueError(f"group {group!r} holds {len(unnamed)} parameter(s) that are not the model's")
            groups[group] = tuple(name_of[id(p)] for p in params)
        trainable = tuple(dict.fromkeys(n for names in groups.values() for n in names))
        owned_state = getattr(model, "_owned_state", None)  # AudioLLM.save_pretrained's selection
        return cls(groups, tuple(owned_state()) if owned_state is not None else trainable)

    def trainable(self) -> set[str]:
        return {n for names in self.groups.values() for n in names}

    def resolve(self, model: nn.Module) -> dict[str, list[nn.Parameter]]:
        """Group -> the model's current parameter objects (DTensors once sharded)."""
        params = dict(model.named_parameters())
        return {group: [params[n] for n in names] for group, names in self.groups.items()}

    def set_trainable(self, model: nn.Module, groups: Iterable[str]) -> None:
        """Gradients for the named groups only (what ``model.set_trainable`` does, by name)."""
        groups = set(groups)
        unknown = groups - set(self.groups)
        if unknown:
            raise ValueError(f"unknown parameter groups {sorted(unknown)}; known: {', '.join(self.groups)}")
        wanted = {n for g in groups for n in self.groups[g]}
        for name, p in model.named_parameters():
            p.requires_grad_(name in wanted)


# ---- wrapping ----


def wrap_model(model: nn.Module, env: DistEnv, strategy: Strategy = "ddp") -> nn.Module:
    """The module the training step calls: DDP over several processes, the model itself otherwise
    (and under FSDP, which shards the model in place once: ``shard_model``).

    Re-wrap DDP after each change of what trains: it builds its gradient buckets from the
    parameters that require grad at wrap time. FSDP2 follows ``requires_grad`` of the sharded
    parameters at every gather, so it needs no re-wrap."""
    if not env.distributed or strategy == "fsdp":
        return model
    ids = [env.device.index] if env.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)


def _fsdp_units(model: nn.Module) -> list[nn.Module]:
    """Transformer blocks, then the encoders (bottom-up, as fully_shard must be applied).

    The decoder itself is no unit: the AudioLLM calls its input embeddings outside the decoder's
    forward (and ties them to the head), so they stay in the root unit, gathered for the whole
    step. Adapters stay in the root too (fusion reads their separator embeddings directly)."""
    blocks = [
        block
        for name, module in model.named_modules()
        if name.rsplit(".", 1)[-1] == TRANSFORMER_BLOCKS and isinstance(module, nn.ModuleList)
        for block in module
    ]
    encoders = [
        m for name in ("speech_encoder", "emotion_encoder") if isinstance(m := getattr(model, name, None), nn.Module)
    ]
    return blocks + encoders


def shard_model(
    model: nn.Module,
    env: DistEnv,
    names: ParamNames,
    *,
    param_dtype: torch.dtype | None = None,
    reshard_after_forward: bool = True,
) -> nn.Module:
    """Shard ``model`` in place with FSDP2 over all processes; returns it.

    ``param_dtype``: gather (and compute) in this dtype and reduce gradients in fp32; the shards
    keep their own dtype (the trainer passes bf16 on CUDA with ``precision: bf16``). The model may sit on the CPU: each unit is moved to ``env.device`` as it
    is sharded, so no process ever holds the whole model on the GPU."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard, register_fsdp_forward_method

    replaced = list(model.parameters())
    mesh = init_device_mesh(env.device.type, (env.world_size,))
    policy = MixedPrecisionPolicy(param_dtype=param_dtype, reduce_dtype=torch.float32 if param_dtype else None)
    for unit in _fsdp_units(model):
        fully_shard(unit, mesh=mesh, mp_policy=policy, reshard_after_forward=reshard_after_forward)
        unit._is_fsdp_managed_module = True  # transformers' generate then keeps processes in step (synced_gpus)
    fully_shard(model, mesh=mesh, mp_policy=policy, reshard_after_forward=reshard_after_forward)
    model._is_fsdp_managed_module = True
    if hasattr(model, "generate"):  # gather the root's weights around generate() as around forward()
        register_fsdp_forward_method(model, "generate")
    decoder = getattr(model, "decoder", None)
    if isinstance(decoder, nn.Module):
        decoder._is_fsdp_managed_module = True  # model.generate calls decoder.generate
    _lazy_init_all_trainable(model, names)
    _free_replaced(model, replaced)
    return model


def _free_replaced(model: nn.Module, replaced: list[nn.Parameter]) -> None:
    """Empty the parameter objects that sharding replaced. fully_shard moves each one whole to the
    device before copying out its shard; the model's own group lists (AudioLLM._groups) still
    hold them, which would keep a whole copy of every trainable weight on every device. Emptied,
    any code that still reads them fails instead of reading stale weights."""
    current = {id(p) for p in model.parameters()}
    for p in replaced:
        if id(p) not in current:
            p.data = torch.empty(0, dtype=p.dtype, device=p.device)


def _lazy_init_all_trainable(model: nn.Module, names: ParamNames) -> None:
    """Initialise FSDP's per-unit state while every group that may ever train requires grad.

    FSDP2 fixes each unit's gradient dtypes at its lazy init (first forward) from the parameters
    that require grad *then*; a unit frozen at that moment and trained in a later round of the
    alternating schedule would reduce bf16 gradients into fp32 shards and fail ("attempting to
    assign a gradient with dtype BFloat16 ...", reproduced on torch 2.13). There is no public
    call for this initialisation; the private one is what the first forward runs."""
    trainable = names.trainable()
    before = {n: p.requires_grad for n, p in model.named_parameters()}
    for n, p in model.named_parameters():
        p.requires_grad_(n in trainable or before[n])
    model._get_fsdp_state()._lazy_init()
    for n, p in model.named_parameters():
        p.requires_grad_(before[n])


def is_sharded(model: nn.Module) -> bool:
    from torch.distributed.fsdp import FSDPModule

    return isinstance(model, FSDPModule)


@contextlib.contextmanager
def gradient_sync(module: nn.Module, enabled: bool) -> Iterator[None]:
    """Accumulation micro-batches skip the gradient all-reduce (DDP) / reduce-scatter (FSDP)."""
    if enabled:
        yield
    elif hasattr(module, "no_sync"):  # DDP
        with module.no_sync():
            yield
    elif is_sharded(module):
        module.set_requires_gradient_sync(False)
        try:
            yield
        finally:
            module.set_requires_gradient_sync(True)
    else:
        yield


def full_tensor(t: torch.Tensor) -> torch.Tensor:
    """The whole tensor of a (possibly sharded) parameter, on the CPU. Collective for a DTensor:
    every process must call it, in the same order."""
    from torch.distributed.tensor import DTensor

    if isinstance(t, DTensor):
        t = t.full_tensor()
    return t.detach().cpu().contiguous()


def clip_grad_norm(params: list[nn.Parameter], max_norm: float) -> float:
    """``clip_grad_norm_`` over plain or sharded parameters (for shards the norm is a DTensor)."""
    norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
    return float(full_tensor(norm))
