"""MELD: multi-party dialogues from *Friends*, from the official CSVs (+ extracted audio if given).

The root holds ``train_sent_emo.csv``, ``dev_sent_emo.csv`` and ``test_sent_emo.csv`` (CRLF line
ends). MELD ships video clips ``dia{D}_utt{U}.mp4``, read directly (pipeline.audio decodes their
audio track with PyAV). The release layout (``MELD.Raw/train/train_splits/``,
``dev/dev_splits_complete/``, ``test/output_repeated_splits_test/``, or those folders straight
under the root) is found under the root without any option; ``audio_dir`` points elsewhere, at
clips or extracted audio (``dia{D}_utt{U}.wav``/``.flac``, preferred over the .mp4 when both
exist), flat or in one subfolder per split. Without either the utterances have no audio (one
notice says so) and only text tasks can use them.

Mojibake: some copies of the CSVs were saved after a UTF-8 -> cp1252 round trip, so ``’`` reads
as ``â€™``. We repair it (re-encode each suspicious run as cp1252, decode as UTF-8, keep the run
when that is not valid UTF-8), so quotes in rationales match the transcript a listener would
write; correct text comes back unchanged, and a notice counts the repaired transcripts.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from pipeline.audio import AUDIO_SUFFIXES
from pipeline.datasets.common import (
    DEFAULT_CONTEXT_TURNS,
    AdapterResult,
    Turn,
    check_unique_ids,
    contexts,
    existing_dir,
    find_audio,
    probe_audio,
    reject,
    resolve_label,
    split_filter,
)
from pipeline.datasets.text import repair_mojibake
from pipeline.labels import Protocol, UnknownLabelError, canonical_sentiment
from pipeline.records import Gender, Reject, Utterance

NAME = "meld"
CSV_FILES = {"train": "train_sent_emo.csv", "dev": "dev_sent_emo.csv", "test": "test_sent_emo.csv"}
# Folder names of the official release archives, tried after the plain split name.
RELEASE_AUDIO_DIRS = {"train": "train_splits", "dev": "dev_splits_complete", "test": "output_repeated_splits_test"}
REQUIRED_COLUMNS = ("Utterance", "Speaker", "Emotion", "Sentiment", "Dialogue_ID", "Utterance_ID")
# The six main characters speak ~80 % of MELD; their gender is public knowledge. Others stay unknown.
MAIN_CAST = {
    "Chandler": Gender.male,
    "Joey": Gender.male,
    "Ross": Gender.male,
    "Monica": Gender.female,
    "Rachel": Gender.female,
    "Phoebe": Gender.female,
}


def read_csv(path: Path) -> list[dict[str, str]]:
    """Rows of one MELD CSV (UTF-8, falling back to cp1252 for copies re-saved on Windows)."""
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("cp1252", errors="replace")
    rows = list(csv.DictReader(text.splitlines()))
    if rows:
        missing = [c for c in REQUIRED_COLUMNS if c not in rows[0]]
        if missing:
            raise ValueError(f"{NAME}: {path} lacks columns {missing}; found {list(rows[0])}")
    return rows


def audio_folders(audio_dir: Path, split: str) -> list[Path]:
    release = RELEASE_AUDIO_DIRS[split]
    candidates = [audio_dir / split, audio_dir / release, audio_dir / split / release, audio_dir]
    return [c for c in candidates if c.is_dir()]


def release_audio(root: Path) -> bool:
    """Whether ``root`` holds the release's clip folders (``train_splits``, ``dev/dev_splits_complete``, ...)."""
    return any((root / d).is_dir() or (root / s / d).is_dir() for s, d in RELEASE_AUDIO_DIRS.items())


@dataclass(frozen=True)
class MeldRow:
    """One CSV row, parsed and with its text repaired."""

    line: int
    dialogue: int
    utterance: int
    speaker: str
    text: str
    emotion: str
    sentiment: str


def parse_rows(path: Path, split: str, repair_text: bool) -> tuple[list[MeldRow], list[Reject], int]:
    """(rows, rejects for rows that cannot be parsed, number of transcripts repaired) of one CSV."""
    rows, rejects, repaired = [], [], 0
    for line, row in enumerate(read_csv(path), 2):  # line 1 is the header
        try:
            dia, utt = int(row["Dialogue_ID"]), int(row["Utterance_ID"])
        except (TypeError, ValueError):
            detail = f"Dialogue_ID={row.get('Dialogue_ID')!r} Utterance_ID={row.get('Utterance_ID')!r} are not integers"
            rejects.append(reject(NAME, f"{NAME}/{split}/line{line}", "bad_row", detail, f"{path.name}:{line}"))
            continue
        text, speaker = (row["Utterance"] or "").strip(), (row["Speaker"] or "").strip()
        if repair_text:
            fixed = repair_mojibake(text)
            repaired += fixed != text
            text, speaker = fixed, repair_mojibake(speaker)
        rows.append(MeldRow(line, dia, utt, speaker, text, row["Emotion"] or "", row["Sentiment"] or ""))
    return rows, rejects, repaired


def load(
    root: str | Path | None,
    proto: Protocol,
    *,
    audio_dir: str | Path | None = None,
    splits: list[str] | str | None = None,
    context_turns: int = DEFAULT_CONTEXT_TURNS,
    repair_text: bool = True,
) -> AdapterResult:
    folder = existing_dir(root, NAME, "the folder holding train_sent_emo.csv, dev_sent_emo.csv, test_sent_emo.csv")
    wanted = split_filter(splits)
    present = {s: folder / f for s, f in CSV_FILES.items() if (folder / f).is_file()}
    if not present:
        raise FileNotFoundError(f"{NAME}: none of {', '.join(CSV_FILES.values())} in {folder}")
    audio_root = None
    if audio_dir is not None:
        audio_root = existing_dir(audio_dir, NAME, "the folder of dia{D}_utt{U}.mp4 clips or extracted .wav files")
    elif release_audio(folder):
        audio_root = folder
    result = AdapterResult(audio_root=audio_root)
    if audio_root is None:
        result.notices.append(
            f"{NAME}: no clip folders ({', '.join(RELEASE_AUDIO_DIRS.values())}) under {folder} and no audio_dir "
            "given; utterances have no audio (text tasks only)"
        )
    repaired = 0
    for split, path in present.items():
        if wanted is not None and split not in wanted:
            continue
        folders = audio_folders(audio_root, split) if audio_root else []
        # Parse every row first: context needs the whole dialogue, whatever happens to each row.
        rows, rejects, fixed = parse_rows(path, split, repair_text)
        result.rejects += rejects
        repaired += fixed
        dialogues: dict[int, list[MeldRow]] = defaultdict(list)
        for row in rows:
            dialogues[row.dialogue].append(row)
        for members in dialogues.values():
            members.sort(key=lambda r: r.utterance)
            turns = [Turn(r.utterance, r.speaker, r.text) for r in members]
            for row, context in zip(members, contexts(turns, context_turns), strict=True):
                stem = f"dia{row.dialogue}_utt{row.utterance}"
                uid = f"{NAME}/{split}/{stem}"
                source = f"{path.name}:{row.line}"
                label = resolve_label(NAME, uid, row.emotion, proto, source)
                if isinstance(label, Reject):
                    result.rejects.append(label)
                    continue
                try:
                    sentiment = canonical_sentiment(NAME, row.sentiment)
                except UnknownLabelError as err:
                    result.rejects.append(reject(NAME, uid, "unknown_label", str(err), source))
                    continue
                audio_path, duration, rate = None, None, None
                if audio_root is not None:
                    found = find_audio(folders, stem)
                    if found is None:
                        where = ", ".join(str(f) for f in folders) or str(audio_root)
                        detail = f"no {stem} audio ({', '.join(AUDIO_SUFFIXES)}) in {where}"
                        result.rejects.append(reject(NAME, uid, "missing_audio", detail, source, "audio"))
                        continue
                    header = probe_audio(NAME, uid, found, source, row.text)
                    if isinstance(header, Reject):
                        result.rejects.append(header)
                        continue
                    audio_path, (duration, rate) = str(found), header
                result.utterances.append(
                    Utterance(
                        id=uid,
                        dataset=NAME,
                        split=split,
                        audio_path=audio_path,
                        transcript=row.text,
                        speaker=row.speaker,
                        gender=MAIN_CAST.get(row.speaker),
                        emotion=label,
                        raw_label=row.emotion,
                        label_protocol=proto.name,
                        sentiment=sentiment,
                        dialogue_id=f"{split}/dia{row.dialogue}",
                        turn=row.utterance,
                        context=context,
                        duration_s=duration,
                        sample_rate=rate,
                    )
                )
    if repaired:
        result.notices.append(f"{NAME}: repaired mojibake (e.g. 'â€™' -> '’') in {repaired} transcripts")
    return check_unique_ids(result, NAME)
