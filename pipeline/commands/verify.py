"""``emoreason verify GENERATIONS.parquet --dataset D``: stage two, verdicts for every rationale.

    emoreason verify runs/demo/generations.parquet --dataset demo --profiles runs/demo/profiles
    emoreason verify runs/meld/generations.parquet --dataset meld --root ../shared/data/meld \\
        --out runs/meld/verified.parquet
    emoreason verify runs/ravdess/generations.parquet --dataset ravdess --root DATA \\
        --profiles runs/ravdess/profiles --blind-answers runs/ravdess/blind.parquet

Writes ``verified.parquet`` (every record, ``accepted``, ``reasons``, ``checks``, ``score``,
``selected``; sorted by accepted, dataset, emotion), ``verified.parquet.json`` (counts per
check and the resolved config) and ``verify.config.yaml``. Exits 0 when the run completes
(rejected rationales are rows with reasons, not failures) and 2 with a one-line message when
the inputs cannot be used at all.

Every VerifyConfig field is a flag of the same name (``--judge``, ``--settings.max-words 80``); a
``--config`` YAML file sets any of them, and flags override it.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import CliPositionalArg

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


class Args(VerifyConfig):
    """Stage two's config, and where the generations, the dataset and the outputs are."""

    generations: CliPositionalArg[str] = Field(description="stage-one parquet (generations.parquet)")
    dataset: str = Field(description=f"the dataset it was generated from: {', '.join(DATASETS)}")
    root: str | None = Field(None, description="where the dataset lives (the demo corpus is bundled)")
    protocol: str | None = Field(None, description=f"label protocol: {', '.join(PROTOCOLS)}")
    profiles: str | None = Field(
        None, description=f"acoustic profiles (folder or parquet); default: {PROFILES_DIR}/ beside the generations"
    )
    out: str | None = Field(None, description="output parquet (default: verified.parquet beside the generations)")
    config: str | None = Field(None, description="YAML file with VerifyConfig fields; flags override it")
    blind_answers: str | None = Field(
        None, description="label-blind stage-one rows (blind.parquet); turns on blind_consistency"
    )
    relevance_table: str | None = Field(
        None,
        description=f"relevance table (relevance.json); default: {RELEVANCE_FILE} beside the generations, "
        "else fitted from the dataset's training split and the profiles",
    )
    skip: list[str] = Field(
        default_factory=list, description=f"do not run this check (repeatable): {', '.join(CHECK_NAMES)}"
    )

    @field_validator("skip")
    @classmethod
    def _known_skips(cls, value: list[str]) -> list[str]:
        unknown = [name for name in value if name not in CHECK_NAMES]
        if unknown:
            raise ValueError(f"no check named {', '.join(unknown)}; the checks: {', '.join(CHECK_NAMES)}")
        return value


def run(args: Args) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    generations = Path(args.generations)
    if not generations.is_file():
        print(f"emoreason verify: no stage-one parquet at {generations}", file=sys.stderr)
        return 2
    out = Path(args.out) if args.out else generations.with_name("verified.parquet")
    try:
        # What the command line set of stage two's config; the YAML file fills in the rest.
        overrides = args.model_dump(include=set(VerifyConfig.model_fields), exclude_unset=True)
        if args.blind_answers:
            overrides["blind"] = True
        cfg = load_config(VerifyConfig, args.config, overrides)
        if args.skip:
            cfg = cfg.model_copy(update={"checks": [c for c in cfg.checks if c not in args.skip]})
            cfg = VerifyConfig.model_validate(cfg.model_dump())
        dataset = load_dataset(args.dataset, args.root, args.protocol)
        utterances = {u.id: u for u in dataset.utterances}
        profiles = _profiles(args, generations)
        blind = blind_answers(args.blind_answers, cfg.blind_style) if args.blind_answers else None
        table_path = Path(args.relevance_table) if args.relevance_table else generations.parent / RELEVANCE_FILE
        relevance = load_relevance(table_path) if args.relevance_table or table_path.is_file() else None
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


def _profiles(args: Args, generations: Path):
    from pipeline.acoustic.profile import load_profiles

    if args.profiles:
        return load_profiles(args.profiles)
    default = generations.parent / PROFILES_DIR
    return load_profiles(default) if default.exists() else None
