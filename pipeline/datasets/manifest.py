"""A generic manifest: one row per utterance in a CSV, JSONL or parquet file.

Columns: ``path`` and ``label`` (required), ``transcript``, and optionally ``id``, ``speaker``,
``split``, ``start``, ``end`` (seconds, for a span of a longer file), ``gender``, ``sentiment``,
``dialogue_id``, ``turn``. Relative paths resolve against the manifest's folder. Labels must be
canonical emotion names unless ``label_map`` (a dict, or a YAML/JSON file of raw -> canonical)
translates them; a label neither knows is an ``unknown_label`` reject naming the value.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections import defaultdict
from pathlib import Path

import pandas as pd
import yaml

from pipeline.datasets.common import (
    DEFAULT_CONTEXT_TURNS,
    AdapterResult,
    Turn,
    check_unique_ids,
    contexts,
    probe_audio,
    reject,
    resolve_label,
    split_filter,
)
from pipeline.labels import Emotion, Protocol, Sentiment, UnknownLabelError, canonical_sentiment
from pipeline.records import Gender, Reject, Utterance

NAME = "manifest"
REQUIRED = ("path", "label")
OPTIONAL = ("id", "transcript", "speaker", "split", "start", "end", "gender", "sentiment", "dialogue_id", "turn")
UNKNOWN_SPEAKER = "unknown"
GENDERS = {"f": Gender.female, "female": Gender.female, "w": Gender.female, "m": Gender.male, "male": Gender.male}


def read_manifest(path: Path) -> pd.DataFrame:
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv"):
        frame = pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",", dtype=str, keep_default_na=False)
    elif suffix in (".jsonl", ".json"):
        frame = pd.read_json(path, lines=suffix == ".jsonl", dtype=False)
    elif suffix == ".parquet":
        frame = pd.read_parquet(path)
    else:
        raise ValueError(f"{NAME}: {path} is not .csv, .tsv, .jsonl, .json or .parquet")
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise ValueError(f"{NAME}: {path} lacks columns {missing}; found {list(frame.columns)}")
    unknown = [c for c in frame.columns if c not in REQUIRED + OPTIONAL]
    if unknown:
        raise ValueError(f"{NAME}: {path} has unknown columns {unknown}; allowed: {', '.join(REQUIRED + OPTIONAL)}")
    return frame


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


def load(
    root: str | Path | None,
    proto: Protocol,
    *,
    label_map: dict[str, str] | str | Path | None = None,
    name: str = NAME,
    default_split: str = "train",
    splits: list[str] | str | None = None,
    context_turns: int = DEFAULT_CONTEXT_TURNS,
) -> AdapterResult:
    if root is None:
        raise ValueError(f"{NAME}: needs the manifest file path (.csv, .jsonl or .parquet) as root")
    path = Path(root).expanduser().resolve()
    if not path.is_file():
        raise FileNotFoundError(f"{NAME}: manifest {path} does not exist")
    table = label_table(label_map)
    rows = read_manifest(path).to_dict(orient="records")
    wanted = split_filter(splits)
    result = AdapterResult(audio_root=path.parent)  # relative paths in the manifest start here

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
        line = index + 2 if path.suffix.lower() in (".csv", ".tsv") else index + 1
        source = f"{path.name}:{line}"
        split = _cell(row, "split") or default_split
        if wanted is not None and split not in wanted:
            continue
        rel = _cell(row, "path")
        uid = f"{name}/{_cell(row, 'id') or (rel or f'row{index}')}"
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
        header = probe_audio(name, uid, audio, source)
        if isinstance(header, Reject):
            result.rejects.append(header)
            continue
        duration, rate = header
        if start is not None or end is not None:
            duration = (end if end is not None else duration) - (start or 0.0)
            if duration <= 0:
                result.rejects.append(reject(name, uid, "bad_row", f"empty span start={start} end={end}", source))
                continue
        result.utterances.append(
            Utterance(
                id=uid,
                dataset=name,
                split=split,
                audio_path=str(audio),
                start_s=start,
                end_s=end,
                transcript=_cell(row, "transcript"),
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
