"""Subcommands of ``emoreason`` that train, evaluate and use the model, and what they share."""

from __future__ import annotations

import shlex
import sys


def typed_command(name: str) -> str:
    """The command line as typed, when this process is ``emoreason <name>`` (not a test harness):
    written into a run's summary so that a report says how it was made."""
    return shlex.join(["emoreason", *sys.argv[1:]]) if sys.argv[1:2] == [name] else ""


def inference_device(name: str) -> str:
    """``auto``: the GPU when there is one, else the CPU; any other name as given."""
    import torch  # only when a model is loaded: `emoreason --help` stays fast

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name
