"""``emoreason data``: the whole data pipeline, each step resumable and skipped when up to date.

    emoreason data                                   # demo corpus, embedded teacher, CPU
    emoreason data --dataset ravdess --root ../shared/data/ravdess16k --out runs/ravdess
    emoreason data --dataset meld --root ../shared/data/meld -o splits=[dev] --limit 300
    emoreason data --config configs/data.yaml --backend openai --base-url http://gpu1:8000/v1 --model M

Exits 1 with a one-line summary when teacher requests failed (the steps after stage one do not
run; rerunning the command re-asks exactly the failed requests), unless --allow-partial.

A YAML file holds any DataConfig fields (see pipeline/data_run.py); flags override it; stage one's
defaults depend on the teacher (load_data_config). The resolved config is written to OUT/data.config.yaml.
"""

from __future__ import annotations

import argparse
import logging
import sys

from pydantic import ValidationError

from pipeline.commands import adapter_option
from pipeline.data_run import load_data_config, run_data
from pipeline.datasets import DATASETS
from pipeline.generate_config import STYLE_TEMPLATES
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
    parser.add_argument("--concurrency", type=int, help="most requests in flight (openai backend; default 64)")
    parser.add_argument(
        "--timeout", type=float, help="seconds per attempt of one request (openai backend; default 120)"
    )
    parser.add_argument("--seed", type=int, help="sampling seed sent with every request (default: none)")
    parser.add_argument("--style", action="append", choices=sorted(STYLE_TEMPLATES), help="target style (repeatable)")
    parser.add_argument("--n", type=int, help="teacher candidates per utterance")
    parser.add_argument("--max-tokens", type=int, help="teacher answer length limit in tokens")
    parser.add_argument("--batch-size", type=int, help="requests per generate() call (transformers, vllm)")
    parser.add_argument("--limit", type=int, help="only the first N utterances")
    parser.add_argument("--blind", action="store_true", default=None, help="label-blind self-consistency check")
    parser.add_argument("--no-hf", action="store_true", help="skip the Hugging Face export")
    parser.add_argument(
        "--allow-partial",
        action="store_true",
        default=None,
        help="when teacher requests fail, go on with the answers there are and exit 0 (default: stop, exit 1)",
    )


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
        "generate.llm.concurrency": args.concurrency,
        "generate.llm.timeout_s": args.timeout,
        "generate.sampling.seed": args.seed,
        "generate.styles": args.style,
        "generate.sampling.n": args.n,
        "generate.sampling.max_tokens": args.max_tokens,
        "generate.llm.batch_size": args.batch_size,
        "generate.limit": args.limit,
        "verify.blind": args.blind,
        "hf_export": False if args.no_hf else None,
        "allow_partial": args.allow_partial,
    }
    try:
        cfg = load_data_config(args.config, overrides)
    except (ValidationError, ValueError, OSError) as err:
        print(f"emoreason data: bad configuration: {err}", file=sys.stderr)
        return 2
    try:
        run = run_data(cfg)
    except (SplitError, LeakageError) as err:  # raised by the adapters step, before any expensive step ran
        print(f"emoreason data: {err}", file=sys.stderr)
        return 2
    if run.failure:
        if cfg.allow_partial:
            print(f"emoreason data: partial results (--allow-partial): {run.failure}", file=sys.stderr)
            return 0
        print(f"emoreason data: {run.failure}, or pass --allow-partial to go on without them", file=sys.stderr)
        return 1
    return 0
