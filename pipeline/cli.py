"""The ``emoreason`` command. Each subcommand lives in its own module, imported only when used.

A subcommand module provides its typed config ``Args`` (a pydantic model; the flags are generated
from it, see pipeline/commands/__init__.py) and ``run(args: Args) -> int``. The table names modules by string so that ``emoreason --help`` stays fast and
``pipeline`` does not import ``model`` (the training and evaluation commands live there).
"""

from __future__ import annotations

import argparse
import importlib
import sys

from pydantic_settings import CliSettingsSource

from pipeline.commands import ConfigError, add_config_arguments, parse_config

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


def build_parser(selected: str | None = None) -> tuple[argparse.ArgumentParser, CliSettingsSource | None]:
    """The parser, with the flags of the ``selected`` command only, and their settings source."""
    parser = argparse.ArgumentParser(prog="emoreason", description="Speech emotion reasoning with multitask AudioLLMs.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    source = None
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        sp = sub.add_parser(
            name, help=help_text, description=help_text, formatter_class=argparse.RawDescriptionHelpFormatter
        )
        if name == selected:
            source = add_config_arguments(sp, importlib.import_module(module_name).Args)
    return parser, source


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    selected = next((a for a in argv if not a.startswith("-")), None)
    if selected is not None and selected not in SUBCOMMANDS:
        build_parser()[0].print_usage(sys.stderr)
        print(f"emoreason: unknown command {selected!r}; choose one of {', '.join(SUBCOMMANDS)}", file=sys.stderr)
        return 2
    parser, source = build_parser(selected)
    namespace = parser.parse_args(argv)
    if namespace.command is None:
        parser.print_help()
        return 2
    module = importlib.import_module(SUBCOMMANDS[namespace.command][0])
    try:
        args = parse_config(module.Args, source, namespace)
    except ConfigError as err:
        print(f"emoreason {namespace.command}: {err}", file=sys.stderr)
        return 2
    return int(module.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
