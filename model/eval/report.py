"""Run summaries, and the report comparing runs: a terminal table and one self-contained HTML page.

Every evaluation (an AudioLLM checkpoint or the classical baseline) writes ``summary.json``, a
:class:`RunSummary`. The report reads any number of them and puts them side by side: headline
metrics with bootstrap intervals, the AudioBench judge score, extraction outcomes, per-class
recall, confusion matrices and reasoning quality next to the paper's numbers. The HTML page is
``templates/eval_report.html.j2`` on the report base shared with the audit (pipeline.report_html):
plots embedded as PNG data, so the page is one file to mail or attach, and every name, label and
command escaped by the template engine.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
from matplotlib.figure import Figure
from pydantic import BaseModel, ConfigDict, Field

from model.eval.metrics import HEADLINE, Metrics, across_folds
from model.eval.reasoning import JudgedQuality
from pipeline.judge import JudgeScore
from pipeline.parquet import write_text_atomic
from pipeline.quality import QualityReport
from pipeline.report_html import Cell, Plot, Table, plot, render

SUMMARY_FILE = "summary.json"
REPORT_FILE = "report.html"
METRIC_NAMES = {"wa": "WA", "ua": "UA", "macro_f1": "macro-F1", "weighted_f1": "weighted F1"}


class RunSummary(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    kind: Literal["audiollm", "baseline"]
    dataset: str
    split: str
    protocol: str
    checkpoint: str | None = None
    n_items: int = Field(description="utterances asked (or test utterances for the baseline)")
    n_rejects: int = 0
    metrics: Metrics
    statuses: dict[str, int] = Field(default_factory=dict, description="extraction status -> answers")
    judge: JudgeScore | None = None
    quality: QualityReport | None = None
    judged_quality: JudgedQuality | None = None
    timing: dict[str, float] = Field(default_factory=dict)
    command: str = ""
    created_at: dt.datetime = Field(default_factory=lambda: dt.datetime.now(dt.timezone.utc))


def write_summary(summary: RunSummary, out_dir: str | Path) -> Path:
    path = Path(out_dir) / SUMMARY_FILE
    return write_text_atomic(summary.model_dump_json(indent=1), path)


def load_summary(path: str | Path) -> RunSummary:
    path = Path(path)
    if path.is_dir():
        path = path / SUMMARY_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no run summary at {path} (run `emoreason eval` or `emoreason baseline` there first)")
    return RunSummary.model_validate_json(path.read_text())


# ---- terminal ----


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f}"


def _with_ci(m: Metrics, name: str) -> str:
    value = f"{100 * getattr(m, name):.1f}"
    if name in m.ci:
        low, high = m.ci[name]
        value += f" [{100 * low:.1f}, {100 * high:.1f}]"
    return value


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(x)) for x in column) for column in zip(header, *rows, strict=True)]
    line = lambda cells: "  ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True))  # noqa: E731
    return "\n".join([line(header), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def fold_row(summaries: Sequence[RunSummary]) -> list[str]:
    """'mean ± std' of each headline metric over the runs, as folds of one experiment (IEMOCAP's five)."""
    summary = across_folds([s.metrics for s in summaries])
    return [f"{100 * summary.mean[n]:.1f} ± {100 * summary.std[n]:.1f}" for n in HEADLINE]


def terminal_table(summaries: Sequence[RunSummary], folds: bool = False) -> str:
    """Headline metrics (95 % bootstrap intervals), judge score and unlabelled share, one row per run;
    with ``folds``, a last row of mean ± std over the runs."""
    header = ["run", "kind", "n", *(METRIC_NAMES[n] for n in HEADLINE), "judge×100", "no label"]
    rows = []
    for s in summaries:
        m = s.metrics
        judge = "—" if s.judge is None or s.judge.score is None else f"{s.judge.score:.1f} ({s.judge.n_failed} failed)"
        no_label = f"{100 * m.n_unlabelled / m.n:.1f} %" if s.kind == "audiollm" else "—"
        rows.append([s.name, s.kind, str(m.n), *(_with_ci(m, n) for n in HEADLINE), judge, no_label])
    if folds:
        rows.append([f"mean ± std ({len(summaries)} folds)", "", str(sum(s.metrics.n for s in summaries)),
                     *fold_row(summaries), "", ""])  # fmt: skip
    text = _table(header, rows)
    quality = [s for s in summaries if s.quality is not None]
    if quality:
        q_rows = [
            [metric, *("—" if v is None else f"{v:.1f}" for v in values), "—" if paper is None else f"{paper}"]
            for metric, paper, _basis, values in _quality_rows(quality)
        ]
        text += "\n\nreasoning quality (%, verified by stage two's checks)\n"
        text += _table(["metric", *(s.name for s in quality), "paper"], q_rows)
    return text


def per_class_table(summaries: Sequence[RunSummary]) -> str:
    """Recall per gold class (%), one column per run; classes in the first run's order, then the rest."""
    labels = list(dict.fromkeys(c.label for s in summaries for c in s.metrics.per_class))
    recall = [{c.label: c for c in s.metrics.per_class} for s in summaries]
    rows = []
    for label in labels:
        support = next((r[label].support for r in recall if label in r and r[label].support), 0)
        cells = ["—" if label not in r or not r[label].support else f"{100 * r[label].recall:.1f}" for r in recall]
        rows.append([label, str(support), *cells])
    return "per-class recall (%)\n" + _table(["class", "gold n", *(s.name for s in summaries)], rows)


def scoring_notes(outside: dict[str, int], dropped: dict[str, int]) -> list[str]:
    """Lines saying what the test set's labels did to the score: gold classes the model cannot
    answer (kept, wrong) and utterances the adapter dropped (unmapped gold labels among them)."""
    notes = []
    if outside:
        classes = ", ".join(f"{label} {n}" for label, n in sorted(outside.items()))
        notes.append(f"{sum(outside.values())} test utterances have a gold class outside the model's labels, "
                     f"scored as wrong: {classes}")  # fmt: skip
    if dropped:
        reasons = ", ".join(f"{reason} {n}" for reason, n in sorted(dropped.items()))
        notes.append(f"{sum(dropped.values())} test utterances dropped before scoring ({reasons}; "
                     "unknown_label: a gold label with no mapping; see rejects.parquet)")  # fmt: skip
    return notes


# ---- plots ----


DPI = 100


def headline_plot(summaries: Sequence[RunSummary]) -> Plot:
    fig = Figure(figsize=(10, 3.6))
    ax = fig.subplots()
    width = 0.8 / len(summaries)
    x = np.arange(len(HEADLINE))
    for i, s in enumerate(summaries):
        values = np.array([100 * getattr(s.metrics, n) for n in HEADLINE])
        lows = np.array([100 * s.metrics.ci.get(n, (getattr(s.metrics, n),) * 2)[0] for n in HEADLINE])
        highs = np.array([100 * s.metrics.ci.get(n, (getattr(s.metrics, n),) * 2)[1] for n in HEADLINE])
        ax.bar(x + i * width, values, width, label=s.name, yerr=[values - lows, highs - values], capsize=3)
    chance = 100 / len(summaries[0].metrics.labels)
    ax.axhline(chance, color="grey", linestyle=":", linewidth=1, label=f"chance (UA {chance:.1f})")
    ax.set_xticks(x + width * (len(summaries) - 1) / 2, [METRIC_NAMES[n] for n in HEADLINE])
    ax.set_ylabel("%")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside the bars, never over them
    ax.set_title("headline metrics, 95 % bootstrap intervals")
    fig.tight_layout()
    return plot(fig, DPI, "headline metrics")


def recall_plot(summaries: Sequence[RunSummary]) -> Plot:
    labels = summaries[0].metrics.labels
    fig = Figure(figsize=(10, 3.4))
    ax = fig.subplots()
    width = 0.8 / len(summaries)
    x = np.arange(len(labels))
    for i, s in enumerate(summaries):
        recall = {c.label: 100 * c.recall for c in s.metrics.per_class}
        ax.bar(x + i * width, [recall.get(label, 0.0) for label in labels], width, label=s.name)
    ax.set_xticks(x + width * (len(summaries) - 1) / 2, labels, rotation=30, ha="right")
    ax.set_ylabel("recall %")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.set_title("per-class recall")
    fig.tight_layout()
    return plot(fig, DPI, "per-class recall")


def confusion_plot(summary: RunSummary) -> Plot:
    from model.eval.metrics import UNLABELLED

    m = summary.metrics
    cm = np.array(m.confusion, dtype=float)
    rows = cm.sum(axis=1, keepdims=True)
    share = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
    columns = [*m.labels, UNLABELLED]
    fig = Figure(figsize=(4.8, 4.2))
    ax = fig.subplots()
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(columns)), columns, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(m.labels)), m.labels, fontsize=8)
    for (i, j), count in np.ndenumerate(cm):
        if count:
            color = "white" if share[i, j] > 0.5 else "black"
            ax.text(j, i, int(count), ha="center", va="center", fontsize=7, color=color)
    ax.set_xlabel("predicted")
    ax.set_ylabel("gold")
    ax.set_title(summary.name, fontsize=9)
    fig.tight_layout()
    return plot(fig, DPI, f"confusion matrix {summary.name}")


# ---- HTML ----

_NUMERIC = re.compile(r"^[\d.\-–—/ \[\],%]+$")


def _html_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> Table:
    """Cells that read as numbers are right-aligned."""
    return Table(list(header), [[Cell(str(v), bool(_NUMERIC.match(str(v)))) for v in row] for row in rows])


def render_html(summaries: Sequence[RunSummary], title: str = "emoreason evaluation", folds: bool = False) -> str:
    if not summaries:
        raise ValueError("no runs to report")
    labels = summaries[0].metrics.labels
    header = ["run", "kind", "n", *(METRIC_NAMES[n] for n in HEADLINE), "judge ×100", "judge failures"]
    rows = []
    for s in summaries:
        judge = s.judge
        rows.append(
            [
                s.name,
                s.kind,
                s.metrics.n,
                *(_with_ci(s.metrics, n) for n in HEADLINE),
                "—" if judge is None or judge.score is None else f"{judge.score:.1f}",
                "—" if judge is None else f"{judge.n_failed}/{judge.n}",
            ]
        )
    if folds:
        rows.append([f"mean ± std ({len(summaries)} folds)", "", sum(s.metrics.n for s in summaries),
                     *fold_row(summaries), "", ""])  # fmt: skip

    extraction = None
    llm = [s for s in summaries if s.kind == "audiollm"]
    if llm:
        statuses = ["final_line", "synonym", "ambiguous", "refusal", "none"]
        s_rows = [[s.name, *(f"{s.statuses.get(k, 0)}" for k in statuses), s.n_rejects] for s in llm]
        extraction = _html_table(["run", *statuses, "audio rejects"], s_rows)
    quality = None
    verified = [s for s in summaries if s.quality is not None]
    if verified:
        q_rows = [
            [metric, *(f"{v:.1f}" if v is not None else "—" for v in values), "—" if paper is None else paper, basis]
            for metric, paper, basis, values in _quality_rows(verified)
        ]
        quality = _html_table(["metric", *(s.name for s in verified), "paper (judged)", "basis (first run)"], q_rows)
    judged = None
    by_judge = [s for s in summaries if s.judged_quality is not None]
    if by_judge:
        j_rows = [
            [s.name, _num(s.judged_quality.quotation_rate), _num(s.judged_quality.groundedness_score),
             _num(s.judged_quality.relevance_score), f"{s.judged_quality.n_failed}/{s.judged_quality.n}"]
            for s in by_judge
        ]  # fmt: skip
        judged = _html_table(["run", "Quotation %", "Groundedness %", "Relevance %", "judge failures"], j_rows)
    per_class = [
        (s.name, _html_table(["label", "gold", "predicted", "precision", "recall", "F1"], [
            [c.label, c.support, c.predicted, f"{100 * c.precision:.1f}", f"{100 * c.recall:.1f}", f"{100 * c.f1:.1f}"]
            for c in s.metrics.per_class
        ]))
        for s in summaries
    ]  # fmt: skip
    r_rows = [
        [s.name, s.checkpoint or "—", s.command or "—", s.created_at.strftime("%Y-%m-%d %H:%M UTC")] for s in summaries
    ]
    return render(
        "model.eval",
        "eval_report.html.j2",
        title=title,
        runs=summaries,
        first=summaries[0],
        labels=labels,
        mismatched=[s.name for s in summaries if s.metrics.labels != labels],
        headline=_html_table(header, rows),
        plots={
            "headline": headline_plot(summaries),
            "recall": recall_plot(summaries),
            "confusions": [confusion_plot(s) for s in summaries],
        },
        extraction=extraction,
        quality=quality,
        judged=judged,
        per_class=per_class,
        runs_table=_html_table(["run", "checkpoint", "command", "created"], r_rows),
    )


def _num(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}"


def _quality_rows(summaries: Sequence[RunSummary]):
    first = summaries[0].quality
    by_name = {name: (value, basis) for name, value, _paper, basis in first.rows()}
    for name, _value, paper, _basis in first.rows():
        values = [dict((n, v) for n, v, _p, _b in s.quality.rows()).get(name) for s in summaries]
        if paper is None and all(v is None for v in values):
            continue  # e.g. label-blind agreement: stage two's, never measured on generated answers
        yield name, paper, by_name[name][1], values


def write_report(
    summaries: Sequence[RunSummary], path: str | Path, title: str = "emoreason evaluation", folds: bool = False
) -> Path:
    return write_text_atomic(render_html(summaries, title, folds), path)


def main(argv: list[str] | None = None) -> int:
    """``python -m model.eval.report RUN... [--folds] [--out report.html]``: report finished runs again."""
    import argparse

    parser = argparse.ArgumentParser(description="compare finished eval/baseline runs (their summary.json)")
    parser.add_argument("runs", nargs="+", help="run folders or summary.json files")
    parser.add_argument("--folds", action="store_true", help="the runs are folds of one experiment: add mean ± std")
    parser.add_argument("--out", help="write the HTML report here")
    parser.add_argument("--title", default="emoreason evaluation")
    args = parser.parse_args(argv)
    summaries = [load_summary(r) for r in args.runs]
    print(terminal_table(summaries, folds=args.folds))
    if args.out:
        print(write_report(summaries, args.out, args.title, folds=args.folds))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
