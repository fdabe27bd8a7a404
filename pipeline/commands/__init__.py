"""Subcommands of ``emoreason`` (see pipeline/cli.py) and what they share."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import yaml

from pipeline.records import Reject

# Reject lines printed by a command before it points at the rejects file for the rest.
SHOWN_REJECTS = 50


def adapter_option(text: str) -> tuple[str, object]:
    """``-o KEY=VALUE`` for dataset adapters; the value is read as YAML so numbers, lists and
    booleans keep their type (``-o splits=[dev] -o context_turns=3``)."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key.replace("-", "_"), yaml.safe_load(value)


def reject_lines(rejects: Sequence[Reject], where: str, shown: int = SHOWN_REJECTS) -> list[str]:
    """One indented line per reject (file and line or id, reason, detail), at most ``shown`` of them."""
    lines = [f"  {r.line()}" for r in rejects[:shown]]
    if len(rejects) > shown:
        lines.append(f"  ... and {len(rejects) - shown} more in {where}")
    return lines
