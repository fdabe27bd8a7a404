"""A generic manifest: one row per utterance in a CSV, JSONL or parquet file.

Columns: ``path`` and ``label`` (required), ``transcript``, and optionally ``id``, ``speaker``,
``split``, ``start``, ``end`` (seconds, for a span of a longer file), ``gender``, ``sentiment``,
``dialogue_id``, ``turn``. Relative paths resolve against the manifest's folder. Labels must be
canonical emotion names unless ``label_map`` (a dict, or a YAML/JSON file of raw -> canonical)
translates them; a label neither knows is an ``unknown_label`` reject naming the value.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import yaml

from pipeline.datasets.common import (
    DEFAULT_CONTEXT_TURNS,
    AdapterResult,
    Turn,
    check_clip,
    check_unique_ids,
    contexts,
    probe_audio,
    reject,
    resolve_label,
    split_filter,
)
from pipeline.datasets.text import EncodingRepairError, decode_escaped, repair_mojibake
from pipeline.labels import Emotion, Protocol, Sentiment, UnknownLabelError, canonical_sentiment
from pipeline.records import Gender, Reject, Utterance
from pipeline.splits import SplitError, normalise_split

NAME = "manifest"
REQUIRED = ("path", "label")
OPTIONAL = ("id", "transcript", "speaker", "split", "start", "end", "gender", "sentiment", "dialogue_id", "turn")
UNKNOWN_SPEAKER = "unknown"
TEXT_COLUMNS = ("transcript", "speaker")  # free text that may carry mojibake
GENDERS = {"f": Gender.female, "female": Gender.female, "w": Gender.female, "m": Gender.male, "male": Gender.male}


@dataclass(frozen=True)
class Row:
    """One row of a manifest and where it is: ``m.csv:3`` (the line it starts on), ``m.parquet row 3``."""

    where: str
    cells: dict[str, object]


@dataclass
class Rows:
    rows: list[Row] = field(default_factory=list)
    bad: list[tuple[str, str]] = field(default_factory=list)  # (where, why): rows that cannot be parsed


def _text(path: Path) -> str:
    """The file as text. Bytes that are not UTF-8 stay escaped (surrogateescape) so that each row
    can be repaired or rejected on its own, naming its line, instead of refusing the whole file."""
    return path.read_bytes().decode("utf-8-sig", errors="surrogateescape")


def _read_csv(path: Path, sep: str) -> tuple[list[str], Rows]:
    out = Rows()
    reader = csv.reader(io.StringIO(_text(path), newline=""), delimiter=sep)
    try:
        header = next(reader, None)
    except csv.Error as err:
        raise ValueError(f"{NAME}: {path}:1: cannot read the header row: {err}") from err
    if header is None or not any(h.strip() for h in header):
        raise ValueError(f"{NAME}: {path} is empty: expected a header row with the columns {', '.join(REQUIRED)}")
    header = [h.strip() for h in header]
    line = reader.line_num
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            break
        except csv.Error as err:
            out.bad.append((f"{path.name}:{line + 1}", f"cannot parse the row: {err}"))
            line = reader.line_num
            continue
        where, line = f"{path.name}:{line + 1}", reader.line_num  # a quoted field may span lines
        if not any(f.strip() for f in fields):
            continue  # a blank line
        if len(fields) != len(header):
            out.bad.append((where, f"{len(fields)} fields where the header has {len(header)}"))
            continue
        out.rows.append(Row(where, dict(zip(header, fields, strict=True))))
    return header, out


def _read_json(path: Path, lines: bool) -> tuple[list[str], Rows]:
    out, text = Rows(), _text(path)
    if lines:
        for number, line in enumerate(text.split("\n"), 1):
            where = f"{path.name}:{number}"
            if not line.strip():
                continue
            try:
                cells = json.loads(line)
            except json.JSONDecodeError as err:
                out.bad.append((where, f"not JSON: {err}"))
                continue
            if isinstance(cells, dict):
                out.rows.append(Row(where, cells))
            else:
                out.bad.append((where, f"a JSON {type(cells).__name__}, not an object with the columns as keys"))
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(f"{NAME}: {path} is not JSON: {err}") from err
        records = pd.DataFrame(data).to_dict(orient="records") if isinstance(data, dict) else data
        if not isinstance(records, list):
            raise ValueError(f"{NAME}: {path} must hold a list of objects, one per utterance")
        for number, cells in enumerate(records, 1):
            where = f"{path.name} item {number}"
            if isinstance(cells, dict):
                out.rows.append(Row(where, cells))
            else:
                out.bad.append((where, f"a JSON {type(cells).__name__}, not an object with the columns as keys"))
    columns = list(dict.fromkeys(c for row in out.rows for c in row.cells))
    return columns, out


def read_manifest(path: Path) -> Rows:
    """The rows of a manifest, and the rows that cannot be parsed (each with its line)."""
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv"):
        columns, rows = _read_csv(path, "\t" if suffix == ".tsv" else ",")
    elif suffix in (".jsonl", ".json"):
        columns, rows = _read_json(path, lines=suffix == ".jsonl")
    elif suffix == ".parquet":
        try:
            frame = pd.read_parquet(path)
        except (OSError, ValueError) as err:  # pyarrow's ArrowInvalid is a ValueError
            raise ValueError(f"{NAME}: {path} is not a readable parquet file: {err}") from err
        columns = list(frame.columns)
        rows = Rows([Row(f"{path.name} row {i}", r) for i, r in enumerate(frame.to_dict(orient="records"), 1)])
    else:
        raise ValueError(f"{NAME}: {path} is not .csv, .tsv, .jsonl, .json or .parquet")
    if not rows.rows and not rows.bad:
        return rows  # a header alone: no utterances, nothing to check the columns against
    missing = [c for c in REQUIRED if c not in columns]
    if missing:
        raise ValueError(f"{NAME}: {path} lacks columns {missing}; found {columns}")
    unknown = [c for c in columns if c not in REQUIRED + OPTIONAL]
    if unknown:
        raise ValueError(f"{NAME}: {path} has unknown columns {unknown}; allowed: {', '.join(REQUIRED + OPTIONAL)}")
    return rows


def label_table(label_map: dict[str, str] | str | Path | None) -> dict[str, Emotion]:
    """Canonical names plus the user's raw -> canonical entries (a dict or a YAML/JSON file)."""
    table = {e.value: e for e in Emotion}
    if label_map is None:
        return table
    if not isinstance(label_map, dict):
        path = Path(label_map).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"{NAME}: label_map file {path} does not exist")
        text = path.read_text(encoding="utf-8")
        label_map = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
        if not isinstance(label_map, dict):
            raise ValueError(f"{NAME}: label_map file {path} must hold a mapping raw -> canonical")
    for raw, name in label_map.items():
        if name not in table and name not in Emotion.__members__:
            raise ValueError(f"label_map maps {raw!r} to {name!r}, not a canonical emotion ({', '.join(table)})")
        table[str(raw)] = Emotion(name)
    return table


def _cell(row: dict, column: str) -> str | None:
    """A cell as a stripped string, or None when missing/empty/NaN."""
    value = row.get(column)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    text = str(value).strip()
    return text or None


def _turn(row: dict) -> int | None:
    value = _cell(row, "turn")
    return None if value is None else int(float(value))


def _seconds(row: dict, column: str) -> float | None:
    value = _cell(row, column)
    return None if value is None else float(value)


def _decoded(parsed: list[Row], name: str, repair_text: bool, result: AdapterResult) -> tuple[list[dict], list[str]]:
    """Rows whose text is clean (cp1252 bytes decoded, mojibake repaired), and where each came from.
    A row whose bytes no encoding explains is a ``bad_encoding`` reject naming its line."""
    rows, where_of, cp1252, mojibake = [], [], [], []
    for row in parsed:
        cells = {}
        try:
            for column, value in row.cells.items():
                if isinstance(value, str):
                    value, repaired = decode_escaped(value)
                    if repaired and row.where not in cp1252:
                        cp1252.append(row.where)
                    if repair_text and column in TEXT_COLUMNS:
                        fixed = repair_mojibake(value)
                        if fixed != value and row.where not in mojibake:
                            mojibake.append(row.where)
                        value = fixed
                cells[column] = value
        except EncodingRepairError as err:
            ident = _cell(row.cells, "id") or _cell(row.cells, "path") or row.where
            result.rejects.append(reject(name, f"{name}/{ident}", "bad_encoding", f"column {column}: {err}", row.where))
            continue
        rows.append(cells)
        where_of.append(row.where)
    if cp1252:
        result.notices.append(f"{NAME}: not UTF-8, read as cp1252 (e.g. 'caf\\xe9' -> 'café'): {_lines(cp1252)}")
    if mojibake:
        result.notices.append(f"{NAME}: repaired mojibake (e.g. 'â€™' -> '’'): {_lines(mojibake)}")
    return rows, where_of


def _lines(places: list[str], shown: int = 10) -> str:
    more = f" and {len(places) - shown} more" if len(places) > shown else ""
    return ", ".join(places[:shown]) + more


def load(
    root: str | Path | None,
    proto: Protocol,
    *,
    label_map: dict[str, str] | str | Path | None = None,
    name: str = NAME,
    default_split: str = "train",
    splits: list[str] | str | None = None,
    context_turns: int = DEFAULT_CONTEXT_TURNS,
    repair_text: bool = True,
) -> AdapterResult:
    if root is None:
        raise ValueError(f"{NAME}: needs the manifest file path (.csv, .jsonl or .parquet) as root")
    path = Path(root).expanduser().resolve()
    if not path.is_file():
        raise FileNotFoundError(f"{NAME}: manifest {path} does not exist")
    table = label_table(label_map)
    parsed = read_manifest(path)
    wanted = split_filter(splits)
    result = AdapterResult(audio_root=path.parent)  # relative paths in the manifest start here
    for where, why in parsed.bad:
        result.rejects.append(reject(name, f"{name}/{where}", "bad_row", why, where))
    rows, where_of = _decoded(parsed.rows, name, repair_text, result)

    turn_of: dict[int, int | None] = {}
    for index, row in enumerate(rows):
        with contextlib.suppress(ValueError):  # a turn that is not an integer: rejected as a bad row below
            turn_of[index] = _turn(row)
    dialogues: dict[str, list[tuple[int, int]]] = defaultdict(list)  # dialogue -> (turn, row index)
    for index, row in enumerate(rows):
        dialogue = _cell(row, "dialogue_id")
        if dialogue is not None and index in turn_of:
            turn = turn_of[index]
            dialogues[dialogue].append((turn if turn is not None else index, index))
    context_of: dict[int, list] = {}
    for members in dialogues.values():
        members.sort()
        turns = [
            Turn(t, _cell(rows[i], "speaker") or UNKNOWN_SPEAKER, _cell(rows[i], "transcript") or "")
            for t, i in members
        ]
        for (_, index), ctx in zip(members, contexts(turns, context_turns), strict=True):
            context_of[index] = ctx

    for index, row in enumerate(rows):
        source = where_of[index]
        split = _cell(row, "split") or default_split
        if wanted is not None and split not in wanted:
            continue
        rel = _cell(row, "path")
        uid = f"{name}/{_cell(row, 'id') or (rel or f'row{index}')}"
        try:
            normalise_split(split)
        except SplitError as err:
            # Caught here, before any audio is measured or any teacher asked, not when the corpora are cut.
            result.rejects.append(reject(name, uid, "bad_split", str(err), source))
            continue
        try:
            start, end = _seconds(row, "start"), _seconds(row, "end")
        except ValueError as err:
            result.rejects.append(reject(name, uid, "bad_row", f"start/end not numbers: {err}", source))
            continue
        if index not in turn_of:
            result.rejects.append(
                reject(name, uid, "bad_row", f"turn {_cell(row, 'turn')!r} is not an integer", source)
            )
            continue
        if start is not None and _cell(row, "id") is None:
            uid = f"{uid}@{start:.3f}"  # one file cut into spans: the span start keeps ids unique
        if rel is None:
            result.rejects.append(reject(name, uid, "missing_audio", "empty path", source, "audio"))
            continue
        label = resolve_label(name, uid, _cell(row, "label") or "", proto, source, table)
        if isinstance(label, Reject):
            result.rejects.append(label)
            continue
        sentiment: Sentiment | None = None
        if _cell(row, "sentiment") is not None:
            try:
                sentiment = canonical_sentiment(name, _cell(row, "sentiment"))
            except UnknownLabelError as err:
                result.rejects.append(reject(name, uid, "unknown_label", str(err), source))
                continue
        gender_text = (_cell(row, "gender") or "").lower()
        if gender_text and gender_text not in GENDERS:
            result.rejects.append(reject(name, uid, "bad_row", f"unknown gender {gender_text!r}", source))
            continue
        audio = Path(rel).expanduser()
        audio = (audio if audio.is_absolute() else path.parent / audio).resolve()
        transcript = _cell(row, "transcript")
        spanned = start is not None or end is not None
        header = probe_audio(name, uid, audio, source, transcript, whole=not spanned)
        if isinstance(header, Reject):
            result.rejects.append(header)
            continue
        duration, rate = header
        if spanned:
            duration = (end if end is not None else duration) - (start or 0.0)
            if duration <= 0:
                result.rejects.append(reject(name, uid, "bad_row", f"empty span start={start} end={end}", source))
                continue
            bad = check_clip(name, uid, duration, transcript, source)
            if bad is not None:
                result.rejects.append(bad)
                continue
        result.utterances.append(
            Utterance(
                id=uid,
                dataset=name,
                split=split,
                audio_path=str(audio),
                start_s=start,
                end_s=end,
                transcript=transcript,
                speaker=_cell(row, "speaker") or UNKNOWN_SPEAKER,
                gender=GENDERS.get(gender_text),
                emotion=label,
                raw_label=_cell(row, "label") or "",
                label_protocol=proto.name,
                sentiment=sentiment,
                dialogue_id=_cell(row, "dialogue_id"),
                turn=turn_of[index],
                context=context_of.get(index, []),
                duration_s=duration,
                sample_rate=rate,
            )
        )
    return check_unique_ids(result, name)
