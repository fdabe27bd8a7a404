"""Trainer state on disk that cannot run code when read: JSON for the structure, safetensors for
the tensors.

``torch.load(weights_only=False)`` unpickles, and a pickle can call anything: a crafted
``trainer_state.pt`` dropped into a run folder would run its payload on ``--resume``. Here a
state (optimizer and LR-scheduler state dicts, the data plan, RNG states) is split into
``NAME.json`` (nested dicts, lists, numbers, strings; tensors and numpy arrays replaced by a
reference, tuples and non-string dict keys tagged so they come back as they were) and
``NAME.safetensors`` (the tensors). Reading is ``json.loads`` plus ``safetensors.load_file``:
neither executes anything. A value of any other type is refused when saving.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

FORMAT = "emoreason-state/1"
_TENSOR, _ARRAY, _TUPLE, _ITEMS = "__tensor__", "__ndarray__", "__tuple__", "__items__"


class UnsafeStateError(ValueError):
    """A state file that is missing, not in this format, or would need unpickling to be read."""


def save_state(state: object, directory: Path, name: str) -> None:
    """Write ``directory/name.json`` and ``directory/name.safetensors``."""
    tensors: dict[str, torch.Tensor] = {}

    def encode(value: object) -> object:
        if isinstance(value, torch.Tensor):
            key = f"t{len(tensors)}"
            tensors[key] = value.detach().cpu().contiguous().clone()  # clone: safetensors refuses shared storage
            return {_TENSOR: key}
        if isinstance(value, np.ndarray):
            key = f"t{len(tensors)}"
            tensors[key] = torch.from_numpy(np.ascontiguousarray(value).copy())
            return {_ARRAY: key}
        if isinstance(value, np.generic):
            return value.item()
        if isinstance(value, dict):
            if all(isinstance(k, str) and not k.startswith("__") for k in value):
                return {k: encode(v) for k, v in value.items()}
            return {_ITEMS: [[encode(k), encode(v)] for k, v in value.items()]}  # e.g. optimizer state keyed by int
        if isinstance(value, tuple):
            return {_TUPLE: [encode(v) for v in value]}  # random.setstate needs its tuples back
        if isinstance(value, list):
            return [encode(v) for v in value]
        if value is None or isinstance(value, bool | int | float | str):
            return value
        raise TypeError(f"cannot store a {type(value).__name__} in trainer state (only tensors, arrays and JSON types)")

    document = {"format": FORMAT, "state": encode(state)}
    directory = Path(directory)
    save_file(tensors, directory / f"{name}.safetensors")
    (directory / f"{name}.json").write_text(json.dumps(document))


def load_state(directory: Path, name: str) -> object:
    """Read what :func:`save_state` wrote. Never unpickles: a ``name.pt`` alone is refused."""
    directory = Path(directory)
    doc_path, tensor_path = directory / f"{name}.json", directory / f"{name}.safetensors"
    if not doc_path.is_file():
        if (directory / f"{name}.pt").exists():
            raise UnsafeStateError(
                f"{directory / (name + '.pt')} is a pickle, and loading a pickle can run any code: refusing it "
                f"(this version reads {name}.json + {name}.safetensors; resume from a checkpoint it wrote)"
            )
        raise UnsafeStateError(f"{doc_path} is missing")
    try:
        document = json.loads(doc_path.read_text())
        tensors = load_file(tensor_path)
    except (OSError, ValueError, SafetensorError) as err:
        raise UnsafeStateError(f"{directory}: cannot read {name}: {err}") from err
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise UnsafeStateError(f"{doc_path} is not an {FORMAT} file")

    def decode(value: object) -> object:
        if isinstance(value, dict):
            if _TENSOR in value or _ARRAY in value:
                key = value.get(_TENSOR, value.get(_ARRAY))
                if key not in tensors:
                    raise UnsafeStateError(f"{doc_path} refers to tensor {key!r}, absent from {tensor_path.name}")
                return tensors[key] if _TENSOR in value else tensors[key].numpy()
            if _TUPLE in value:
                return tuple(decode(v) for v in value[_TUPLE])
            if _ITEMS in value:
                return {decode(k): decode(v) for k, v in value[_ITEMS]}
            return {k: decode(v) for k, v in value.items()}
        if isinstance(value, list):
            return [decode(v) for v in value]
        return value

    return decode(document["state"])
