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

import argparse
import shlex
import sys
from pathlib import Path

from pipeline.audio import Level
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
    parser.add_argument(
        "--test-split", default=None,
        help="split tested (default: test; with a separate test source: all, i.e. every utterance it holds)",
    )  # fmt: skip
    test = parser.add_argument_group("a separate test source (train on --root, test on this)")
    test.add_argument("--test-dataset", help="its adapter (default: --dataset)")
    test.add_argument("--test-root", help="its folder or manifest file")
    test.add_argument("--test-protocol", help="its label protocol (default: its usual one)")
    test.add_argument(
        "--test-option", action="append", default=[], metavar="KEY=VALUE", type=adapter_option,
        help="its adapter option (e.g. --test-option label_map=map.yaml for a manifest)",
    )  # fmt: skip
    norm = parser.add_argument_group("normalisation")
    norm.add_argument(
        "--speaker-norm", action=argparse.BooleanOptionalAction, default=None,
        help="per-speaker z-scores from each speaker's own unlabelled utterances (default: on for the profile, "
        "whose own z-scores it uses, --no-speaker-norm giving raw measures; off for encoder states)",
    )  # fmt: skip
    norm.add_argument(
        "--level", choices=[lv.value for lv in Level], default=Level.none.value,
        help="scale each waveform before measuring or encoding: peak to -1 dBFS, or RMS to -23 dBFS",
    )  # fmt: skip
    parser.add_argument("--profiles", help="existing profiles (parquet or `emoreason profile` folder)")
    parser.add_argument("--workers", type=int, default=1, help="processes measuring profiles")
    parser.add_argument(
        "--features", choices=["profile", "encoder", "adapter"], default="profile",
        help="acoustic profile (default), a Whisper encoder's pooled hidden states (a linear probe), or a trained "
        "AudioLLM's pooled adapter output tokens (--checkpoint): what reaches its decoder",
    )  # fmt: skip
    parser.add_argument("--checkpoint", help="--features adapter: the AudioLLM (saved model or training run folder)")
    parser.add_argument(
        "--encoder", default="embedded:whisper-tiny.en", help="Whisper checkpoint for --features encoder"
    )
    parser.add_argument("--encoder-layer", type=int, default=2, help="hidden state for --features encoder")
    parser.add_argument("--out", default=None, help="output folder (default runs/baseline-<dataset>)")
    parser.add_argument("--name", help="run name in reports (default: baseline (profile + LR))")


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


def _command(name: str) -> str:
    """The command line as typed, when this process is `emoreason <name>` (not a test harness)."""
    return shlex.join(["emoreason", *sys.argv[1:]]) if sys.argv[1:2] == [name] else ""


def run(args: argparse.Namespace) -> int:
    from model.baseline import BaselineConfig, run_baseline
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
    try:
        cfg = BaselineConfig(
            dataset=args.dataset,
            root=args.root,
            protocol=args.protocol,
            options=dict(args.option),
            train_split=args.train_split,
            test_split=args.test_split,
            test_dataset=args.test_dataset,
            test_root=args.test_root,
            test_protocol=args.test_protocol,
            test_options=dict(args.test_option),
            profiles=args.profiles,
            workers=args.workers,
            features=args.features,
            checkpoint=args.checkpoint,
            encoder=args.encoder,
            encoder_layer=args.encoder_layer,
            speaker_norm=args.speaker_norm,
            level=args.level,
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
        dataset=cfg.resolved_test_dataset(),
        split=cfg.resolved_test_split(),
        protocol=cfg.resolved_protocol(),
        n_items=result.metrics.n,
        n_rejects=len(result.rejects),
        metrics=result.metrics,
        timing={"elapsed_s": round(result.elapsed_s, 2), "n_train": result.n_train},
        command=_command("baseline"),
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
