"""``emoreason baseline``: acoustic profile + logistic regression, the non-LLM row of every table.

    emoreason baseline --dataset ravdess --root ../shared/data/ravdess16k --out runs/baseline-ravdess
    emoreason baseline --dataset ravdess --root ../shared/data/ravdess16k --features encoder --out runs/probe-ravdess
    emoreason baseline --dataset iemocap --root /data/IEMOCAP -o test_session=Ses05 --out runs/baseline-ses05

Writes ``<out>/summary.json`` (the same RunSummary as ``emoreason eval``, so ``--compare`` puts it
beside any checkpoint), ``predictions.parquet``, ``confusion.png``, ``report.html`` and the
profiles it measured (``<out>/profiles``, reused on the next run).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from pipeline.commands import adapter_option


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", default="ravdess", help="dataset adapter (emoreason list)")
    parser.add_argument("--root", help="dataset folder")
    parser.add_argument("--protocol", help="label protocol (default: the dataset's usual one)")
    parser.add_argument(
        "-o", "--option", action="append", default=[], metavar="KEY=VALUE", type=adapter_option,
        help="dataset adapter option, YAML value (e.g. -o test_session=Ses05); RAVDESS default: "
        "test_actors=[17,18,19,20] dev_actors=[21,22,23,24] (train on 1-16)",
    )  # fmt: skip
    parser.add_argument("--train-split", default="train")
    parser.add_argument("--test-split", default="test")
    parser.add_argument("--profiles", help="existing profiles (parquet or `emoreason profile` folder)")
    parser.add_argument("--workers", type=int, default=1, help="processes measuring profiles")
    parser.add_argument(
        "--features", choices=["profile", "encoder"], default="profile",
        help="acoustic profile (default) or a Whisper encoder's pooled hidden states (a linear probe)",
    )  # fmt: skip
    parser.add_argument(
        "--encoder", default="embedded:whisper-tiny.en", help="Whisper checkpoint for --features encoder"
    )
    parser.add_argument("--encoder-layer", type=int, default=2, help="hidden state for --features encoder")
    parser.add_argument("--out", default=None, help="output folder (default runs/baseline-<dataset>)")
    parser.add_argument("--name", help="run name in reports (default: baseline (profile + LR))")


def _default_name(cfg) -> str:
    if cfg.features == "encoder":
        return f"probe ({cfg.encoder.removeprefix('embedded:')} layer {cfg.encoder_layer} + LR)"
    return "baseline (profile + LR)"


def _command(name: str) -> str:
    """The command line as typed, when this process is `emoreason <name>` (not a test harness)."""
    return shlex.join(["emoreason", *sys.argv[1:]]) if sys.argv[1:2] == [name] else ""


def run(args: argparse.Namespace) -> int:
    from model.baseline import BaselineConfig, run_baseline
    from model.eval.metrics import plot_confusion
    from model.eval.report import RunSummary, terminal_table, write_report, write_summary
    from pipeline.parquet import write_records, write_table_atomic

    out = Path(args.out or f"runs/baseline-{args.dataset}")
    try:
        cfg = BaselineConfig(
            dataset=args.dataset,
            root=args.root,
            protocol=args.protocol,
            options=dict(args.option),
            train_split=args.train_split,
            test_split=args.test_split,
            profiles=args.profiles,
            workers=args.workers,
            features=args.features,
            encoder=args.encoder,
            encoder_layer=args.encoder_layer,
        )
        result = run_baseline(cfg, out, progress=sys.stderr.isatty())
    except (ValueError, FileNotFoundError, NotADirectoryError) as err:
        print(f"emoreason baseline: {err}", file=sys.stderr)
        return 2
    import pyarrow as pa

    table = pa.Table.from_pylist([vars(p) for p in result.predictions])
    write_table_atomic(table, out / "predictions.parquet")
    if result.rejects:
        from pipeline.records import Reject

        write_records(result.rejects, out / "rejects.parquet", Reject)
    plot_confusion(result.metrics, out / "confusion.png")
    summary = RunSummary(
        name=args.name or _default_name(cfg),
        kind="baseline",
        dataset=cfg.dataset,
        split=cfg.test_split,
        protocol=cfg.resolved_protocol(),
        n_items=result.metrics.n,
        n_rejects=len(result.rejects),
        metrics=result.metrics,
        timing={"elapsed_s": round(result.elapsed_s, 2), "n_train": result.n_train},
        command=_command("baseline"),
    )
    write_summary(summary, out)
    write_report([summary], out / "report.html", title=f"baseline on {cfg.dataset} ({cfg.test_split})")
    print(terminal_table([summary]))
    print(f"\ntrained on {result.n_train}, tested on {result.metrics.n}; {len(result.rejects)} rejects; {out}")
    return 0
