"""How rejects are shown on a terminal: by the commands and by ``make data``'s steps alike."""

from __future__ import annotations

from collections.abc import Sequence

from pipeline.records import Reject

# Reject lines printed before pointing at the rejects file for the rest.
SHOWN_REJECTS = 50


def reject_lines(rejects: Sequence[Reject], where: str, shown: int = SHOWN_REJECTS) -> list[str]:
    """One indented line per reject (file and line or id, reason, detail), at most ``shown`` of them."""
    lines = [f"  {r.line()}" for r in rejects[:shown]]
    if len(rejects) > shown:
        lines.append(f"  ... and {len(rejects) - shown} more in {where}")
    return lines
