"""``TrainConfig``: the ``train:`` section of a config file (the ``model:`` section belongs to the model).

    cfg = load_train_config("configs/tiny.yaml", {"max_steps": 50, "schedule.mode": "joint"})

Defaults live here; the YAML file and CLI flags override them; the resolved config is written
next to the run's outputs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from model.schedule import ScheduleConfig
from pipeline.config import apply_overrides
from pipeline.records import Task


class OptimConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    lr: float = Field(5e-5, gt=0, description="the paper's AdamW learning rate; used for every group left unset")
    encoder_lr: float | None = Field(None, description="speech and emotion encoders (fine-tuned pretrained weights)")
    adapter_lr: float | None = Field(None, description="adapters (randomly initialised MLPs)")
    lora_lr: float | None = None
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    warmup_steps: int | None = Field(None, ge=0, description="overrides warmup_ratio")
    warmup_ratio: float = Field(0.03, ge=0, le=1)
    min_lr_ratio: float = Field(0.1, ge=0, le=1, description="cosine decays to lr * min_lr_ratio")
    grad_clip: float = Field(1.0, gt=0, description="max global grad norm")


class DistributedConfig(BaseModel):
    """How several processes (torchrun) share the model; one process ignores ``ddp``."""

    model_config = ConfigDict(extra="forbid")

    strategy: Literal["ddp", "fsdp"] = Field(
        "ddp",
        description="ddp: each process holds the whole model; fsdp: FSDP2 shards weights, gradients and AdamW "
        "state over the processes (for models that don't fit one GPU; needs torchrun)",
    )
    reshard_after_forward: bool = Field(
        True,
        description="fsdp: free each unit's gathered weights after its forward and gather again for backward "
        "(least memory); false keeps them until backward (one all-gather less per unit and step)",
    )


class TrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    corpus: str | None = Field(None, description="corpus folder (parquet of pipeline.records.TrainingExample) or file")
    audio_root: list[str] = Field(
        default_factory=list,
        description="[DATASET=]PATH: where a dataset's audio lives on this machine, when it is not where the "
        "corpus was built (pipeline.audio_roots); the bundled demo corpus needs none",
    )
    out: str = "runs/train"
    train_split: str = "train"
    eval_split: str | None = Field("dev", description="held-out split for evaluation; None: no evaluation")
    tasks: list[Task] | None = Field(None, description="train only these tasks (default: every task in the corpus)")

    device: Literal["auto", "cpu", "cuda"] = "auto"
    precision: Literal["bf16", "fp32"] = Field("bf16", description="bf16 autocast on CUDA; CPU: see cpu_bf16")
    cpu_bf16: bool = Field(
        False,
        description="with precision bf16, autocast on CPU too: ~1.6x faster steps on CPUs with AMX/AVX512-BF16 "
        "(docs/benchmarks.md), slower on CPUs without them; weights and optimizer state stay fp32",
    )
    gradient_checkpointing: bool = False

    global_batch_size: int = Field(48, ge=1, description="examples per optimizer step over all processes")
    micro_batch_size: int = Field(8, ge=1, description="examples per forward pass on one process")
    epochs: int = Field(5, ge=1)
    max_steps: int | None = Field(None, ge=1, description="stop after this many optimizer steps")
    schedule: ScheduleConfig = ScheduleConfig()
    optim: OptimConfig = OptimConfig()
    distributed: DistributedConfig = DistributedConfig()
    seed: int = 0

    length_grouping: bool = True
    input_norm_clips: int = Field(256, ge=1, description="training clips the adapters' input statistics are fitted on")
    group_batches: int = Field(50, ge=1, description="length grouping sorts within windows of this many batches")
    num_workers: int = Field(4, ge=0, description="DataLoader worker processes (audio decode off the main process)")
    prefetch_factor: int = Field(4, ge=1)

    log_every: int = Field(10, ge=1)
    eval_every: int = Field(500, ge=1)
    eval_max_examples: int = Field(400, ge=1, description="per task, for loss; also caps generation")
    eval_max_new_tokens: int = Field(48, ge=1)
    save_every: int = Field(500, ge=1)
    keep_last: int = Field(3, ge=1)
    tensorboard: bool = True
    progress: bool = True

    @model_validator(mode="after")
    def _batch_divisible(self) -> TrainConfig:
        if self.global_batch_size % self.micro_batch_size:
            raise ValueError(
                f"global_batch_size {self.global_batch_size} is not a multiple of micro_batch_size "
                f"{self.micro_batch_size}"
            )
        return self

    def accumulation_steps(self, world_size: int) -> int:
        per_rank, rest = divmod(self.global_batch_size, world_size * self.micro_batch_size)
        if rest or per_rank == 0:
            raise ValueError(
                f"global_batch_size {self.global_batch_size} must be a multiple of micro_batch_size "
                f"{self.micro_batch_size} x {world_size} process(es)"
            )
        return per_rank


def load_train_config(path: str | Path | None, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """The ``train:`` section of ``path`` (other sections are ignored), then ``overrides``: dotted
    keys or a nested tree (what the command line set), where None sets None (e.g. no eval split)."""
    tree: dict[str, Any] = {}
    if path is not None:
        loaded = yaml.safe_load(Path(path).read_text()) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"{path}: expected a mapping at the top level")
        tree = dict(loaded.get("train") or {})
    return TrainConfig.model_validate(apply_overrides(tree, overrides or {}))
