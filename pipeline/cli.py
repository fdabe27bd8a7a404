"""The ``emoreason`` command. Each subcommand lives in its own module, imported only when used.

A subcommand module provides ``add_arguments(parser)`` and ``run(args) -> int``. The table names
modules by string so that ``emoreason --help`` stays fast and ``pipeline`` does not import
``model`` (the training and evaluation commands live there).
"""

from __future__ import annotations

import argparse
import importlib
import sys

SUBCOMMANDS: dict[str, tuple[str, str]] = {
    # name: (module, one-line help)
    "list": ("pipeline.commands.list_datasets", "load a dataset through its adapter and count utterances per label"),
    "profile": ("pipeline.commands.profile", "measure the acoustic profile of every utterance of a dataset"),
    "generate": ("pipeline.commands.generate", "stage one: generate rationales with a teacher LLM"),
    "verify": ("pipeline.commands.verify", "stage two: check rationales and write verdicts"),
    "data": (
        "pipeline.commands.data",
        "run the whole data pipeline: adapters, profiles, stage one, stage two, corpora",
    ),
    "audit": ("pipeline.commands.audit", "summarise verdicts of a run and write an HTML report"),
    "train": ("model.commands.train", "fine-tune the dual-encoder AudioLLM"),
    "eval": ("model.commands.evaluate", "evaluate a checkpoint on a test split"),
    "baseline": ("model.commands.baseline", "classical baseline: acoustic profile + logistic regression"),
    "predict": ("model.commands.predict", "emotion and rationale for audio files"),
    "bench": ("benchmarks.run", "run the benchmarks, print a table and write JSON"),
}


def build_parser(selected: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="emoreason", description="Speech emotion reasoning with multitask AudioLLMs.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in SUBCOMMANDS.items():
        sp = sub.add_parser(name, help=help_text, description=help_text)
        if name == selected:
            importlib.import_module(module).add_arguments(sp)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    selected = next((a for a in argv if not a.startswith("-")), None)
    if selected is not None and selected not in SUBCOMMANDS:
        build_parser().print_usage(sys.stderr)
        print(f"emoreason: unknown command {selected!r}; choose one of {', '.join(SUBCOMMANDS)}", file=sys.stderr)
        return 2
    parser = build_parser(selected)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    return int(importlib.import_module(SUBCOMMANDS[args.command][0]).run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
