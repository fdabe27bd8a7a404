"""``emoreason train``: fine-tune the dual-encoder AudioLLM on a multitask corpus.

    emoreason train --config configs/tiny.yaml --corpus runs/demo/corpora --max-steps 200
    torchrun --standalone --nproc_per_node=8 -m model.commands.train --config configs/paper.yaml
    emoreason train --config configs/tiny.yaml --resume          # continue the run in --out
    emoreason train --config configs/tiny.yaml --schedule.mode joint --optim.lr 1e-4 --eval-split null

The config file's ``model:`` section builds the model, its ``train:`` section the trainer; every
TrainConfig field is a flag of the same name (nested ones dotted) that overrides it. The resolved
configs are written next to the run's outputs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pydantic import Field, model_validator

from model.train.config import TrainConfig
from pipeline.commands import ConfigError, add_config_arguments, parse_config


class Args(TrainConfig):
    """The trainer's config (the YAML file's ``train:`` section, then these flags), the model's file, resume."""

    config: str = Field(description="YAML with model: and train: sections (configs/*.yaml)")
    resume: bool = Field(False, description="continue from the latest checkpoint in --out")

    @model_validator(mode="after")
    def _batch_divisible(self) -> Args:
        # Replaces TrainConfig's check of the same name: the flags alone are half a config (the
        # YAML file holds the rest), and load_train_config checks the whole one.
        return self


def run(args: Args) -> int:
    import torch

    from model.train.build import build_model
    from model.train.config import load_train_config
    from model.train.data import CorpusError, load_corpus
    from model.train.distributed import PreflightError, close_distributed, init_distributed, require_process_group
    from model.train.safe_state import UnsafeStateError
    from model.train.trainer import NonFiniteLossError, train
    from pipeline.config import write_resolved

    try:
        # What the command line set; the config file's train: section fills in the rest.
        cfg = load_train_config(args.config, args.model_dump(exclude={"config", "resume"}, exclude_unset=True))
        if cfg.corpus is None:
            raise CorpusError("no corpus: set train.corpus in the config or pass --corpus")
        env = init_distributed(cfg.device)  # before loading anything big: a CUDA request fails here
        if cfg.distributed.strategy == "fsdp":
            require_process_group(env)  # ... and so does FSDP without torchrun
        examples = load_corpus(cfg.corpus, cfg.audio_root)
        torch.manual_seed(cfg.seed)  # randomly initialised adapters (and encoders) depend on it
        model, collate_fn, model_cfg = build_model(args.config)
    except (CorpusError, PreflightError, FileNotFoundError, ValueError) as err:
        print(f"emoreason train: {err}", file=sys.stderr)
        return 2
    out = Path(cfg.out)
    if env.is_main:
        write_resolved(cfg, out / "train.config.yaml")
        write_resolved(model_cfg, out / "model.config.yaml")
    try:
        result = train(cfg, model, collate_fn, examples, resume=args.resume, env=env)
    except (PreflightError, UnsafeStateError) as err:
        print(f"emoreason train: {err}", file=sys.stderr)
        return 2
    except NonFiniteLossError as err:
        print(f"emoreason train: {err}", file=sys.stderr)
        return 3
    finally:
        close_distributed()
    if env.is_main:
        print(f"done: {result.steps} steps; last checkpoint {result.last_checkpoint}; final model {out / 'final'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m model.commands.train`` (under torchrun): the same flags as ``emoreason train``."""
    parser = argparse.ArgumentParser(
        prog="python -m model.commands.train",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    source = add_config_arguments(parser, Args)
    try:
        args = parse_config(Args, source, parser.parse_args(argv))
    except ConfigError as err:
        print(f"emoreason train: {err}", file=sys.stderr)
        return 2
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
