"""The bundled demo corpus: 144 utterances written and voiced for this project (see demo_corpus/README.md).

Layout: ``utterances.jsonl`` (id, speaker, gender, split, dialogue_id, turn, transcript, emotion,
lexical_cue, file) beside an ``audio/`` folder of 16 kHz FLAC files. Labels already use the
canonical names, so the corpus runs under the ``all`` protocol by default.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

from pipeline.datasets.common import (
    DEFAULT_CONTEXT_TURNS,
    AdapterResult,
    Turn,
    check_unique_ids,
    contexts,
    existing_dir,
    probe_audio,
    reject,
    resolve_label,
    split_filter,
)
from pipeline.labels import Protocol
from pipeline.records import Gender, Reject, Utterance

NAME = "demo"
BUNDLED = Path(__file__).resolve().parents[1] / "demo_corpus"


class DemoRow(BaseModel):
    """One line of utterances.jsonl."""

    model_config = ConfigDict(extra="forbid")

    id: str
    speaker: str
    gender: Gender
    split: str
    dialogue_id: str | None = None
    turn: int | None = None
    transcript: str
    emotion: str
    lexical_cue: bool = False
    file: str


def load(
    root: str | Path | None,
    proto: Protocol,
    *,
    splits: list[str] | str | None = None,
    context_turns: int = DEFAULT_CONTEXT_TURNS,
) -> AdapterResult:
    folder = existing_dir(root if root is not None else BUNDLED, NAME, "a folder with utterances.jsonl and audio/")
    manifest = folder / "utterances.jsonl"
    if not manifest.is_file():
        raise FileNotFoundError(f"{NAME}: {manifest} not found")
    wanted = split_filter(splits)
    result = AdapterResult(audio_root=folder)
    rows: list[DemoRow] = []
    for number, line in enumerate(manifest.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        source = f"{manifest.name}:{number}"
        try:
            rows.append(DemoRow.model_validate_json(line))
        except ValidationError as err:
            result.rejects.append(reject(NAME, f"{NAME}/line{number}", "bad_row", str(err), source))

    # Dialogue context: every turn of a dialogue, in turn order, whatever its label or split filter.
    dialogues: dict[str, list[DemoRow]] = defaultdict(list)
    for row in rows:
        if row.dialogue_id is not None:
            dialogues[row.dialogue_id].append(row)
    context_of = {}
    for members in dialogues.values():
        members.sort(key=lambda r: r.turn or 0)
        turns = [Turn(r.turn or 0, r.speaker, r.transcript) for r in members]
        for row, ctx in zip(members, contexts(turns, context_turns), strict=True):
            context_of[row.id] = ctx

    for row in rows:
        if wanted is not None and row.split not in wanted:
            continue
        uid = f"{NAME}/{row.id}"
        source = json.dumps(row.model_dump(), ensure_ascii=False)
        label = resolve_label(NAME, uid, row.emotion, proto, source)
        if isinstance(label, Reject):
            result.rejects.append(label)
            continue
        audio = (folder / row.file).resolve()
        header = probe_audio(NAME, uid, audio, source, row.transcript)
        if isinstance(header, Reject):
            result.rejects.append(header)
            continue
        result.utterances.append(
            Utterance(
                id=uid,
                dataset=NAME,
                split=row.split,
                audio_path=str(audio),
                transcript=row.transcript,
                speaker=row.speaker,
                gender=row.gender,
                emotion=label,
                raw_label=row.emotion,
                label_protocol=proto.name,
                dialogue_id=row.dialogue_id,
                turn=row.turn,
                context=context_of.get(row.id, []),
                duration_s=header[0],
                sample_rate=header[1],
            )
        )
    return check_unique_ids(result, NAME)
