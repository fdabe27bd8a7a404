"""Stage configuration: one typed object, defaults in code, YAML and CLI flags override.

    cfg = load_config(DataConfig, yaml_path, {"generate": {"llm": {"model": "x"}}, "generate.sampling.n": 3})
    write_resolved(cfg, out_dir / "data.config.yaml")

Overrides are a nested tree (what the command line set, see pipeline.commands.parse_config) or
dotted keys, which address nested models. Unknown keys are errors (models forbid extras).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, TypeVar

import yaml
from pydantic import AliasChoices, BaseModel, BeforeValidator, Field

C = TypeVar("C", bound=BaseModel)


def _set_dotted(tree: dict[str, Any], key: str, value: Any) -> None:
    """Set ``a.b.c`` in a nested tree; a mapping value merges into the section it lands on."""
    *parents, leaf = key.split(".")
    for part in parents:
        tree = tree.setdefault(part, {})
        if not isinstance(tree, dict):
            raise ValueError(f"config key {key!r}: {part!r} is not a section")
    if isinstance(value, dict) and isinstance(tree.get(leaf), dict):
        _merge(tree[leaf], value)
    else:
        tree[leaf] = value


def _merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """Sections merge key by key; any other value (lists included) replaces the default."""
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value
    return base


def apply_overrides(tree: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Set every (dotted or nested) key of ``overrides`` in ``tree``, None included; sections merge."""
    for key, value in overrides.items():
        _set_dotted(tree, key, value)
    return tree


def user_settings(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """What the user set: the YAML file, then ``overrides`` (None values skipped), as one nested tree."""
    tree: dict[str, Any] = {}
    if path is not None:
        loaded = yaml.safe_load(Path(path).read_text()) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"{path}: expected a mapping at the top level")
        _merge(tree, loaded)
    for key, value in (overrides or {}).items():
        if value is not None:
            _set_dotted(tree, key, value)
    return tree


def load_config(
    cls: type[C],
    path: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
    defaults: C | None = None,
) -> C:
    """Defaults (``defaults``, else ``cls()``), then the YAML file, then ``overrides`` (None values are skipped).

    Overrides land on the resolved defaults, so setting one key of a section keeps the code's
    defaults for the rest of that section (even where a section's default differs from the
    default of its type).
    """
    tree: dict[str, Any] = (defaults if defaults is not None else cls()).model_dump(mode="json")
    return cls.model_validate(_merge(tree, user_settings(path, overrides)))


def write_resolved(config: BaseModel, path: str | Path) -> Path:
    """Write the fully resolved config (every default spelled out) next to a stage's outputs."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))
    return path


def _yaml_values(value: Any) -> Any:
    """Adapter options typed as YAML (``-o splits=[dev] -o context_turns=3``): numbers, lists and
    booleans keep their type; keys may be spelled with dashes."""
    if not isinstance(value, dict):
        return value
    return {str(k).replace("-", "_"): yaml.safe_load(v) if isinstance(v, str) else v for k, v in value.items()}


# ``-o KEY=VALUE`` (repeatable): options of a dataset adapter (pipeline.datasets).
AdapterOptions = Annotated[dict[str, Any], BeforeValidator(_yaml_values)]


def adapter_options(description: str = "dataset adapter option, KEY=VALUE with a YAML value (repeatable)") -> Any:
    """The ``options`` field of a command that loads a dataset: ``--options`` or ``-o``."""
    return Field(default_factory=dict, validation_alias=AliasChoices("o", "options"), description=description)
