"""IEMOCAP from the official release layout (it is licensed: users bring their own copy).

    Session{1..5}/dialog/EmoEvaluation/<dialogue>.txt      "[6.2901 - 8.2357]\tSes01F_impro01_F000\tneu\t[2.5, 2.5, 2.5]"
    Session{1..5}/dialog/transcriptions/<dialogue>.txt     "Ses01F_impro01_F000 [006.2901-008.2357]: Excuse me."
    Session{1..5}/sentences/wav/<dialogue>/<turn>.wav      (or, failing that, dialog/wav/<dialogue>.wav + span)

The split is the session (``Session1`` .. ``Session5``), for leave-one-session-out folds. The
speaker is the session plus the gender letter of the turn's last field (``Ses01F_impro01_M000``
is spoken by ``Ses01M``: the dialogue name's letter only says who wore the motion markers).
Context is the dialogue's previous transcribed turns in time order, labelled or not.
"""

from __future__ import annotations

import re
from pathlib import Path

from pipeline.datasets.common import (
    DEFAULT_CONTEXT_TURNS,
    AdapterResult,
    Turn,
    check_clip,
    check_unique_ids,
    contexts,
    existing_dir,
    find_audio,
    probe_audio,
    reject,
    resolve_label,
    split_filter,
)
from pipeline.labels import Protocol
from pipeline.records import Gender, Reject, Utterance

NAME = "iemocap"
SESSIONS = tuple(f"Session{i}" for i in range(1, 6))
EVALUATION = re.compile(r"^\[(\d+(?:\.\d+)?)\s*-\s*(\d+(?:\.\d+)?)\]\s+(\S+)\s+(\S+)\s+\[.*\]\s*$")
# Some transcription lines lack the time stamps or carry sounds ("[LAUGHTER]"); only id lines count.
TRANSCRIPT = re.compile(r"^(\S+)\s+\[(\d+(?:\.\d+)?)-(\d+(?:\.\d+)?)\]:\s*(.*)$")
TURN_ID = re.compile(r"^(Ses\d\d)[FM]_.+_([FM])[A-Z]*\d+$")


def _labelled_turns(path: Path) -> list[tuple[float, float, str, str, int]]:
    """(start, end, turn id, raw label, line number) for every evaluation header line of one dialogue."""
    out = []
    for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        match = EVALUATION.match(line.strip())
        if match:
            out.append((float(match.group(1)), float(match.group(2)), match.group(3), match.group(4), number))
    return out


def _transcribed_turns(path: Path) -> dict[str, tuple[float, str]]:
    """turn id -> (start, text) for one dialogue's transcription file."""
    if not path.is_file():
        return {}
    out = {}
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        match = TRANSCRIPT.match(line.strip())
        if match:
            out[match.group(1)] = (float(match.group(2)), match.group(4).strip())
    return out


def _speaker(turn_id: str) -> tuple[str, Gender] | None:
    match = TURN_ID.match(turn_id)
    if match is None:
        return None
    session, letter = match.groups()
    return f"{session}{letter}", Gender.female if letter == "F" else Gender.male


def _speaker_name(turn_id: str) -> str:
    """The speaker of a context turn; an id we cannot parse stands for itself."""
    who = _speaker(turn_id)
    return who[0] if who else turn_id


def load(
    root: str | Path | None,
    proto: Protocol,
    *,
    splits: list[str] | str | None = None,
    context_turns: int = DEFAULT_CONTEXT_TURNS,
) -> AdapterResult:
    folder = existing_dir(root, NAME, "the IEMOCAP release folder holding Session1 .. Session5")
    present = [s for s in SESSIONS if (folder / s / "dialog" / "EmoEvaluation").is_dir()]
    if not present:
        raise FileNotFoundError(f"{NAME}: no Session*/dialog/EmoEvaluation folder under {folder}")
    wanted = split_filter(splits)  # splits are sessions here
    result = AdapterResult(audio_root=folder)
    for session in present:
        if wanted is not None and session not in wanted:
            continue
        # Skip AppleDouble "._x.txt" files that some copies of the release carry.
        evaluations = (folder / session / "dialog" / "EmoEvaluation").glob("*.txt")
        for evaluation in sorted(p for p in evaluations if p.name[0] != "."):
            _load_dialogue(folder / session, evaluation, proto, context_turns, result)
    return check_unique_ids(result, NAME)


def _load_dialogue(base: Path, evaluation: Path, proto: Protocol, context_turns: int, result: AdapterResult) -> None:
    """Append one dialogue's utterances and rejects to ``result``."""
    session, dialogue = base.name, evaluation.stem
    transcripts = _transcribed_turns(base / "dialog" / "transcriptions" / evaluation.name)
    ordered = sorted(transcripts, key=lambda tid: (transcripts[tid][0], tid))  # by start time
    turns = [Turn(i, _speaker_name(tid), transcripts[tid][1]) for i, tid in enumerate(ordered)]
    context_of = dict(zip(ordered, contexts(turns, context_turns), strict=True))
    position = {tid: i for i, tid in enumerate(ordered)}
    # .wav in the release; other audio or video files (a converted copy) are read as well.
    dialogue_wav = find_audio([base / "dialog" / "wav"], dialogue)
    for start, end, turn_id, raw, number in _labelled_turns(evaluation):
        uid = f"{NAME}/{turn_id}"
        source = f"{session}/dialog/EmoEvaluation/{evaluation.name}:{number}"
        who = _speaker(turn_id)
        if who is None:
            detail = f"turn id {turn_id!r} does not look like Ses01F_impro01_F000"
            result.rejects.append(reject(NAME, uid, "bad_row", detail, source))
            continue
        label = resolve_label(NAME, uid, raw, proto, source)
        if isinstance(label, Reject):
            result.rejects.append(label)
            continue
        turn_wav = base / "sentences" / "wav" / dialogue / f"{turn_id}.wav"
        wav, span = find_audio([turn_wav.parent], turn_id) or turn_wav, (None, None)
        if not wav.is_file() and dialogue_wav is not None:
            # Copies without the per-turn files: read the turn's span of the dialogue recording.
            wav, span = dialogue_wav, (start, end)
        text = transcripts[turn_id][1] if turn_id in transcripts else None
        header = probe_audio(NAME, uid, wav, source, text, whole=span[0] is None)
        if not isinstance(header, Reject) and span[0] is not None:
            header = check_clip(NAME, uid, end - start, text, source) or header
        if isinstance(header, Reject):
            result.rejects.append(header)
            continue
        speaker, gender = who
        result.utterances.append(
            Utterance(
                id=uid,
                dataset=NAME,
                split=session,
                audio_path=str(wav),
                start_s=span[0],
                end_s=span[1],
                transcript=text,
                speaker=speaker,
                gender=gender,
                emotion=label,
                raw_label=raw,
                label_protocol=proto.name,
                session=session,
                dialogue_id=dialogue,
                turn=position.get(turn_id),
                context=context_of.get(turn_id, []),
                duration_s=header[0] if span[0] is None else end - start,
                sample_rate=header[1],
            )
        )
