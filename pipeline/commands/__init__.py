"""Subcommands of ``emoreason`` (see pipeline/cli.py) and what they share."""

from __future__ import annotations

import argparse

import yaml


def adapter_option(text: str) -> tuple[str, object]:
    """``-o KEY=VALUE`` for dataset adapters; the value is read as YAML so numbers, lists and
    booleans keep their type (``-o splits=[dev] -o context_turns=3``)."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key.replace("-", "_"), yaml.safe_load(value)
