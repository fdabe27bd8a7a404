"""``emoreason list DATASET``: load a dataset through its adapter and print what came out.

Counts per split x label, speakers, total audio duration, and the rejects grouped by reason with
a few examples each. Exits 0 when the dataset loads (rejects are data, not failures) and 2 with
a one-line message when it cannot be loaded at all (missing folder, bad option).
"""

from __future__ import annotations

import sys
from collections import Counter, defaultdict

from pydantic import BaseModel, ConfigDict, Field
from pydantic_settings import CliPositionalArg

from pipeline.config import AdapterOptions, adapter_options
from pipeline.datasets import DATASETS, AdapterResult, load_dataset
from pipeline.labels import PROTOCOLS

DEFAULT_REJECT_EXAMPLES = 3


class Args(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dataset: CliPositionalArg[str] = Field(description=f"which adapter to use: {', '.join(DATASETS)}")
    root: str | None = Field(None, description="where the dataset lives (the demo corpus is bundled)")
    protocol: str | None = Field(
        None, description=f"label protocol (default: the dataset's usual one): {', '.join(PROTOCOLS)}"
    )
    split: list[str] = Field(default_factory=list, description="only this split (repeatable)")
    options: AdapterOptions = adapter_options(
        "adapter option, e.g. -o audio_dir=/data/meld/audio -o test_actors=[21,22,23,24]"
    )
    show_rejects: int = Field(
        DEFAULT_REJECT_EXAMPLES,
        ge=0,
        description="examples shown per reject reason",
    )


def format_table(result: AdapterResult) -> str:
    """Utterances per label (rows) x split (columns), with totals."""
    utterances = result.utterances
    splits = sorted({u.split for u in utterances})
    labels = sorted({u.emotion.value for u in utterances})
    counts = Counter((u.emotion.value, u.split) for u in utterances)
    width = max([len("label"), len("total"), *(len(label) for label in labels)])
    cols = [max(len(s), 6) for s in splits]
    lines = ["  ".join([f"{'label':<{width}}", *(f"{s:>{c}}" for s, c in zip(splits, cols, strict=True)), "  total"])]
    for label in labels:
        row = [counts[label, s] for s in splits]
        cells = [f"{n:>{c}}" for n, c in zip(row, cols, strict=True)]
        lines.append("  ".join([f"{label:<{width}}", *cells, f"{sum(row):>7}"]))
    totals = [sum(counts[label, s] for label in labels) for s in splits]
    cells = [f"{n:>{c}}" for n, c in zip(totals, cols, strict=True)]
    lines.append("  ".join([f"{'total':<{width}}", *cells, f"{sum(totals):>7}"]))
    return "\n".join(lines)


def format_summary(name: str, protocol: str, result: AdapterResult, examples: int) -> str:
    utterances = result.utterances
    out = [f"{name} under protocol {protocol}: {len(utterances)} utterances, {len(result.rejects)} rejects", ""]
    out += [format_table(result), ""]
    speakers: dict[str, set[str]] = defaultdict(set)
    for u in utterances:
        speakers[u.split].add(u.speaker)
    out.append(f"speakers: {len({u.speaker for u in utterances})} in all")
    out += [
        f"  {split}: {len(s)} ({', '.join(sorted(s)[:8])}{', ...' if len(s) > 8 else ''})"
        for split, s in sorted(speakers.items())
    ]
    timed = [u.duration_s for u in utterances if u.duration_s is not None]
    if timed:
        total = sum(timed)
        amount = f"{total / 3600:.2f} h" if total >= 3600 else f"{total / 60:.1f} min"
        out.append(
            f"audio: {amount} in {len(timed)} files "
            f"({min(timed):.2f}-{max(timed):.2f} s, mean {total / len(timed):.2f} s)"
        )
    if len(timed) < len(utterances):
        out.append(f"without audio: {len(utterances) - len(timed)} utterances")
    out += [f"note: {n}" for n in result.notices]
    if result.rejects:
        by_reason = defaultdict(list)
        for r in result.rejects:
            by_reason[r.reason].append(r)
        out += ["", "rejects by reason:"]
        for reason, rows in sorted(by_reason.items(), key=lambda kv: -len(kv[1])):
            out.append(f"  {reason}: {len(rows)}")
            out += [f"    {r.line()}" for r in rows[:examples]]
    return "\n".join(out)


def run(args: Args) -> int:
    options = dict(args.options)
    if args.split:
        options["splits"] = args.split
    try:
        result = load_dataset(args.dataset, args.root, args.protocol, **options)
    except (OSError, ValueError) as err:
        print(f"emoreason list: {err}", file=sys.stderr)
        return 2
    protocol = args.protocol or (result.utterances[0].label_protocol if result.utterances else "default")
    print(format_summary(args.dataset, protocol, result, args.show_rejects))
    return 0
