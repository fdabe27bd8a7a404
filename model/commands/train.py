"""``emoreason train``: fine-tune the dual-encoder AudioLLM on a multitask corpus.

    emoreason train --config configs/tiny.yaml --corpus runs/demo/corpora --max-steps 200
    torchrun --standalone --nproc_per_node=8 -m model.commands.train --config configs/paper.yaml
    emoreason train --config configs/tiny.yaml --resume          # continue the run in --out

The config file's ``model:`` section builds the model, its ``train:`` section the trainer; flags
override single values (``--set optim.lr=1e-4`` for any other). The resolved configs are written
next to the run's outputs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="YAML with model: and train: sections (configs/*.yaml)")
    parser.add_argument("--corpus", help="corpus folder or parquet (train.corpus)")
    parser.add_argument(
        "--audio-root", action="append", metavar="[DATASET=]PATH",
        help="the folder that holds the corpus's audio on this machine, when the dataset moved (train.audio_root)",
    )  # fmt: skip
    parser.add_argument("--out", help="run folder: logs, checkpoints, final model (train.out)")
    parser.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in --out")
    parser.add_argument("--max-steps", type=int, help="stop after this many optimizer steps")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--mode", choices=["alternating", "joint", "weighted"], help="task schedule (schedule.mode)")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--global-batch-size", type=int)
    parser.add_argument("--micro-batch-size", type=int)
    parser.add_argument("--lr", type=float, help="base learning rate (optim.lr)")
    parser.add_argument("--eval-every", type=int)
    parser.add_argument("--save-every", type=int)
    parser.add_argument("--num-workers", type=int)
    parser.add_argument("--seed", type=int)
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any train: key, dotted, YAML value (e.g. --set schedule.round_length=4)",
    )


def overrides(args: argparse.Namespace) -> dict:
    """Flags given on the command line (None: not given)."""
    return {
        "corpus": args.corpus,
        "audio_root": args.audio_root,
        "out": args.out,
        "max_steps": args.max_steps,
        "epochs": args.epochs,
        "schedule.mode": args.mode,
        "device": args.device,
        "global_batch_size": args.global_batch_size,
        "micro_batch_size": args.micro_batch_size,
        "optim.lr": args.lr,
        "eval_every": args.eval_every,
        "save_every": args.save_every,
        "num_workers": args.num_workers,
        "seed": args.seed,
    }


def set_values(items: list[str]) -> dict:
    """``--set KEY=VALUE`` pairs, values parsed as YAML (``null`` sets None)."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--set expects KEY=VALUE, got {item!r}")
        out[key] = yaml.safe_load(value)
    return out


def run(args: argparse.Namespace) -> int:
    import torch

    from model.train.build import build_model
    from model.train.config import load_train_config
    from model.train.data import CorpusError, load_corpus
    from model.train.distributed import PreflightError, close_distributed, init_distributed, require_process_group
    from model.train.safe_state import UnsafeStateError
    from model.train.trainer import NonFiniteLossError, train
    from pipeline.config import write_resolved

    try:
        cfg = load_train_config(args.config, overrides(args), set_values(args.set))
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
    parser = argparse.ArgumentParser(prog="python -m model.commands.train", description=__doc__.split("\n")[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
