"""``emoreason verify GENERATIONS.parquet --dataset D``: stage two, verdicts for every rationale.

    emoreason verify runs/demo/generations.parquet --dataset demo --profiles runs/demo/profiles
    emoreason verify runs/meld/generations.parquet --dataset meld --root ../shared/data/meld \\
        --out runs/meld/verified.parquet
    emoreason verify runs/ravdess/generations.parquet --dataset ravdess --root DATA \\
        --profiles runs/ravdess/profiles --blind runs/ravdess/blind.parquet

Writes ``verified.parquet`` (every record, ``accepted``, ``reasons``, ``checks``, ``score``,
``selected``; sorted by accepted, dataset, emotion), ``verified.parquet.json`` (counts per
check and the resolved config) and ``verify.config.yaml``. Exits 0 when the run completes
(rejected rationales are rows with reasons, not failures) and 2 with a one-line message when
the inputs cannot be used at all.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from pipeline.checks.registry import CHECK_NAMES
from pipeline.config import load_config, write_resolved
from pipeline.datasets import DATASETS, load_dataset
from pipeline.labels import PROTOCOLS
from pipeline.relevance import RELEVANCE_FILE, load_relevance
from pipeline.verify import VerifyConfig
from pipeline.verify_file import blind_answers, verify_file

RESOLVED_CONFIG = "verify.config.yaml"
PROFILES_DIR = "profiles"  # where `emoreason profile` / `emoreason data` put them under the run folder
log = logging.getLogger("emoreason.verify")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("generations", help="stage-one parquet (generations.parquet)")
    parser.add_argument("--dataset", required=True, choices=list(DATASETS), help="the dataset it was generated from")
    parser.add_argument("--root", help="where the dataset lives (the demo corpus is bundled)")
    parser.add_argument("--protocol", choices=list(PROTOCOLS), help="label protocol (default: the dataset's usual one)")
    parser.add_argument(
        "--profiles",
        help=f"acoustic profiles (folder or parquet); default: {PROFILES_DIR}/ beside the generations, if present",
    )
    parser.add_argument("--out", help="output parquet (default: verified.parquet beside the generations)")
    parser.add_argument("--config", help="YAML file with VerifyConfig fields; flags override it")
    parser.add_argument(
        "--blind",
        metavar="PARQUET",
        help="label-blind stage-one rows (blind.parquet); turns on blind_consistency",
    )
    parser.add_argument(
        "--relevance",
        help=f"relevance table (relevance.json); default: {RELEVANCE_FILE} beside the generations, "
        "else fitted from the dataset's training split and the profiles",
    )
    parser.add_argument(
        "--judge", action="store_true", help="run the LLM judge's Relevance check (judge_with in --config sets the LLM)"
    )
    parser.add_argument(
        "--skip", action="append", choices=CHECK_NAMES, default=[], help="do not run this check (repeatable)"
    )


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    generations = Path(args.generations)
    if not generations.is_file():
        print(f"emoreason verify: no stage-one parquet at {generations}", file=sys.stderr)
        return 2
    out = Path(args.out) if args.out else generations.with_name("verified.parquet")
    try:
        overrides = {"blind": True if args.blind else None, "judge": True if args.judge else None}
        cfg = load_config(VerifyConfig, args.config, overrides)
        if args.skip:
            cfg = cfg.model_copy(update={"checks": [c for c in cfg.checks if c not in args.skip]})
            cfg = VerifyConfig.model_validate(cfg.model_dump())
        dataset = load_dataset(args.dataset, args.root, args.protocol)
        utterances = {u.id: u for u in dataset.utterances}
        profiles = _profiles(args, generations)
        blind = blind_answers(args.blind, cfg.blind_style) if args.blind else None
        table_path = Path(args.relevance) if args.relevance else generations.parent / RELEVANCE_FILE
        relevance = load_relevance(table_path) if args.relevance or table_path.is_file() else None
    except (OSError, ValueError) as error:
        print(f"emoreason verify: {error}", file=sys.stderr)
        return 2
    log.info(
        "%d utterances of %s, %s profiles%s",
        len(utterances),
        args.dataset,
        len(profiles) if profiles is not None else "no",
        f", {len(blind)} label-blind answers" if blind is not None else "",
    )
    write_resolved(cfg, out.with_name(RESOLVED_CONFIG))
    try:
        stats = verify_file(generations, utterances, profiles, cfg, blind, out_path=out, relevance=relevance)
    except ValueError as error:
        print(f"emoreason verify: {error}", file=sys.stderr)
        return 2
    print(stats.summary())
    if stats.unknown_utterances:
        print(
            f"warning: {stats.unknown_utterances} utterance id(s) of the generations are not in {args.dataset} "
            "(wrong --dataset, --root or --protocol?)",
            file=sys.stderr,
        )
    print(f"wrote {out}")
    return 0


def _profiles(args: argparse.Namespace, generations: Path):
    from pipeline.acoustic.profile import load_profiles

    if args.profiles:
        return load_profiles(args.profiles)
    default = generations.parent / PROFILES_DIR
    return load_profiles(default) if default.exists() else None
