"""The audit as one self-contained HTML page: plots embedded as base64 PNG, no external assets.

The page is ``templates/audit.html.j2``, which extends the report base shared with the evaluation
report (pipeline.report_html). Everything taken from the data (transcripts, rationales, reasons,
ids) is escaped by the template engine: a transcript may hold markup, and an injection attempt must
show as text, not run.
"""

from __future__ import annotations

import datetime
import hashlib
from dataclasses import dataclass

import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from pipeline.audit.summary import AuditSummary, quality_table, relevance_frame
from pipeline.records import VerifiedRecord
from pipeline.report_html import Plot, frame_table, plot, render

SAMPLES_PER_LABEL = 3  # accepted and rejected each, per label: enough to see patterns, small page
FIG_SIZE = (6.4, 3.4)
DPI = 110
HEADROOM = 1.12  # room above the tallest bar for its annotation
BAR_HEIGHT = 0.6
MIN_BAR_SLOTS = 4  # a single failing check should not fill the whole plot with one bar
MAX_BINS = 30
MAX_RULES = 12  # failed rules drawn; the table below the chart lists them all
COLOURS = {"accepted": "#2e7d32", "rejected": "#c62828", "all": "#607d8b"}


def _png(fig: Figure) -> Plot:
    # Same pixel size for every plot (no tight bbox), so fonts look the same across panels.
    return plot(fig, DPI)


def _legend_outside(ax) -> None:
    # Right of the axes, so it never hides a bar or an annotation.
    ax.legend(frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)


def _figure() -> tuple[Figure, object]:
    fig = Figure(figsize=FIG_SIZE, layout="constrained")
    ax = fig.subplots()
    ax.spines[["top", "right"]].set_visible(False)
    return fig, ax


def plot_acceptance_by_label(summary: AuditSummary) -> Plot:
    table = summary.by_label.sort_index()
    fig, ax = _figure()
    rejected = table["candidates"] - table["accepted"]
    ax.bar(table.index, table["accepted"], color=COLOURS["accepted"], label="accepted")
    ax.bar(table.index, rejected, bottom=table["accepted"], color=COLOURS["rejected"], label="rejected")
    for x, (n, rate) in enumerate(zip(table["candidates"], table["rate"], strict=True)):
        ax.annotate(f"{rate:.0%}", (x, n), ha="center", va="bottom", fontsize=8)
    ax.set_ylim(0, table["candidates"].max() * HEADROOM)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title("Candidates per gold label (% accepted)")
    ax.set_ylabel("candidates")
    ax.tick_params(axis="x", labelrotation=30)
    _legend_outside(ax)
    return _png(fig)


def plot_failed_rules(summary: AuditSummary) -> Plot:
    fig, ax = _figure()
    table = summary.by_rule.head(MAX_RULES).sort_values("failures")
    if len(table):
        ax.barh(table.index, table["failures"], color=COLOURS["rejected"], height=BAR_HEIGHT)
        ax.set_ylim(
            -0.5 - max(0, MIN_BAR_SLOTS - len(table)) / 2, len(table) - 0.5 + max(0, MIN_BAR_SLOTS - len(table)) / 2
        )
    else:
        ax.text(0.5, 0.5, "no rejected candidates", ha="center", transform=ax.transAxes)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(f"Failed rules, top {MAX_RULES}")
    ax.set_xlabel("rejected candidates")
    ax.tick_params(axis="y", labelsize=7)
    return _png(fig)


def plot_relevance(summary: AuditSummary) -> Plot:
    """Heat map of the relevance table: mean z per emotion and measure; hatched grey = unknown."""
    table = summary.relevance
    frame = relevance_frame(table) if table is not None else None
    fig = Figure(figsize=(FIG_SIZE[0] * 1.4, FIG_SIZE[1] * 1.2), layout="constrained")
    ax = fig.subplots()
    if frame is None or frame.empty:
        ax.text(0.5, 0.5, "no relevance table", ha="center", transform=ax.transAxes)
        return _png(fig)
    values = frame.to_numpy(dtype=float)
    limit = max(1.0, float(abs(frame.fillna(0)).to_numpy().max()))
    ax.set_facecolor("#bdbdbd")  # unknown cells (NaN) show the background
    image = ax.imshow(values, cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto")
    cells = {(c.emotion.value, c.measure.value): c for c in table.cells}
    for i, emotion in enumerate(frame.index):
        for j, measure in enumerate(frame.columns):
            cell = cells[(emotion, measure)]
            mark = "*" if cell.direction else "†" if cell.disputed else ""
            text = "?" if cell.direction is None else f"{values[i, j]:+.1f}{mark}"
            ax.text(j, i, text, ha="center", va="center", fontsize=7)
    ax.set_xticks(range(len(frame.columns)), [c.replace("_", " ") for c in frame.columns], rotation=30, ha="right")
    ax.set_yticks(range(len(frame.index)), list(frame.index))
    ax.set_title("Which way each cue points: mean z (* typical, † disputed, ? unknown)")
    fig.colorbar(image, ax=ax, label="mean speaker-normalised z")
    return _png(fig)


def plot_lengths(summary: AuditSummary) -> Plot:
    fig, ax = _figure()
    frame = summary.frame[summary.frame["parsed"]]
    words = frame["reasoning_words"]
    if len(words):
        low, high = int(words.min()), int(words.max()) + 1
        bins = min(MAX_BINS, high - low)  # whole words per bin when the range is small
        stacks = [words[frame["accepted"]], words[~frame["accepted"]]]
        ax.hist(stacks, bins=bins, range=(low, high), stacked=True, color=[COLOURS["accepted"], COLOURS["rejected"]],
                label=["accepted", "rejected"])  # fmt: skip
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title("Reasoning length")
    ax.set_xlabel("words")
    ax.set_ylabel("answers")
    _legend_outside(ax)
    return _png(fig)


def plot_evidence(summary: AuditSummary) -> Plot:
    fig, ax = _figure()
    kinds = list(summary.evidence.index)
    x = range(len(kinds))
    width = 0.38
    ax.bar([i - width / 2 for i in x], summary.evidence["share_all"] * 100, width, color=COLOURS["all"], label="all")
    ax.bar([i + width / 2 for i in x], summary.evidence["share_accepted"] * 100, width, color=COLOURS["accepted"],
           label="accepted")  # fmt: skip
    ax.set_xticks(list(x), kinds)
    ax.set_ylim(0, 105)
    ax.set_ylabel("% of answers citing it")
    ax.set_title("Evidence kinds")
    _legend_outside(ax)
    return _png(fig)


@dataclass
class LabelSamples:
    """One label's fold-out: its accepted and rejected candidates, and the few shown of each."""

    label: str
    accepted: list[VerifiedRecord]
    total: int
    columns: list[tuple[str, list[VerifiedRecord], list[VerifiedRecord]]]  # (title, all, shown)


def _sample(records: list[VerifiedRecord], k: int, seed: int) -> list[VerifiedRecord]:
    # Hash order: a fixed, seedable sample that does not depend on the file's row order.
    def key(r: VerifiedRecord) -> bytes:
        return hashlib.sha256(f"{seed}\0{r.id}".encode()).digest()

    return sorted(records, key=key)[:k]


def _samples(records: list[VerifiedRecord], per_label: int, seed: int) -> list[LabelSamples]:
    by_label: dict[str, list[VerifiedRecord]] = {}
    for r in records:
        by_label.setdefault(r.emotion.value, []).append(r)
    groups = []
    for label, group in sorted(by_label.items()):
        accepted = [r for r in group if r.accepted]
        rejected = [r for r in group if not r.accepted]
        columns = [(title, subset, _sample(subset, per_label, seed))
                   for title, subset in (("Accepted", accepted), ("Rejected", rejected))]  # fmt: skip
        groups.append(LabelSamples(label, accepted, len(group), columns))
    return groups


def render_report(
    summary: AuditSummary,
    records: list[VerifiedRecord],
    source: str,
    cues: dict[str, list[str]] | None = None,
    per_label: int = SAMPLES_PER_LABEL,
    seed: int = 0,
) -> str:
    """The whole page. ``cues``: utterance id -> measured acoustic cue phrases, when profiles exist."""
    f = summary.frame
    q = summary.quality_all
    n_utterances = f["utterance_id"].nunique()
    # The trainable share leads: accepted alone only means "nothing verifiably false".
    kpis = [
        ("trainable utterances", f"{summary.trainable_utterances} of {n_utterances}"),
        ("trainable candidates", f"{f['trainable'].mean():.1%}"),
        ("accepted", f"{f['accepted'].mean():.1%}"),
        ("candidates", f"{summary.n}"),
        ("relevance (measured)", f"{q.relevance:.1%} of {q.n_relevance}" if q.n_relevance else "not measured"),
        ("quotation", f"{q.quotation_rate:.1%}"),
        ("groundedness", f"{q.groundedness:.1%}" if q.n_quoting else "–"),
        ("acoustic grounding", f"{q.acoustic_grounding_rate:.1%}" if q.n_citing_voice else "–"),
    ]
    corpus = None
    if summary.corpus_counts:
        counts = pd.DataFrame(summary.corpus_counts).fillna(0).astype(int)
        counts.index.name = "task"
        corpus = frame_table(counts)
    plots = {
        "acceptance": plot_acceptance_by_label(summary),
        "failed_rules": plot_failed_rules(summary),
        "lengths": plot_lengths(summary),
        "evidence": plot_evidence(summary),
        "relevance": plot_relevance(summary),
    }
    tables = {
        "by_dataset": frame_table(summary.by_dataset, ["rate"]),
        "by_style": frame_table(summary.by_style, ["rate"]),
        "by_check": frame_table(summary.by_check, ["share_of_rejected"]),
        "by_rule": frame_table(summary.by_rule, ["share_of_rejected"]),
        "lengths": frame_table(summary.lengths.round(1)),
        "evidence": frame_table(summary.evidence, ["share_all", "share_accepted"]),
        "quality": frame_table(quality_table(summary)),
        "corpus": corpus,
    }
    return render(
        "pipeline.audit",
        "audit.html.j2",
        source=source,
        generated=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        kpis=kpis,
        plots=plots,
        tables=tables,
        per_label=per_label,
        seed=seed,
        with_cues=cues is not None,
        cues=cues or {},
        samples=_samples(records, per_label, seed),
    )
