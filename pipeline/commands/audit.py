"""``emoreason audit PATH``: summarise stage two's verdicts and write PATH/audit.html.

PATH is a run folder (``make data``'s OUT: verified.parquet, and when present profiles.parquet,
relevance.json and corpora/manifest.json) or a verified parquet file (its folder is searched for the others).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pyarrow.parquet as pq

from pipeline.audit.report import SAMPLES_PER_LABEL, render_report
from pipeline.audit.summary import format_summary, summarise
from pipeline.records import VerifiedRecord
from pipeline.relevance import RELEVANCE_FILE, load_relevance

VERIFIED_FILE = "verified.parquet"
PROFILES_FILE = "profiles.parquet"
MANIFEST_FILE = Path("corpora") / "manifest.json"
REPORT_FILE = "audit.html"
BATCH_ROWS = 4096


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", type=Path, help=f"run folder (with {VERIFIED_FILE}) or a verified parquet file")
    parser.add_argument("--profiles", type=Path, help=f"acoustic profiles parquet (default: {PROFILES_FILE} beside it)")
    parser.add_argument("--out", type=Path, help=f"HTML report path (default: {REPORT_FILE} in the run folder)")
    parser.add_argument("--samples", type=int, default=SAMPLES_PER_LABEL, help="samples per label and verdict")
    parser.add_argument("--top", type=int, default=10, help="failing examples listed in the summary")
    parser.add_argument("--seed", type=int, default=0, help="seeds the sample of rationales in the report")
    parser.add_argument("--no-html", action="store_true", help="print the summary only")


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


def run(args: argparse.Namespace) -> int:
    path: Path = args.path
    folder = path if path.is_dir() else path.parent
    verified = folder / VERIFIED_FILE if path.is_dir() else path
    if not verified.exists():
        print(f"emoreason audit: {verified} not found (run `emoreason verify` or `make data` first)", file=sys.stderr)
        return 1
    records = load_verified(verified)
    if not records:
        print(f"emoreason audit: {verified} holds no records", file=sys.stderr)
        return 1
    manifest = folder / MANIFEST_FILE
    counts = json.loads(manifest.read_text()).get("counts") if manifest.is_file() else None
    relevance = load_relevance(folder / RELEVANCE_FILE) if (folder / RELEVANCE_FILE).is_file() else None
    summary = summarise(records, top=args.top, corpus_counts=counts, relevance=relevance)
    print(format_summary(summary))
    if args.no_html:
        return 0

    profiles = args.profiles or folder / PROFILES_FILE
    if args.profiles is not None and not profiles.is_file():
        # Profiles only add the measured cues to the samples: report without them.
        print(f"emoreason audit: profiles {profiles} not found; the report shows no measured cues", file=sys.stderr)
    cues = load_cues(profiles) if profiles.is_file() else None
    out = args.out or folder / REPORT_FILE
    html = render_report(summary, records, str(verified), cues=cues, per_label=args.samples, seed=args.seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(html, encoding="utf-8")
    print(f"\nreport: {out}")
    return 0
