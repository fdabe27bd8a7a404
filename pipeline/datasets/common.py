"""What every dataset adapter shares: its result type, label and audio checks, dialogue context.

An adapter never drops a record silently: each input row ends either as an :class:`Utterance`
or as a :class:`Reject` with a short reason (``unknown_label``, ``out_of_protocol``,
``missing_audio``, ``corrupt_audio``, ...), the full message and the offending source.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.audio import AUDIO_SUFFIXES, AudioError, audio_duration
from pipeline.labels import Emotion, Protocol, UnknownLabelError, canonical_emotion
from pipeline.plausible import implausible_clip
from pipeline.records import ContextTurn, Reject, Utterance

# Previous turns kept as dialogue context. Five turns cover the exchange a listener needs to read
# an utterance (MELD dialogues average ~9 turns) while keeping teacher prompts short.
DEFAULT_CONTEXT_TURNS = 5
# Not a split: asked for by evaluation and baseline commands, it means every utterance of a source,
# whatever split its adapter assigns (e.g. a RAVDESS folder of actors 21-24, or an unsplit manifest).
ALL_SPLITS = "all"


@dataclass
class AdapterResult:
    """Utterances a dataset yields, and the rows it could not use (with their reasons)."""

    utterances: list[Utterance] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)  # dataset-wide messages, e.g. "no audio folder given"
    # The folder the audio was read from: a run folder stores audio paths relative to it (pipeline.audio_roots).
    audio_root: Path | None = None

    def extend(self, other: AdapterResult) -> None:
        self.utterances += other.utterances
        self.rejects += other.rejects
        self.notices += other.notices


def reject(
    dataset: str, record_id: str, reason: str, detail: str = "", source: str = "", stage: str = "adapter"
) -> Reject:
    return Reject(stage=stage, record_id=record_id, dataset=dataset, reason=reason, detail=detail, source=source)


def resolve_label(
    dataset: str,
    record_id: str,
    raw: str,
    proto: Protocol,
    source: str,
    table: dict[str, Emotion] | None = None,
) -> Emotion | Reject:
    """The label under ``proto``, or a reject: ``unknown_label`` or ``out_of_protocol``."""
    try:
        emotion = canonical_emotion(dataset, raw, table)
    except UnknownLabelError as err:
        return reject(dataset, record_id, "unknown_label", str(err), source)
    applied = proto.apply(emotion)
    if applied is None:
        detail = f"{dataset} label {raw!r} ({emotion.value}) is not in protocol {proto.name} ({', '.join(proto.names)})"
        return reject(dataset, record_id, "out_of_protocol", detail, source)
    return applied


def find_audio(folders: Iterable[Path], stem: str) -> Path | None:
    """The first ``<folder>/<stem><suffix>`` that exists, folders in order, extracted audio before video."""
    for folder in folders:
        for suffix in AUDIO_SUFFIXES:
            if (folder / f"{stem}{suffix}").is_file():
                return folder / f"{stem}{suffix}"
    return None


def probe_audio(
    dataset: str, record_id: str, path: Path, source: str = "", transcript: str | None = None, *, whole: bool = True
) -> tuple[float, int] | Reject:
    """(duration_s, sample_rate) from the file header, or a reject: missing, unreadable or cut-short
    audio, and (``whole``: the utterance is the whole file) a clip outside the plausible duration
    range or too short for its transcript (pipeline/plausible.py). Adapters that cut a span of
    the file pass ``whole=False`` and check the span with :func:`check_clip`."""
    if not path.is_file():
        return reject(dataset, record_id, "missing_audio", f"{path}: no such file", source or str(path), "audio")
    try:
        duration, rate = audio_duration(path)
    except AudioError as err:
        return reject(dataset, record_id, err.reason, str(err), source or str(path), "audio")
    if whole:
        bad = check_clip(dataset, record_id, duration, transcript, source or str(path))
        if bad is not None:
            return bad
    return duration, rate


def check_clip(dataset: str, record_id: str, duration_s: float, transcript: str | None, source: str) -> Reject | None:
    """A reject when the clip's duration, or its transcript for that duration, is implausible."""
    bad = implausible_clip(duration_s, transcript)
    return None if bad is None else reject(dataset, record_id, bad[0], bad[1], source, "audio")


@dataclass(frozen=True)
class Turn:
    """One spoken turn of a dialogue, in order, whether or not it ends up as an utterance."""

    turn: int
    speaker: str
    text: str


def contexts(turns: Sequence[Turn], k: int) -> list[list[ContextTurn]]:
    """For each turn of one dialogue (already in order), its last ``k`` previous turns, oldest first."""
    if k < 0:
        raise ValueError(f"context_turns must be >= 0, got {k}")
    out = []
    for i in range(len(turns)):
        previous = turns[max(0, i - k) : i] if k else []
        out.append([ContextTurn(turn=t.turn, speaker=t.speaker, text=t.text) for t in previous])
    return out


def check_unique_ids(result: AdapterResult, dataset: str) -> AdapterResult:
    """Move utterances whose id repeats an earlier one into the rejects (ids must be unique)."""
    seen: set[str] = set()
    kept = []
    for utt in result.utterances:
        if utt.id in seen:
            result.rejects.append(
                reject(dataset, utt.id, "duplicate_id", f"id {utt.id!r} occurs more than once", utt.audio_path or "")
            )
            continue
        seen.add(utt.id)
        kept.append(utt)
    result.utterances = kept
    return result


def existing_dir(root: str | Path | None, dataset: str, hint: str) -> Path:
    """``root`` as an existing folder, or a clear error telling what the adapter expects there."""
    if root is None:
        raise ValueError(f"dataset {dataset!r} needs a root folder ({hint})")
    path = Path(root).expanduser().resolve()
    if not path.exists():
        raise FileNotFoundError(f"{dataset}: {path} does not exist ({hint})")
    if not path.is_dir():
        raise NotADirectoryError(f"{dataset}: {path} is not a folder ({hint})")
    return path


def split_filter(splits: Iterable[str] | str | None) -> set[str] | None:
    if splits is None:
        return None
    return {splits} if isinstance(splits, str) else set(splits)
