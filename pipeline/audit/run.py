"""One audit of a run: read its verdicts (and what lies beside them), print the summary, write the report.

    result = run_audit(AuditConfig(path=Path("runs/demo")))   # -> runs/demo/audit.html

Called by ``emoreason audit`` and by ``make data``'s last step alike. PATH is a run folder
(``make data``'s OUT: verified.parquet, and when present profiles.parquet, relevance.json and
corpora/manifest.json) or a verified parquet file (its folder is searched for the others).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict, Field
from pydantic_settings import CliPositionalArg

from pipeline.audit.report import SAMPLES_PER_LABEL, render_report
from pipeline.audit.summary import format_summary, summarise
from pipeline.records import VerifiedRecord
from pipeline.relevance import RELEVANCE_FILE, load_relevance

VERIFIED_FILE = "verified.parquet"
PROFILES_FILE = "profiles.parquet"
MANIFEST_FILE = Path("corpora") / "manifest.json"
REPORT_FILE = "audit.html"
BATCH_ROWS = 4096


class AuditConfig(BaseModel):
    """What to audit and how much of it to show."""

    model_config = ConfigDict(extra="forbid")

    path: CliPositionalArg[Path] = Field(description=f"run folder (with {VERIFIED_FILE}) or a verified parquet file")
    profiles: Path | None = Field(None, description=f"acoustic profiles parquet (default: {PROFILES_FILE} beside it)")
    out: Path | None = Field(None, description=f"HTML report path (default: {REPORT_FILE} in the run folder)")
    samples: int = Field(SAMPLES_PER_LABEL, ge=0, description="samples per label and verdict")
    top: int = Field(10, ge=0, description="failing examples listed in the summary")
    seed: int = Field(0, description="seeds the sample of rationales in the report")
    html: bool = Field(True, description="write the HTML report (--no-html: print the summary only)")


class AuditError(ValueError):
    """Nothing to audit: no verified parquet, or one without records."""


@dataclass
class AuditResult:
    summary: str  # the terminal summary
    report: Path | None  # the HTML report, when one was written
    notes: list[str] = field(default_factory=list)  # what the report lacks, and why


def load_cues(path: Path) -> dict[str, list[str]]:
    """utterance id -> the measured cue phrases of its acoustic profile."""
    table = pq.read_table(path, columns=["utterance_id", "cues"])
    return {
        row["utterance_id"]: [c["phrase"] for c in row["cues"] or []]
        for row in table.to_pylist()
    }  # fmt: skip


def load_verified(path: Path) -> list[VerifiedRecord]:
    """A verified parquet file, or a folder of them (e.g. partitioned by ``accepted``).

    Rows are validated directly: VerifiedRecord has no map columns, so the generic reader's
    per-row type walk (pipeline.parquet.iter_records) is not needed, and it costs ~1 ms a row.
    """
    fields = VerifiedRecord.model_fields
    records = []
    for batch in pq.read_table(path).to_batches(max_chunksize=BATCH_ROWS):
        records += [
            VerifiedRecord.model_validate({k: v for k, v in row.items() if k in fields}) for row in batch.to_pylist()
        ]
    return records


def run_audit(cfg: AuditConfig) -> AuditResult:
    """Summarise the verdicts at ``cfg.path`` and, unless ``cfg.html`` is off, write the HTML report."""
    path = cfg.path
    folder = path if path.is_dir() else path.parent
    verified = folder / VERIFIED_FILE if path.is_dir() else path
    if not verified.exists():
        raise AuditError(f"{verified} not found (run `emoreason verify` or `make data` first)")
    records = load_verified(verified)
    if not records:
        raise AuditError(f"{verified} holds no records")
    manifest = folder / MANIFEST_FILE
    counts = json.loads(manifest.read_text()).get("counts") if manifest.is_file() else None
    relevance = load_relevance(folder / RELEVANCE_FILE) if (folder / RELEVANCE_FILE).is_file() else None
    summary = summarise(records, top=cfg.top, corpus_counts=counts, relevance=relevance)
    text = format_summary(summary)
    if not cfg.html:
        return AuditResult(text, None)

    profiles = cfg.profiles or folder / PROFILES_FILE
    notes = []
    if cfg.profiles is not None and not profiles.is_file():
        # Profiles only add the measured cues to the samples: report without them.
        notes.append(f"profiles {profiles} not found; the report shows no measured cues")
    cues = load_cues(profiles) if profiles.is_file() else None
    out = cfg.out or folder / REPORT_FILE
    html = render_report(summary, records, str(verified), cues=cues, per_label=cfg.samples, seed=cfg.seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(html, encoding="utf-8")
    return AuditResult(text, out, notes)
