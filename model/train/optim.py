"""AdamW with one learning rate per kind of parameter, and linear warmup + cosine decay.

Encoders hold pretrained weights and usually want a smaller rate than the randomly initialised
adapters; the LoRA sits in between. Biases, norms and other 1-D tensors get no weight decay.
Parameters frozen in the current round simply have no gradient: AdamW skips them (no update, no
decay, no moment change), so one optimizer serves every round of the alternating schedule.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from model.train.config import OptimConfig

GROUP_KIND = {
    "speech_encoder": "encoder",
    "emotion_encoder": "encoder",
    "speech_adapter": "adapter",
    "emotion_adapter": "adapter",
    "lora": "lora",
}


def group_lr(cfg: OptimConfig, group: str) -> float:
    kind = GROUP_KIND[group]
    specific = {"encoder": cfg.encoder_lr, "adapter": cfg.adapter_lr, "lora": cfg.lora_lr}[kind]
    return cfg.lr if specific is None else specific


def build_optimizer(groups: dict[str, list[nn.Parameter]], cfg: OptimConfig) -> torch.optim.AdamW:
    unknown = set(groups) - set(GROUP_KIND)
    if unknown:
        raise ValueError(f"unknown parameter group(s) {sorted(unknown)}; expected {sorted(GROUP_KIND)}")
    param_groups, seen = [], set()
    for name in GROUP_KIND:  # fixed order: optimizer state lines up across runs
        params = [p for p in groups.get(name, []) if id(p) not in seen]
        seen.update(id(p) for p in params)
        decay = [p for p in params if p.ndim >= 2]
        no_decay = [p for p in params if p.ndim < 2]
        lr = group_lr(cfg, name)
        for suffix, ps, wd in (("decay", decay, cfg.weight_decay), ("no_decay", no_decay, 0.0)):
            if ps:
                param_groups.append({"params": ps, "lr": lr, "weight_decay": wd, "name": f"{name}/{suffix}"})
    if not param_groups:
        raise ValueError("the model has no trainable parameter in any group")
    return torch.optim.AdamW(param_groups, betas=cfg.betas, eps=cfg.eps)


def warmup_cosine(step: int, total: int, warmup: int, min_ratio: float) -> float:
    """Multiplier of the base LR at ``step``: linear from 0 over ``warmup``, then cosine to ``min_ratio``."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def build_lr_scheduler(
    optimizer: torch.optim.Optimizer, cfg: OptimConfig, total_steps: int
) -> torch.optim.lr_scheduler.LambdaLR:
    warmup = cfg.warmup_steps if cfg.warmup_steps is not None else round(cfg.warmup_ratio * total_steps)
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: warmup_cosine(step, total_steps, warmup, cfg.min_lr_ratio)
    )
