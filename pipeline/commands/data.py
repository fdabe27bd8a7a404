"""``emoreason data``: the whole data pipeline, each step resumable and skipped when up to date.

    emoreason data                                   # demo corpus, embedded teacher, CPU
    emoreason data --dataset ravdess --root ../shared/data/ravdess16k --out runs/ravdess
    emoreason data --dataset meld --root ../shared/data/meld -o splits=[dev] --limit 300
    emoreason data --config configs/data.yaml --backend openai --base-url http://gpu1:8000/v1 --model M

A YAML file holds any DataConfig fields (see pipeline/data_run.py); flags override it. The
resolved config is written to OUT/data.config.yaml.
"""

from __future__ import annotations

import argparse
import logging
import sys

from pydantic import ValidationError

from pipeline.commands import adapter_option
from pipeline.config import load_config
from pipeline.data_run import DataConfig, run_data
from pipeline.datasets import DATASETS
from pipeline.generate import STYLE_TEMPLATES
from pipeline.splits import LeakageError, SplitError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", choices=list(DATASETS), help="which adapter (default: demo)")
    parser.add_argument("--root", help="where the dataset lives (the demo corpus is bundled)")
    parser.add_argument("--protocol", help="label protocol (default: the dataset's usual one)")
    parser.add_argument("-o", "--option", action="append", type=adapter_option, default=[], metavar="KEY=VALUE")
    parser.add_argument("--out", help="run folder (default: runs/DATASET)")
    parser.add_argument("--config", help="YAML file with DataConfig fields")
    parser.add_argument("--workers", type=int, help="processes for the acoustic profile")
    parser.add_argument("--backend", choices=["transformers", "openai", "vllm"], help="teacher LLM backend")
    parser.add_argument("--model", help="teacher: hub id, local path, served name, or 'embedded'")
    parser.add_argument("--base-url", action="append", help="OpenAI-compatible endpoint .../v1 (repeatable)")
    parser.add_argument("--style", action="append", choices=sorted(STYLE_TEMPLATES), help="target style (repeatable)")
    parser.add_argument("--n", type=int, help="teacher candidates per utterance")
    parser.add_argument("--max-tokens", type=int, help="teacher answer length limit in tokens")
    parser.add_argument("--batch-size", type=int, help="requests per generate() call (transformers, vllm)")
    parser.add_argument("--limit", type=int, help="only the first N utterances")
    parser.add_argument("--blind", action="store_true", default=None, help="label-blind self-consistency check")
    parser.add_argument("--no-hf", action="store_true", help="skip the Hugging Face export")


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    dataset = args.dataset or "demo"
    overrides = {
        "dataset": args.dataset,
        "root": args.root,
        "protocol": args.protocol,
        "options": dict(args.option) or None,
        "out": args.out or (None if args.config else f"runs/{dataset}"),
        "workers": args.workers,
        "generate.llm.backend": args.backend,
        "generate.llm.model": args.model,
        "generate.llm.base_urls": args.base_url,
        "generate.styles": args.style,
        "generate.sampling.n": args.n,
        "generate.sampling.max_tokens": args.max_tokens,
        "generate.llm.batch_size": args.batch_size,
        "generate.limit": args.limit,
        "verify.blind": args.blind,
        "hf_export": False if args.no_hf else None,
    }
    try:
        cfg = load_config(DataConfig, args.config, overrides)
    except (ValidationError, ValueError, OSError) as err:
        print(f"emoreason data: bad configuration: {err}", file=sys.stderr)
        return 2
    try:
        run_data(cfg)
    except (SplitError, LeakageError) as err:  # raised by the adapters step, before any expensive step ran
        print(f"emoreason data: {err}", file=sys.stderr)
        return 2
    return 0
