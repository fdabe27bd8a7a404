"""``emoreason audit PATH``: summarise stage two's verdicts and write PATH/audit.html.

PATH is a run folder (``make data``'s OUT: verified.parquet, and when present profiles.parquet,
relevance.json and corpora/manifest.json) or a verified parquet file (its folder is searched for the others).
The work is pipeline.audit.run's; this prints it. Exits 1 when there is nothing to audit.
"""

from __future__ import annotations

import sys

from pipeline.audit.run import AuditConfig, AuditError, run_audit

Args = AuditConfig


def run(args: AuditConfig) -> int:
    try:
        result = run_audit(args)
    except AuditError as err:
        print(f"emoreason audit: {err}", file=sys.stderr)
        return 1
    print(result.summary)
    for note in result.notes:
        print(f"emoreason audit: {note}", file=sys.stderr)
    if result.report is not None:
        print(f"\nreport: {result.report}")
    return 0
