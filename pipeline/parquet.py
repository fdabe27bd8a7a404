"""Parquet I/O for stage records: the Arrow schema is derived from the pydantic model.

Writes are atomic (a temporary file in the same folder, then ``os.replace``), so a killed run
never leaves a half-written parquet behind.
"""

from __future__ import annotations

import datetime as dt
import functools
import os
import types
import typing
from collections.abc import Iterable, Iterator
from enum import Enum
from pathlib import Path
from typing import TypeVar

import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel

M = TypeVar("M", bound=BaseModel)

# bool before int: bool is a subclass of int and would otherwise map to int64.
_SCALARS: dict[type, pa.DataType] = {
    bool: pa.bool_(),
    str: pa.string(),
    int: pa.int64(),
    float: pa.float64(),
    bytes: pa.binary(),
    dt.datetime: pa.timestamp("us", tz="UTC"),
    dt.date: pa.date32(),
}


def _arrow_type(annotation: object) -> tuple[pa.DataType, bool]:
    """(Arrow type, nullable) for one field annotation."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        if len(inner) != 1:
            raise TypeError(f"cannot map union {annotation!r} to parquet")
        return _arrow_type(inner[0])[0], True
    if origin is typing.Literal:
        return _arrow_type(type(args[0]))[0], False
    if origin in (list, tuple, set, frozenset):
        return pa.list_(_arrow_type(args[0])[0]), False
    if origin is dict:
        return pa.map_(_arrow_type(args[0])[0], _arrow_type(args[1])[0]), False
    if isinstance(annotation, type):
        if issubclass(annotation, BaseModel):
            return arrow_struct(annotation), False
        if issubclass(annotation, Enum):
            return pa.string(), False
        for py, arrow in _SCALARS.items():
            if issubclass(annotation, py):
                return arrow, False
    raise TypeError(f"cannot map {annotation!r} to parquet")


def arrow_struct(model: type[BaseModel]) -> pa.StructType:
    return pa.struct(arrow_schema(model))


def arrow_schema(model: type[BaseModel]) -> pa.Schema:
    fields = []
    for name, info in model.model_fields.items():
        arrow, nullable = _arrow_type(info.annotation)
        fields.append(pa.field(name, arrow, nullable=nullable, metadata={"description": info.description or ""}))
    return pa.schema(fields)


def _plain(value: object) -> object:
    """A record as plain Arrow-ready values: enums by value, dicts as map items, models as structs."""
    if isinstance(value, BaseModel):
        return {name: _plain(getattr(value, name)) for name in type(value).model_fields}
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dict):
        return [(_plain(k), _plain(v)) for k, v in value.items()]
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v) for v in value]
    return value


def to_table(records: Iterable[BaseModel], model: type[BaseModel]) -> pa.Table:
    schema = arrow_schema(model)
    rows = [_plain(r) for r in records]
    return pa.Table.from_pylist(rows, schema=schema)


def write_text_atomic(text: str, path: str | Path) -> Path:
    """``text`` (UTF-8) to ``path`` as tables are written: a kill leaves the old file or the new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_table_atomic(table: pa.Table, path: str | Path, **kwargs) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        pq.write_table(table, tmp, **kwargs)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_records(records: Iterable[BaseModel], path: str | Path, model: type[BaseModel], **kwargs) -> Path:
    """Write records as parquet with the model's schema, atomically."""
    return write_table_atomic(to_table(records, model), path, **kwargs)


# How to turn one Arrow row back into the model's input: per field, "map" (Arrow gives a list of
# (key, value) pairs; pydantic wants a dict), a nested plan for a model or a list of models, or
# nothing. Computed once per model: walking the type hints per row costs ~1 ms.
_Plan = dict[str, "str | tuple[str, _Plan]"]


@functools.cache
def _plan(model: type[BaseModel]) -> _Plan:
    plan: _Plan = {}
    for name, info in model.model_fields.items():
        annotation = info.annotation
        if typing.get_origin(annotation) in (typing.Union, types.UnionType):
            annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
        origin, args = typing.get_origin(annotation), typing.get_args(annotation)
        if origin is dict:
            plan[name] = "map"
        elif isinstance(annotation, type) and issubclass(annotation, BaseModel) and _plan(annotation):
            plan[name] = ("model", _plan(annotation))
        elif (
            origin is list and args and isinstance(args[0], type) and issubclass(args[0], BaseModel) and _plan(args[0])
        ):
            plan[name] = ("list", _plan(args[0]))
    return plan


def _apply(row: dict, plan: _Plan) -> dict:
    for name, step in plan.items():
        value = row.get(name)
        if value is None:
            continue
        if step == "map":
            row[name] = dict(value)
        elif step[0] == "model":
            _apply(value, step[1])
        else:
            for item in value:
                _apply(item, step[1])
    return row


def iter_records(path: str | Path, model: type[M], batch_size: int = 4096) -> Iterator[M]:
    """Stream records back from parquet, validated by the model."""
    plan = _plan(model)
    for batch in pq.ParquetFile(path).iter_batches(batch_size=batch_size):
        for row in batch.to_pylist():
            yield model.model_validate(_apply(row, plan) if plan else row)


def read_records(path: str | Path, model: type[M]) -> list[M]:
    return list(iter_records(path, model))
