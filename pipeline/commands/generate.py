"""``emoreason generate DATASET``: stage one, a teacher LLM writes rationales for a dataset.

    emoreason generate demo --out runs/demo                        # embedded model, CPU
    emoreason generate meld --root ../shared/data/meld -o splits=dev --limit 300 --styles elaborate
    emoreason generate ravdess --root DATA --profiles runs/ravdess/profiles --llm.backend openai \\
        --llm.model Qwen/Qwen2.5-7B-Instruct --llm.base-urls http://gpu1:8000/v1 --llm.base-urls http://gpu2:8000/v1

Every GenerateConfig field is a flag of the same name (nested ones dotted: ``--sampling.n 3``); a
``--config`` YAML file sets any of them, and flags override it.

Writes ``generations.parquet``, ``generate_rejects.parquet``, the request cache and the resolved
config (``generate.config.yaml``) under ``--out``. A rerun resumes from the cache and re-asks the
requests that failed. Exits 0 when every request got an answer (answers that do not parse are rows
with their reason, not failures), 1 when some requests failed (unless --allow-partial), and 2 with
a one-line message when the dataset, profiles or configuration cannot be used at all.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from pydantic import Field
from pydantic_settings import CliPositionalArg

from pipeline.config import AdapterOptions, adapter_options, load_config, write_resolved
from pipeline.datasets import DATASETS, load_dataset
from pipeline.generate import generate
from pipeline.generate_config import GenerateConfig
from pipeline.labels import PROTOCOLS

RESOLVED_CONFIG = "generate.config.yaml"
PROFILES_DIR = "profiles"  # where `emoreason profile` / `emoreason data` put them under the run folder


class Args(GenerateConfig):
    """Stage one's config, and where its utterances, profiles and outputs are."""

    dataset: CliPositionalArg[str] = Field(description=f"which adapter to use: {', '.join(DATASETS)}")
    root: str | None = Field(None, description="where the dataset lives (the demo corpus is bundled)")
    protocol: str | None = Field(None, description=f"label protocol: {', '.join(PROTOCOLS)}")
    options: AdapterOptions = adapter_options()
    out: str | None = Field(None, description="run folder (default: runs/DATASET)")
    config: str | None = Field(None, description="YAML file with GenerateConfig fields; flags override it")
    profiles: str | None = Field(
        None,
        description=f"acoustic profiles (folder or parquet); default: OUT/{PROFILES_DIR} or runs/profiles/DATASET, "
        "if present",
    )
    allow_partial: bool = Field(False, description="exit 0 even when some teacher requests failed")


def run(args: Args) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    out = Path(args.out or f"runs/{args.dataset}")
    # What the command line set of stage one's config; the YAML file fills in the rest.
    overrides = args.model_dump(include=set(GenerateConfig.model_fields), exclude_unset=True)
    try:
        cfg = load_config(GenerateConfig, args.config, overrides)
        result = load_dataset(args.dataset, args.root, args.protocol, **args.options)
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
