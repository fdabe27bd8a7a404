"""``emoreason baseline``: acoustic profile + logistic regression, the non-LLM row of every table.

    emoreason baseline --dataset ravdess --root ../shared/data/ravdess16k --out runs/baseline-ravdess
    emoreason baseline --dataset ravdess --root ../shared/data/ravdess16k --features encoder --out runs/probe-ravdess
    emoreason baseline --dataset iemocap --root /data/IEMOCAP -o test_session=Ses05 --out runs/baseline-ses05
    emoreason baseline --root ../shared/data/ravdess16k --test-dataset manifest --test-root emodb.csv \
        --test-option label_map=emodb-map.yaml --level peak --out runs/baseline-ravdess-to-emodb

Writes ``<out>/summary.json`` (the same RunSummary as ``emoreason eval``, so ``--compare`` puts it
beside any checkpoint), ``predictions.parquet``, ``confusion.png``, ``report.html`` and the
profiles it measured (``<out>/profiles``, reused on the next run).
"""

from __future__ import annotations

import sys
from pathlib import Path

from pydantic import AliasChoices, Field

from model.baseline import BaselineConfig
from model.commands import typed_command
from pipeline.audio import Level
from pipeline.config import AdapterOptions, adapter_options


class Args(BaselineConfig):
    """The baseline's config, where it writes, and its name in reports."""

    options: AdapterOptions = adapter_options(
        "dataset adapter option, YAML value (e.g. -o test_session=Ses05); RAVDESS default: "
        "test_actors=[17,18,19,20] dev_actors=[21,22,23,24] (train on 1-16)"
    )
    test_options: AdapterOptions = Field(
        default_factory=dict,
        validation_alias=AliasChoices("test_option", "test_options"),
        description="the separate test source's adapter option (e.g. --test-option label_map=map.yaml)",
    )
    out: str | None = Field(None, description="output folder (default runs/baseline-<dataset>)")
    name: str | None = Field(None, description="run name in reports (default: baseline (profile + LR))")


def _default_name(cfg) -> str:
    if cfg.features == "encoder":
        name = f"probe ({cfg.encoder.removeprefix('embedded:')} layer {cfg.encoder_layer} + LR)"
    elif cfg.features == "adapter":
        name = f"probe (adapter tokens of {Path(cfg.checkpoint).name} + LR)"
    else:
        name = "baseline (profile + LR)"
    notes = []
    if cfg.speaker_norm is not None and cfg.resolved_speaker_norm() != (cfg.features == "profile"):
        notes.append("speaker-norm" if cfg.resolved_speaker_norm() else "raw measures")
    if cfg.level is not Level.none:
        notes.append(f"{cfg.level.value} level")
    return f"{name} [{', '.join(notes)}]" if notes else name


def run(args: Args) -> int:
    from model.baseline import run_baseline
    from model.eval.metrics import plot_confusion
    from model.eval.report import (
        RunSummary,
        per_class_table,
        scoring_notes,
        terminal_table,
        write_report,
        write_summary,
    )
    from pipeline.parquet import write_records, write_table_atomic

    out = Path(args.out or f"runs/baseline-{args.dataset}")
    cfg = BaselineConfig.model_validate(args.model_dump(include=set(BaselineConfig.model_fields)))
    try:
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
        dataset=cfg.resolved_test_dataset(),
        split=cfg.resolved_test_split(),
        protocol=cfg.resolved_protocol(),
        n_items=result.metrics.n,
        n_rejects=len(result.rejects),
        metrics=result.metrics,
        timing={"elapsed_s": round(result.elapsed_s, 2), "n_train": result.n_train},
        command=typed_command("baseline"),
    )
    write_summary(summary, out)
    title = f"baseline on {summary.dataset} ({summary.split})"
    write_report([summary], out / "report.html", title=title)
    print(terminal_table([summary]))
    print("\n" + per_class_table([summary]))
    for note in scoring_notes(result.outside, result.dropped):
        print(note)
    print(f"\ntrained on {result.n_train}, tested on {result.metrics.n}; {len(result.rejects)} rejects; {out}")
    return 0
