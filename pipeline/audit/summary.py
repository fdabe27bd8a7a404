"""The audit's numbers: acceptance per dataset, label, style, failing check and failing *rule*;
the trainable share; evidence kinds; rationale lengths; the worst examples; reasoning quality;
the relevance table. ``format_summary`` prints them.

A rule is a failed check's reason code (pipeline.verdict.Reason): ``degeneracy · cut_at_word_cap``,
so a chart shows which rule rejects, not only which check.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import pandas as pd

from pipeline.quality import QualityReport, quality_report
from pipeline.rationale import EvidenceKind
from pipeline.records import VerifiedRecord
from pipeline.relevance import RelevanceTable
from pipeline.verdict import CheckName, Reason

LENGTH_QUANTILES = (0.0, 0.1, 0.5, 0.9, 1.0)
EXCERPT_CHARS = 90
# The checks whose pass verifies that the evidence supports the label.
SUPPORT_CHECKS = (CheckName.relevance, CheckName.judge)


def rule_of(reason: Reason) -> str:
    """'check · code' of one failed check's reason (its first problem's code)."""
    return f"{reason.check.value} · {reason.code}"


def trainable(record: VerifiedRecord) -> bool:
    """Accepted, and its evidence verified to support the label: the relevance check (or the judge) passed."""
    if not record.accepted:
        return False
    verified = [c for c in record.checks if c.name in SUPPORT_CHECKS and c.applicable]
    return bool(verified) and all(c.passed for c in verified)


def record_frame(records: Iterable[VerifiedRecord]) -> pd.DataFrame:
    """One row per verified record with the columns the audit groups by."""
    rows = []
    for r in records:
        evidence = r.answer.evidence if r.answer is not None else []
        kinds = [e.kind for e in evidence]
        rows.append(
            {
                "id": r.id,
                "utterance_id": r.utterance_id,
                "dataset": r.dataset,
                "split": r.split,
                "speaker": r.speaker,
                "emotion": r.emotion.value,
                "style": r.style,
                "accepted": r.accepted,
                "selected": r.selected,
                "score": r.score,
                "failed_checks": [c.name.value for c in r.checks if not c.passed],
                "failed_rules": [rule_of(reason) for reason in r.reasons],
                "trainable": trainable(r),
                "reasons": [str(reason) for reason in r.reasons],
                "parsed": r.answer is not None,
                "concluded": r.answer.emotion if r.answer is not None else None,
                "reasoning_words": len(r.answer.reasoning.split()) if r.answer is not None else 0,
                **{f"n_{k.value}": kinds.count(k) for k in EvidenceKind},
                "excerpt": (r.answer.reasoning if r.answer is not None else r.error or r.raw_text)[:EXCERPT_CHARS],
            }
        )
    return pd.DataFrame(rows)


@dataclass
class AuditSummary:
    frame: pd.DataFrame
    by_dataset: pd.DataFrame
    by_label: pd.DataFrame
    by_style: pd.DataFrame
    by_check: pd.DataFrame
    by_rule: pd.DataFrame
    evidence: pd.DataFrame
    lengths: pd.DataFrame
    top_failing: pd.DataFrame
    quality_all: QualityReport
    quality_accepted: QualityReport
    corpus_counts: dict[str, dict[str, int]] | None = None
    relevance: RelevanceTable | None = None

    @property
    def n(self) -> int:
        return len(self.frame)

    @property
    def trainable_utterances(self) -> int:
        """Utterances with a selected rationale whose evidence is verified to support the label."""
        f = self.frame
        return int(f.loc[f["trainable"] & f["selected"], "utterance_id"].nunique())


def _acceptance(frame: pd.DataFrame, key: str) -> pd.DataFrame:
    grouped = frame.groupby(key)["accepted"].agg(candidates="size", accepted="sum")
    grouped["rate"] = grouped["accepted"] / grouped["candidates"]
    return grouped.sort_values("candidates", ascending=False)


def summarise(
    records: list[VerifiedRecord],
    top: int = 10,
    corpus_counts: dict[str, dict[str, int]] | None = None,
    relevance: RelevanceTable | None = None,
) -> AuditSummary:
    if not records:
        raise ValueError("no verified records to audit")
    frame = record_frame(records)
    rejected = frame[~frame["accepted"]]

    failures = rejected.explode("failed_checks").dropna(subset=["failed_checks"])
    by_check = failures.groupby("failed_checks").size().rename("failures").to_frame()
    by_check["share_of_rejected"] = by_check["failures"] / max(len(rejected), 1)
    by_check = by_check.sort_values("failures", ascending=False)
    by_check.index.name = "check"

    rules = rejected.explode("failed_rules").dropna(subset=["failed_rules"])
    by_rule = rules.groupby("failed_rules").size().rename("failures").to_frame()
    by_rule["share_of_rejected"] = by_rule["failures"] / max(len(rejected), 1)
    by_rule = by_rule.sort_values("failures", ascending=False)
    by_rule.index.name = "rule"

    parsed = frame[frame["parsed"]]
    evidence_rows = []
    for kind in EvidenceKind:
        col = f"n_{kind.value}"
        accepted = parsed[parsed["accepted"]]
        evidence_rows.append(
            {
                "kind": kind.value,
                "items": int(parsed[col].sum()),
                "answers_citing": int((parsed[col] > 0).sum()),
                "share_all": float((parsed[col] > 0).mean()) if len(parsed) else 0.0,
                "share_accepted": float((accepted[col] > 0).mean()) if len(accepted) else 0.0,
            }
        )
    evidence = pd.DataFrame(evidence_rows).set_index("kind")

    lengths = (
        parsed.assign(verdict=parsed["accepted"].map({True: "accepted", False: "rejected"}))
        .groupby("verdict")["reasoning_words"]
        .describe(percentiles=list(LENGTH_QUANTILES[1:-1]))
    )

    worst = rejected.assign(n_failed=rejected["failed_checks"].map(len))
    worst = worst.sort_values(["n_failed", "id"], ascending=[False, True]).head(top)
    top_failing = worst[["id", "emotion", "concluded", "reasons", "excerpt"]].reset_index(drop=True)

    return AuditSummary(
        frame=frame,
        by_dataset=_acceptance(frame, "dataset"),
        by_label=_acceptance(frame, "emotion"),
        by_style=_acceptance(frame, "style"),
        by_check=by_check,
        by_rule=by_rule,
        evidence=evidence,
        lengths=lengths,
        top_failing=top_failing,
        quality_all=quality_report(records),
        quality_accepted=quality_report(r for r in records if r.accepted),
        corpus_counts=corpus_counts,
        relevance=relevance,
    )


def relevance_frame(table: RelevanceTable) -> pd.DataFrame:
    """Emotion × measure: the mean z of each cell (NaN: unknown), for the heat map and the text summary."""
    frame = pd.DataFrame(
        [{"emotion": c.emotion.value, "measure": c.measure.value, "mean_z": c.mean_z} for c in table.cells]
    )
    if frame.empty:
        return frame
    return frame.pivot(index="emotion", columns="measure", values="mean_z").reindex(
        index=list(dict.fromkeys(c.emotion.value for c in table.cells)),
        columns=list(dict.fromkeys(c.measure.value for c in table.cells)),
    )


def relevance_text(table: RelevanceTable) -> str:
    """The table as text: mean z, with * where the deviation is typical (the direction a cue must share)."""
    lines = []
    cells = {(c.emotion.value, c.measure.value): c for c in table.cells}
    frame = relevance_frame(table)
    if frame.empty:
        return "(no cells)"
    out = frame.astype(object)
    for emotion in frame.index:
        for measure in frame.columns:
            c = cells[(emotion, measure)]
            mark = "*" if c.direction else "†" if c.disputed else ""
            out.loc[emotion, measure] = "unknown" if c.direction is None else f"{c.mean_z:+.2f}{mark}"
    lines.append(out.to_string())
    lines.append(
        f"(* typical deviation: the {table.settings.confidence:.0%} interval excludes 0 and |mean z| >= "
        f"{table.settings.min_effect}; † disputed: the direction contradicts the literature and supports nothing; "
        f"fitted on {table.fitted_on} utterances of the {table.settings.split} split)"
    )
    for sentence in table.sentences:
        lines.append(f"sentence spoken with {len(sentence.emotions)} emotions: {sentence.text!r}")
    return "\n".join(lines)


def quality_table(summary: AuditSummary) -> pd.DataFrame:
    """Metric × (all candidates, accepted, paper) in percent."""
    rows = []
    for (name, ours_all, paper, basis), (_, ours_acc, _, _) in zip(
        summary.quality_all.rows(), summary.quality_accepted.rows(), strict=True
    ):
        rows.append({"metric": name, "all": ours_all, "accepted": ours_acc, "paper": paper, "basis (all)": basis})
    return pd.DataFrame(rows).set_index("metric")


def _pct(frame: pd.DataFrame, *columns: str) -> pd.DataFrame:
    out = frame.copy()
    for c in columns:
        out[c] = out[c].map(lambda v: f"{100 * v:.1f}%")
    return out


def format_summary(summary: AuditSummary) -> str:
    f = summary.frame
    n_acc = int(f["accepted"].sum())
    lines = [
        f"{summary.n} candidates for {f['utterance_id'].nunique()} utterances: {n_acc} accepted "
        f"({n_acc / summary.n:.1%}), {int(f['selected'].sum())} selected for training, "
        f"{int((~f['parsed']).sum())} without an answer (no request, or unparsed)",
        f"trainable (accepted, evidence verified to support the label): {int(f['trainable'].sum())} candidates, "
        f"{summary.trainable_utterances} of {f['utterance_id'].nunique()} utterances",
    ]
    with pd.option_context("display.width", 120, "display.max_colwidth", 60, "display.max_columns", 12):
        for title, table in (
            ("Acceptance by dataset", _pct(summary.by_dataset, "rate")),
            ("Acceptance by label", _pct(summary.by_label, "rate")),
            ("Acceptance by style", _pct(summary.by_style, "rate")),
            ("Failed checks (rejected candidates can fail several)", _pct(summary.by_check, "share_of_rejected")),
            ("Failed rules (first problem of each failed check)", _pct(summary.by_rule, "share_of_rejected")),
            ("Evidence kinds (parsed answers)", _pct(summary.evidence, "share_all", "share_accepted")),
            ("Reasoning length in words", summary.lengths.round(1)),
            ("Reasoning quality, percent", quality_table(summary).astype(object).fillna("-")),
        ):
            lines += ["", f"== {title}", table.to_string() if len(table) else "(none)"]
        lines += ["", "== Top failing examples"]
        for row in summary.top_failing.itertuples():
            lines.append(
                f"- {row.id} (gold {row.emotion}, concluded {row.concluded if isinstance(row.concluded, str) else '-'})"
            )
            lines += [f"    {reason}" for reason in row.reasons]
            lines.append(f"    > {row.excerpt}")
        if summary.corpus_counts:
            counts = pd.DataFrame(summary.corpus_counts).fillna(0).astype(int)
            lines += ["", "== Training examples (task × split)", counts.to_string()]
        if summary.relevance is not None:
            lines += [
                "",
                "== Relevance table: mean speaker-normalised z per emotion and measure",
                relevance_text(summary.relevance),
            ]
    return "\n".join(lines)
