"""Subcommands of ``emoreason`` (see pipeline/cli.py) and what they share.

A command's flags are generated from its typed config (a pydantic model, ``Args`` in the command's
module) by pydantic-settings: a flag's name is the field's name in kebab case (``max_new_tokens``:
``--max-new-tokens``), a nested model's fields are dotted (``--llm.base-urls``), a list field is
repeated (``--styles a --styles b``), a ``bool`` that defaults to False is ``--flag`` and one that
defaults to True is ``--no-flag``. Values are checked by the model, so a bad one is a one-line
error naming the flag, never a traceback.
"""

from __future__ import annotations

import argparse
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from pydantic_settings import CliSettingsSource

C = TypeVar("C", bound=BaseModel)


def add_config_arguments(parser: argparse.ArgumentParser, model: type[BaseModel]) -> CliSettingsSource:
    """Add one flag per field of ``model`` (and positional arguments for its CliPositionalArg fields)."""
    return CliSettingsSource(
        model,
        root_parser=parser,
        cli_prog_name=parser.prog,
        cli_kebab_case=True,
        cli_implicit_flags="toggle",
        cli_hide_none_type=True,
        cli_avoid_json=True,
        cli_parse_none_str="null",  # as in YAML: --eval-split null
        cli_enforce_required=True,
    )


def set_on_command_line(source: CliSettingsSource, namespace: argparse.Namespace) -> dict[str, Any]:
    """What the command line set, as a nested tree (defaults are not in it)."""
    return source(parsed_args=namespace)()


def parse_config(model: type[C], source: CliSettingsSource, namespace: argparse.Namespace) -> C:
    """The command's typed config; a value the model refuses raises ConfigError naming the flag."""
    tree = set_on_command_line(source, namespace)
    try:
        return model.model_validate(tree)
    except ValidationError as err:
        raise ConfigError(validation_message(err)) from None


class ConfigError(ValueError):
    """A value given on the command line (or in a config file) that the config refuses."""


def validation_message(err: ValidationError) -> str:
    """One line per refused value: ``--flag.name: why``."""
    lines = []
    for e in err.errors():
        flag = "--" + ".".join(str(p).replace("_", "-") for p in e["loc"]) if e["loc"] else "config"
        lines.append(f"{flag}: {e['msg']}")
    return "; ".join(lines)
