"""``emoreason data``: the whole data pipeline, each step resumable and skipped when up to date.

    emoreason data                                   # demo corpus, embedded teacher, CPU
    emoreason data --dataset ravdess --root ../shared/data/ravdess16k --out runs/ravdess
    emoreason data --dataset meld --root ../shared/data/meld -o splits=[dev] --generate.limit 300
    emoreason data --config configs/data.yaml --generate.llm.backend openai \\
        --generate.llm.base-urls http://gpu1:8000/v1 --generate.llm.model M

Exits 1 with a one-line summary when teacher requests failed (the steps after stage one do not
run; rerunning the command re-asks exactly the failed requests), unless --allow-partial.

Every DataConfig field (see pipeline/data_run.py) is a flag of the same name, nested ones dotted
(``--generate.sampling.n 3``, ``--verify.blind``, ``--no-hf-export``); a ``--config`` YAML file sets
any of them, and flags override it. Stage one's defaults depend on the teacher (load_data_config).
The resolved config is written to OUT/data.config.yaml.
"""

from __future__ import annotations

import logging
import sys

from pydantic import Field, ValidationError

from pipeline.data_run import DataConfig, load_data_config, run_data
from pipeline.splits import LeakageError, SplitError


class Args(DataConfig):
    config: str | None = Field(None, description="YAML file with DataConfig fields; flags override it")


def run(args: Args) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # What the command line set; the YAML file and the teacher's defaults fill in the rest.
    overrides = args.model_dump(exclude={"config"}, exclude_unset=True)
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
