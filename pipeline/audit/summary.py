"""The audit's numbers: acceptance per dataset, label, style and failing check; evidence kinds;
rationale lengths; the worst examples; reasoning quality. ``format_summary`` prints them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import pandas as pd

from pipeline.quality import QualityReport, quality_report
from pipeline.rationale import EvidenceKind
from pipeline.records import VerifiedRecord

LENGTH_QUANTILES = (0.0, 0.1, 0.5, 0.9, 1.0)
EXCERPT_CHARS = 90


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
                "failed_checks": [c.name for c in r.checks if not c.passed],
                "reasons": list(r.reasons),
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
    evidence: pd.DataFrame
    lengths: pd.DataFrame
    top_failing: pd.DataFrame
    quality_all: QualityReport
    quality_accepted: QualityReport
    corpus_counts: dict[str, dict[str, int]] | None = None

    @property
    def n(self) -> int:
        return len(self.frame)


def _acceptance(frame: pd.DataFrame, key: str) -> pd.DataFrame:
    grouped = frame.groupby(key)["accepted"].agg(candidates="size", accepted="sum")
    grouped["rate"] = grouped["accepted"] / grouped["candidates"]
    return grouped.sort_values("candidates", ascending=False)


def summarise(
    records: list[VerifiedRecord], top: int = 10, corpus_counts: dict[str, dict[str, int]] | None = None
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
        evidence=evidence,
        lengths=lengths,
        top_failing=top_failing,
        quality_all=quality_report(records),
        quality_accepted=quality_report(r for r in records if r.accepted),
        corpus_counts=corpus_counts,
    )


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
        f"{int((~f['parsed']).sum())} unparsed",
    ]
    with pd.option_context("display.width", 120, "display.max_colwidth", 60, "display.max_columns", 12):
        for title, table in (
            ("Acceptance by dataset", _pct(summary.by_dataset, "rate")),
            ("Acceptance by label", _pct(summary.by_label, "rate")),
            ("Acceptance by style", _pct(summary.by_style, "rate")),
            ("Failed checks (rejected candidates can fail several)", _pct(summary.by_check, "share_of_rejected")),
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
    return "\n".join(lines)
