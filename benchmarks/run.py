"""`make bench` / `emoreason bench`: run every benchmark module, print one table, write JSON.

A benchmark module is ``benchmarks/bench_<topic>.py`` with ``run(quick: bool) -> list[Result]``.
Targets are reported, never asserted: benchmarks are not tests.
"""

from __future__ import annotations

import importlib
import json
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from pydantic import BaseModel, ConfigDict, Field
from pydantic_settings import CliPositionalArg

HERE = Path(__file__).parent


@dataclass
class Result:
    benchmark: str  # e.g. "acoustic profile"
    metric: str  # e.g. "speed"
    value: float
    unit: str  # e.g. "x real time"
    target: str = ""  # e.g. ">= 150"; empty when there is none
    note: str = ""  # conditions: data, cores, sizes


def available() -> list[str]:
    return sorted(p.stem.removeprefix("bench_") for p in HERE.glob("bench_*.py"))


class Args(BaseModel):
    model_config = ConfigDict(extra="forbid")

    names: CliPositionalArg[list[str]] = Field(
        default_factory=list, description=f"benchmarks to run (default: all): {', '.join(available())}"
    )
    quick: bool = Field(False, description="smaller sizes, for a smoke run")
    # `json` would shadow BaseModel.json: the field has another name, the flag is --json.
    json_path: str = Field("runs/bench/results.json", validation_alias="json", description="where to write the results")


def machine() -> dict[str, str]:
    import os

    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": str(os.cpu_count()),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none",
    }


def run(args: Args) -> int:
    names = args.names or available()
    unknown = sorted(set(names) - set(available()))
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; available: {', '.join(available())}")
        return 2
    results: list[Result] = []
    for name in names:
        start = time.perf_counter()
        module = importlib.import_module(f"benchmarks.bench_{name}")
        results.extend(module.run(quick=args.quick))
        print(f"[{name}: {time.perf_counter() - start:.1f} s]", flush=True)
    width = max((len(r.benchmark) + len(r.metric) for r in results), default=20) + 3
    print(f"\n{'benchmark / metric':<{width}} {'value':>12}  {'unit':<22} {'target':<12} note")
    for r in results:
        print(f"{r.benchmark + ' / ' + r.metric:<{width}} {r.value:>12.4g}  {r.unit:<22} {r.target:<12} {r.note}")
    out = Path(args.json_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": machine(), "results": [asdict(r) for r in results]}, indent=2))
    print(f"\nwrote {out}")
    return 0
