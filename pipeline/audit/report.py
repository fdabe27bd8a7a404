"""The audit as one self-contained HTML page: plots embedded as base64 PNG, no external assets.

Everything taken from the data (transcripts, rationales, reasons, ids) is HTML-escaped: a
transcript may hold markup, and an injection attempt must show as text, not run.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import io
from collections.abc import Sequence
from html import escape

import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from pipeline.audit.summary import AuditSummary, quality_table, relevance_frame
from pipeline.rationale import EvidenceKind
from pipeline.records import VerifiedRecord

SAMPLES_PER_LABEL = 3  # accepted and rejected each, per label: enough to see patterns, small page
FIG_SIZE = (6.4, 3.4)
DPI = 110
HEADROOM = 1.12  # room above the tallest bar for its annotation
BAR_HEIGHT = 0.6
MIN_BAR_SLOTS = 4  # a single failing check should not fill the whole plot with one bar
MAX_BINS = 30
MAX_RULES = 12  # failed rules drawn; the table below the chart lists them all
COLOURS = {"accepted": "#2e7d32", "rejected": "#c62828", "all": "#607d8b"}

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:0;background:#f5f6f8;color:#1d232a}
main{max-width:1320px;margin:auto;padding:20px 28px}
h1{margin:.2em 0}h2{margin-top:1.6em;border-bottom:2px solid #dde1e6;padding-bottom:4px}
.muted{color:#5f6b7a}.kpis{display:flex;flex-wrap:wrap;gap:10px;margin:14px 0}
.kpi{background:#fff;border:1px solid #dde1e6;border-radius:8px;padding:8px 14px;min-width:120px}
.kpi b{display:block;font-size:22px}.grid{display:grid;grid-template-columns:1fr 1fr;gap:16px}
.panel{background:#fff;border:1px solid #dde1e6;border-radius:8px;padding:10px}
.panel img{width:100%;height:auto}table{border-collapse:collapse;background:#fff;margin:6px 0}
th,td{border:1px solid #dde1e6;padding:4px 8px;text-align:left;vertical-align:top}th{background:#eef1f4}
td.num{text-align:right;font-variant-numeric:tabular-nums}
details{background:#fff;border:1px solid #dde1e6;border-radius:8px;margin:10px 0;padding:6px 12px}
summary{cursor:pointer;font-weight:600;font-size:15px}.pair{display:grid;grid-template-columns:1fr 1fr;gap:14px}
.col h3{margin:.5em 0;font-size:14px}.card{border:1px solid #dde1e6;border-left:5px solid;border-radius:6px;
padding:8px 10px;margin:8px 0;background:#fcfcfd}.card.ok{border-left-color:#2e7d32}
.card.bad{border-left-color:#c62828}.id{font:12px ui-monospace,monospace;color:#5f6b7a;word-break:break-all}
blockquote{margin:6px 0;padding:4px 10px;background:#eef3fb;border-left:3px solid #8aa8d8;white-space:pre-wrap}
.chip{display:inline-block;border-radius:10px;padding:0 8px;margin:2px 3px 2px 0;font-size:12px;background:#e8eaed}
.chip.cue{background:#fff3e0}.chip.fail{background:#ffebee;color:#b71c1c}.kind{font-size:11px;font-weight:600;
text-transform:uppercase;color:#5f6b7a;margin-right:4px}ul{margin:4px 0;padding-left:20px}
.reasons li{color:#b71c1c}.empty{color:#5f6b7a;font-style:italic}
"""


def _png(fig: Figure) -> str:
    buffer = io.BytesIO()
    # Same pixel size for every plot (no tight bbox), so fonts look the same across panels.
    fig.savefig(buffer, format="png", dpi=DPI)
    alt = escape(fig.axes[0].get_title(), quote=True) if fig.axes else ""
    return f'<img alt="{alt}" src="data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode()}">'


def _legend_outside(ax) -> None:
    # Right of the axes, so it never hides a bar or an annotation.
    ax.legend(frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)


def _figure() -> tuple[Figure, object]:
    fig = Figure(figsize=FIG_SIZE, layout="constrained")
    ax = fig.subplots()
    ax.spines[["top", "right"]].set_visible(False)
    return fig, ax


def plot_acceptance_by_label(summary: AuditSummary) -> str:
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


def plot_failed_rules(summary: AuditSummary) -> str:
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


def plot_relevance(summary: AuditSummary) -> str:
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


def plot_lengths(summary: AuditSummary) -> str:
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


def plot_evidence(summary: AuditSummary) -> str:
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


def _html_table(frame: pd.DataFrame, percent: Sequence[str] = ()) -> str:
    frame = frame.reset_index()
    head = "".join(f"<th>{escape(str(c).replace('_', ' '))}</th>" for c in frame.columns)
    body = []
    for row in frame.itertuples(index=False):
        cells = []
        for column, value in zip(frame.columns, row, strict=True):
            if value is None or (isinstance(value, float) and pd.isna(value)):
                cells.append('<td class="num">–</td>')
            elif column in percent:
                cells.append(f'<td class="num">{100 * value:.1f}%</td>')
            elif isinstance(value, int | float):
                cells.append(f'<td class="num">{value:g}</td>')
            else:
                cells.append(f"<td>{escape(str(value))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _card(record: VerifiedRecord, cues: list[str] | None) -> str:
    ok = record.accepted
    parts = [
        f'<div class="card {"ok" if ok else "bad"}">',
        f'<div class="id">{escape(record.id)} · {escape(record.speaker)} · {escape(record.split)} · '
        f"score {record.score:.2f}{' · selected' if record.selected else ''}</div>",
        f"<blockquote>{escape(record.transcript or '(no transcript)')}</blockquote>",
    ]
    if cues is not None:
        chips = "".join(f'<span class="chip cue">{escape(c)}</span>' for c in cues)
        parts.append(
            f"<div><span class='kind'>measured</span>{chips or '<span class=empty>nothing unusual</span>'}</div>"
        )
    if record.answer is None:
        parts.append(f"<p class='empty'>unparsed answer: {escape((record.error or record.raw_text)[:300])}</p>")
    else:
        items = "".join(
            f"<li><span class='kind'>{escape(e.kind.value)}</span>"
            + (f"“{escape(e.cue)}”" if e.kind != EvidenceKind.acoustic else escape(e.cue))
            + f" → {escape(e.suggests)}</li>"
            for e in record.answer.evidence
        )
        parts += [
            f"<ul>{items}</ul>",
            f"<p>{escape(record.answer.reasoning)}</p>",
            f"<p><b>Concluded:</b> {escape(record.answer.emotion)} <span class='muted'>(gold "
            f"{escape(record.emotion.value)})</span></p>",
        ]
    if record.reasons:
        parts.append("<ul class='reasons'>" + "".join(f"<li>{escape(str(r))}</li>" for r in record.reasons) + "</ul>")
    failed = [c.name for c in record.checks if not c.passed]
    if failed:
        parts.append("<div>" + "".join(f'<span class="chip fail">{escape(n)}</span>' for n in failed) + "</div>")
    parts.append("</div>")
    return "".join(parts)


def _sample(records: list[VerifiedRecord], k: int, seed: int) -> list[VerifiedRecord]:
    # Hash order: a fixed, seedable sample that does not depend on the file's row order.
    def key(r: VerifiedRecord) -> bytes:
        return hashlib.sha256(f"{seed}\0{r.id}".encode()).digest()

    return sorted(records, key=key)[:k]


def _samples(records: list[VerifiedRecord], cues: dict[str, list[str]] | None, per_label: int, seed: int) -> str:
    by_label: dict[str, list[VerifiedRecord]] = {}
    for r in records:
        by_label.setdefault(r.emotion.value, []).append(r)
    blocks = []
    for i, (label, group) in enumerate(sorted(by_label.items())):
        accepted = [r for r in group if r.accepted]
        columns = []
        for title, subset in (("Accepted", accepted), ("Rejected", [r for r in group if not r.accepted])):
            cards = "".join(
                _card(r, cues.get(r.utterance_id, []) if cues is not None else None)
                for r in _sample(subset, per_label, seed)
            )
            columns.append(
                f"<div class='col'><h3>{title} ({len(subset)})</h3>{cards or '<p class=empty>none</p>'}</div>"
            )
        blocks.append(
            f"<details{' open' if i == 0 else ''}><summary>{escape(label)} — {len(accepted)} of {len(group)} "
            f"accepted</summary><div class='pair'>{''.join(columns)}</div></details>"
        )
    return "".join(blocks)


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
    corpus = ""
    if summary.corpus_counts:
        counts = pd.DataFrame(summary.corpus_counts).fillna(0).astype(int)
        counts.index.name = "task"
        corpus = f"<h2>Training corpora (examples)</h2>{_html_table(counts)}"
    generated = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>emoreason audit: {escape(source)}</title><style>{_CSS}</style></head>
<body><main>
<h1>emoreason audit</h1>
<p class="muted">{escape(source)} · generated {generated}</p>
<div class="kpis">{"".join(f'<div class="kpi"><span class="muted">{escape(k)}</span><b>{escape(v)}</b></div>' for k, v in kpis)}</div>
<h2>Acceptance</h2>
<div class="grid"><div class="panel">{plot_acceptance_by_label(summary)}</div>
<div class="panel">{plot_failed_rules(summary)}</div></div>
<div class="grid"><div>{_html_table(summary.by_dataset, ["rate"])}{_html_table(summary.by_style, ["rate"])}
{_html_table(summary.by_check, ["share_of_rejected"])}</div>
<div>{_html_table(summary.by_rule, ["share_of_rejected"])}</div></div>
<h2>Rationales</h2>
<div class="grid"><div class="panel">{plot_lengths(summary)}</div><div class="panel">{plot_evidence(summary)}</div></div>
<div class="grid"><div>{_html_table(summary.lengths.round(1))}</div>
<div>{_html_table(summary.evidence, ["share_all", "share_accepted"])}</div></div>
<h2>Reasoning quality (percent)</h2>
<p class="muted">Quotation and groundedness are verified deterministically by stage two's checks.
Relevance is measured by the relevance check (the cited cues point toward the label in the table
below; no quote of a sentence the corpus speaks with several emotions), or by the LLM judge where the
judge check ran; answers neither could judge are left out of it. The paper's column is its
LLM-judged score for its own model (Zhang et al., 2025), on other data: not a like-for-like comparison.
A reader's judgement of a sample remains the test of whether a rationale is worth training on.</p>
{_html_table(quality_table(summary))}
<h2>Relevance table</h2>
<p class="muted">Fitted on the training split's speaker-normalised profiles: a cue supports an emotion when
it deviates the same way as the emotion's typical deviation (*), contradicts it when it deviates the
other way; unknown cells (too few utterances) draw no verdict.</p>
<div class="panel">{plot_relevance(summary)}</div>
{corpus}
<h2>Samples: accepted and rejected rationales per label</h2>
<p class="muted">Up to {per_label} of each per label (seed {seed}); measured cues come from the acoustic
profiles{"" if cues is not None else " (none given for this run)"}.</p>
{_samples(records, cues, per_label, seed)}
</main></body></html>
"""
