"""``emoreason profile DATASET``: measure the acoustic profile of every utterance of a dataset.

Writes profiles.parquet, rejects.parquet, stats.json and summary.json under --out (see
pipeline/acoustic/compute.py). Rerunning resumes: utterances already measured are not read again.
Exits 0 when the dataset was profiled (rejects are data, not failures), 2 when it cannot be loaded.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field
from pydantic_settings import CliPositionalArg

from pipeline.acoustic.compute import SUMMARY_FILE, compute_profiles
from pipeline.config import AdapterOptions, adapter_options
from pipeline.datasets import DATASETS, load_dataset
from pipeline.labels import PROTOCOLS
from pipeline.rejects import reject_lines

# The same place `emoreason data` and `emoreason generate` look for them: runs/DATASET/profiles.
DEFAULT_RUNS = Path("runs")
PROFILES_DIR = "profiles"
# Profiles ignore labels, and speaker statistics are better the more of a speaker's utterances
# they see: profile every labelled utterance once, and let each protocol pick its subset.
PROFILE_PROTOCOL = "all"


class Args(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dataset: CliPositionalArg[str] = Field(description=f"which adapter to use: {', '.join(DATASETS)}")
    root: str | None = Field(None, description="where the dataset lives (the demo corpus is bundled)")
    protocol: str = Field(
        PROFILE_PROTOCOL,
        description=f"label protocol of the utterances to profile (default {PROFILE_PROTOCOL!r}: every labelled "
        f"utterance): {', '.join(PROTOCOLS)}",
    )
    options: AdapterOptions = adapter_options()
    out: Path | None = Field(None, description=f"output folder (default {DEFAULT_RUNS}/DATASET/{PROFILES_DIR})")
    workers: int = Field(
        default_factory=lambda: os.cpu_count() or 1, ge=1, description="processes measuring audio (default: all cores)"
    )


def run(args: Args) -> int:
    try:
        loaded = load_dataset(args.dataset, args.root, protocol=args.protocol, **args.options)
    except (ValueError, FileNotFoundError, NotADirectoryError) as err:
        print(f"emoreason profile: {err}", file=sys.stderr)
        return 2
    out = args.out or DEFAULT_RUNS / args.dataset / PROFILES_DIR
    utterances = loaded.utterances
    print(f"{args.dataset}: {len(utterances)} utterances ({len(loaded.rejects)} adapter rejects), writing to {out}")
    for line in reject_lines(loaded.rejects, "`emoreason list`"):
        print(line)
    start = time.perf_counter()
    result = compute_profiles(utterances, out, workers=args.workers, progress=sys.stderr.isatty())
    seconds = time.perf_counter() - start
    summary = result.summary()
    print(
        f"profiled {summary['profiles']} utterances in {seconds:.1f} s "
        f"({summary['measured_now']} measured now, {summary['cached']} from earlier runs)"
    )
    if result.no_audio:
        print(f"no_audio: {len(result.no_audio)} utterances have no audio and get no profile (not rejects)")
    if result.rejects:
        print(f"rejects: {json.dumps(summary['rejects'])} -> {out / 'rejects.parquet'}")
        for line in reject_lines(result.rejects, str(out / "rejects.parquet")):
            print(line)
    print(f"normalised by: {json.dumps(summary['basis'])}; flags: {json.dumps(summary['flags'])}")
    print(f"summary: {out / SUMMARY_FILE}")
    return 0
