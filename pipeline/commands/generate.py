"""``emoreason generate DATASET``: stage one, a teacher LLM writes rationales for a dataset.

    emoreason generate demo --out runs/demo                        # embedded model, CPU
    emoreason generate meld --root ../shared/data/meld -o splits=dev --limit 300 --style elaborate
    emoreason generate ravdess --root DATA --profiles runs/ravdess/profiles --backend openai \\
        --model Qwen/Qwen2.5-7B-Instruct --base-url http://gpu1:8000/v1 --base-url http://gpu2:8000/v1

Writes ``generations.parquet``, ``generate_rejects.parquet``, the request cache and the resolved
config (``generate.config.yaml``) under ``--out``. A rerun resumes from the cache and re-asks the
requests that failed. Exits 0 when every request got an answer (answers that do not parse are rows
with their reason, not failures), 1 when some requests failed (unless --allow-partial), and 2 with
a one-line message when the dataset, profiles or configuration cannot be used at all.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from pipeline.commands import adapter_option
from pipeline.config import load_config, write_resolved
from pipeline.datasets import DATASETS, load_dataset
from pipeline.generate import generate
from pipeline.generate_config import STYLE_TEMPLATES, GenerateConfig
from pipeline.labels import PROTOCOLS

RESOLVED_CONFIG = "generate.config.yaml"
PROFILES_DIR = "profiles"  # where `emoreason profile` / `emoreason data` put them under the run folder


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dataset", choices=list(DATASETS), help="which adapter to use")
    parser.add_argument("--root", help="where the dataset lives (the demo corpus is bundled)")
    parser.add_argument("--protocol", choices=list(PROTOCOLS), help="label protocol (default: the dataset's usual one)")
    parser.add_argument(
        "-o", "--option", action="append", type=adapter_option, default=[], metavar="KEY=VALUE", help="adapter option"
    )
    parser.add_argument("--out", help="run folder (default: runs/DATASET)")
    parser.add_argument("--config", help="YAML file with GenerateConfig fields; flags override it")
    parser.add_argument("--backend", choices=["transformers", "openai", "vllm"], help="LLM backend")
    parser.add_argument("--model", help="hub id, local path or served model name ('embedded': SmolLM2-135M)")
    parser.add_argument("--base-url", action="append", help="OpenAI-compatible endpoint .../v1 (repeatable)")
    parser.add_argument("--concurrency", type=int, help="most requests in flight (openai backend)")
    parser.add_argument("--timeout", type=float, help="seconds per attempt of one request (openai backend)")
    parser.add_argument("--seed", type=int, help="sampling seed sent with every request (default: none)")
    parser.add_argument(
        "--style",
        action="append",
        choices=sorted(STYLE_TEMPLATES),
        help="target style (repeatable; default: acoustic with profiles, else elaborate)",
    )
    parser.add_argument("--n", type=int, help="candidates per utterance and style")
    parser.add_argument("--temperature", type=float)
    parser.add_argument("--limit", type=int, help="only the first N utterances")
    parser.add_argument(
        "--profiles",
        help=f"acoustic profiles (folder or parquet); default: OUT/{PROFILES_DIR} or runs/profiles/DATASET, if present",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--allow-partial", action="store_true", help="exit 0 even when some teacher requests failed")


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    out = Path(args.out or f"runs/{args.dataset}")
    overrides = {
        "llm.backend": args.backend,
        "llm.model": args.model,
        "llm.base_urls": args.base_url,
        "llm.concurrency": args.concurrency,
        "llm.timeout_s": args.timeout,
        "sampling.seed": args.seed,
        "styles": args.style,
        "sampling.n": args.n,
        "sampling.temperature": args.temperature,
        "limit": args.limit,
        "progress": False if args.no_progress else None,
    }
    try:
        cfg = load_config(GenerateConfig, args.config, overrides)
        result = load_dataset(args.dataset, args.root, args.protocol, **dict(args.option))
        profiles = _profiles(args.profiles, [out / PROFILES_DIR, Path("runs/profiles") / args.dataset])
    except (OSError, ValueError) as err:
        print(f"emoreason generate: {err}", file=sys.stderr)
        return 2
    utterances = result.utterances[: cfg.limit]
    print(
        f"{args.dataset}: {len(utterances)} utterances ({len(result.rejects)} adapter rejects), "
        f"profiles: {len(profiles) if profiles is not None else 'none'}",
        flush=True,
    )
    write_resolved(cfg, out / RESOLVED_CONFIG)
    run = generate(utterances, profiles, cfg, out)
    reasons = dict(run.reasons)
    parse_failures, request_failures = reasons.pop("invalid_answer", 0), reasons.pop("request_failed", 0)
    print(
        f"answers: {run.answers} of {len(run.records)} candidates\n"
        f"parse failures: {parse_failures}\n"
        f"request failures: {request_failures}\n"
        f"input errors: {sum(reasons.values())}{f' {reasons}' if reasons else ''}\n"
        f"requests sent: {run.requests_sent}; answered from the cache: {run.cache_hits}\n"
        f"time: {run.elapsed_s:.1f} s\n"
        f"wrote {run.path} and {run.rejects_path}"
    )
    failed = run.failed_requests()
    if failed and not args.allow_partial:
        why = "; ".join(f"{reason}: {count}" for reason, count in failed.most_common(3))
        print(
            f"emoreason generate: {sum(failed.values())} of {run.requests} requests failed ({why}); rerun the same "
            "command to re-ask exactly those, or pass --allow-partial",
            file=sys.stderr,
        )
        return 1
    return 0


def _profiles(path: str | None, defaults: list[Path]) -> dict | None:
    """Profiles from ``path``, else from the first default folder that exists, else None (no audio)."""
    if path is None:
        path = next((d for d in defaults if d.is_dir()), None)
        if path is None:
            return None
    from pipeline.acoustic import load_profiles  # parselmouth and numpy only when profiles are used

    # An empty table is what `emoreason data` writes for a dataset without audio: no profiles.
    return load_profiles(path) or None
