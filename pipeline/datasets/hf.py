"""A Hugging Face ``datasets`` dataset: a ``save_to_disk`` folder, or a Dataset/DatasetDict object.

The audio column may hold file paths (strings) or an ``Audio`` feature. ``Audio`` decoding needs
torchcodec, so the column is cast to ``Audio(decode=False)`` and read as {bytes, path}: a path
that exists is used as is; embedded bytes are written once to a content-addressed cache
(``$EMOREASON_CACHE/hf_audio``, default ``~/.cache/emoreason``) so every utterance has a file that
soundfile reads. Columns are found by common names unless named explicitly; an integer label
column with a ``ClassLabel`` feature is translated through its names.
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import soundfile as sf

from pipeline.datasets.common import (
    DEFAULT_CONTEXT_TURNS,
    AdapterResult,
    check_unique_ids,
    probe_audio,
    reject,
    resolve_label,
    split_filter,
)
from pipeline.datasets.manifest import GENDERS, UNKNOWN_SPEAKER, label_table
from pipeline.labels import Protocol
from pipeline.records import Reject, Utterance

NAME = "hf"
# Column names tried in order when the caller does not name one.
AUDIO_COLUMNS = ("audio", "path", "file", "audio_path")
TRANSCRIPT_COLUMNS = ("transcript", "text", "sentence", "transcription", "utterance")
LABEL_COLUMNS = ("label", "emotion", "emotion_label")
SPEAKER_COLUMNS = ("speaker", "speaker_id", "client_id", "actor")
GENDER_COLUMNS = ("gender", "sex")
ID_COLUMNS = ("id", "utterance_id", "file_id")


def cache_dir() -> Path:
    return Path(os.environ.get("EMOREASON_CACHE", "~/.cache/emoreason")).expanduser() / "hf_audio"


def _pick(
    columns: list[str], explicit: str | None, candidates: tuple[str, ...], what: str, required: bool
) -> str | None:
    if explicit is not None:
        if explicit not in columns:
            raise ValueError(f"{NAME}: no {what} column {explicit!r}; columns are {columns}")
        return explicit
    found = next((c for c in candidates if c in columns), None)
    if found is None and required:
        raise ValueError(f"{NAME}: no {what} column (tried {', '.join(candidates)}); columns are {columns}")
    return found


def _materialize(value: object, base: Path | None) -> tuple[Path | None, str]:
    """An audio cell -> (a readable file path or None, why not)."""
    if isinstance(value, dict):
        data, path = value.get("bytes"), value.get("path")
    else:
        data, path = None, value
    if path:
        candidate = Path(str(path)).expanduser()
        if not candidate.is_absolute() and base is not None:
            candidate = base / candidate
        if candidate.is_file():
            return candidate.resolve(), ""
    if data:
        try:
            fmt = sf.info(io.BytesIO(data)).format.lower()
        except (sf.LibsndfileError, RuntimeError) as err:
            return None, f"embedded audio bytes cannot be decoded: {err}"
        target = cache_dir() / f"{hashlib.sha1(data).hexdigest()[:20]}.{fmt}"
        if not target.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
            tmp.write_bytes(data)
            os.replace(tmp, target)
        return target, ""
    return None, f"no audio bytes and no file at {path!r}"


def load(
    root: str | Path | None,
    proto: Protocol,
    *,
    dataset: object | None = None,
    name: str = NAME,
    audio_column: str | None = None,
    transcript_column: str | None = None,
    label_column: str | None = None,
    speaker_column: str | None = None,
    id_column: str | None = None,
    split_column: str | None = None,
    default_split: str = "train",
    label_map: dict[str, str] | str | Path | None = None,
    splits: list[str] | str | None = None,
    context_turns: int = DEFAULT_CONTEXT_TURNS,
) -> AdapterResult:
    import datasets  # heavy import: only when this adapter is used

    del context_turns  # accepted like every adapter's; a generic HF dataset has no dialogue structure
    base = None
    if dataset is None:
        if root is None:
            raise ValueError(f"{NAME}: give a save_to_disk folder as root, or dataset=<Dataset object>")
        base = Path(root).expanduser().resolve()
        if not base.exists():
            raise FileNotFoundError(f"{NAME}: {base} does not exist (expected a datasets save_to_disk folder)")
        dataset = datasets.load_from_disk(str(base))
    parts = dict(dataset.items()) if isinstance(dataset, datasets.DatasetDict) else {None: dataset}
    table = label_table(label_map)
    wanted = split_filter(splits)
    result = AdapterResult(audio_root=base)  # embedded bytes live in the cache and stay absolute
    for part_name, part in parts.items():
        columns = list(part.column_names)
        audio_col = _pick(columns, audio_column, AUDIO_COLUMNS, "audio", True)
        label_col = _pick(columns, label_column, LABEL_COLUMNS, "label", True)
        text_col = _pick(columns, transcript_column, TRANSCRIPT_COLUMNS, "transcript", False)
        speaker_col = _pick(columns, speaker_column, SPEAKER_COLUMNS, "speaker", False)
        id_col = _pick(columns, id_column, ID_COLUMNS, "id", False)
        gender_col = _pick(columns, None, GENDER_COLUMNS, "gender", False)
        if split_column is not None and split_column not in columns:
            raise ValueError(f"{NAME}: no split column {split_column!r}; columns are {columns}")
        if isinstance(part.features[audio_col], datasets.Audio):
            part = part.cast_column(audio_col, datasets.Audio(decode=False))
        label_feature = part.features[label_col]
        names = label_feature.names if isinstance(label_feature, datasets.ClassLabel) else None
        for index, row in enumerate(part):
            split = str(row[split_column]) if split_column else (part_name or default_split)
            if wanted is not None and split not in wanted:
                continue
            key = str(row[id_col]) if id_col else f"{part_name or default_split}/{index}"
            uid = f"{name}/{key}"
            source = f"{part_name or 'dataset'}[{index}]"
            raw = row[label_col]
            raw = names[raw] if names is not None and isinstance(raw, int) else str(raw)
            label = resolve_label(name, uid, raw, proto, source, table)
            if isinstance(label, Reject):
                result.rejects.append(label)
                continue
            audio, why = _materialize(row[audio_col], base)
            if audio is None:
                result.rejects.append(reject(name, uid, "missing_audio", why, source, "audio"))
                continue
            transcript = row[text_col] if text_col else None
            transcript = str(transcript).strip() if transcript is not None else None
            header = probe_audio(name, uid, audio, source, transcript)
            if isinstance(header, Reject):
                result.rejects.append(header)
                continue
            gender_text = str(row[gender_col]).strip().lower() if gender_col and row[gender_col] is not None else ""
            result.utterances.append(
                Utterance(
                    id=uid,
                    dataset=name,
                    split=split,
                    audio_path=str(audio),
                    transcript=transcript,
                    speaker=str(row[speaker_col]) if speaker_col and row[speaker_col] is not None else UNKNOWN_SPEAKER,
                    gender=GENDERS.get(gender_text),
                    emotion=label,
                    raw_label=raw,
                    label_protocol=proto.name,
                    duration_s=header[0],
                    sample_rate=header[1],
                )
            )
    return check_unique_ids(result, name)
