"""Where a run's audio lives, so that a run folder can move to another machine.

In memory an audio path is absolute (what the adapters found). On disk, in a run folder's
tables (``utterances.parquet``, ``corpora/*.parquet``, the HF export), it is stored relative to
its dataset's *audio root*, the folder the adapter read the audio from, and the roots are
recorded once, in ``audio_roots.json`` beside the tables:

    {"roots": {"meld": "/data/MELD.Raw", "demo": "bundled:demo"}}

Readers join the two again. The bundled demo corpus is recorded by name and resolves through the
installed package on any machine; a dataset that lives elsewhere on the new machine is named with
``--audio-root [DATASET=]PATH`` (``emoreason train``/``eval``). A file outside its dataset's root
(e.g. a manifest row with an absolute path elsewhere) stays absolute.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TypeVar

from pydantic import Field

from pipeline.records import Record, TrainingExample, Utterance

ROOTS_FILE = "audio_roots.json"
# The demo corpus ships inside the package: recorded by name, never by this machine's path.
BUNDLED_DEMO = "bundled:demo"
OPTION = "--audio-root"

R = TypeVar("R", Utterance, TrainingExample)


class AudioRootError(FileNotFoundError):
    """Audio of a run folder that cannot be found; the message names the file and the option to fix it."""


class AudioRoots(Record):
    """dataset -> the folder its stored audio paths are relative to."""

    roots: dict[str, str] = Field(
        default_factory=dict, description=f"absolute folder at write time, or {BUNDLED_DEMO!r} for the bundled demo"
    )

    def merged(self, other: AudioRoots) -> AudioRoots:
        clash = {d for d in set(self.roots) & set(other.roots) if self.roots[d] != other.roots[d]}
        if clash:
            name = sorted(clash)[0]
            raise ValueError(f"dataset {name!r} has two audio roots: {self.roots[name]} and {other.roots[name]}")
        return AudioRoots(roots=self.roots | other.roots)


def _bundled_demo() -> Path:
    from pipeline.datasets.demo import BUNDLED

    return BUNDLED


def recorded(root: Path) -> str:
    """How ``root`` is written down: the bundled demo by name, any other folder as an absolute path."""
    root = root.resolve()
    return BUNDLED_DEMO if root == _bundled_demo() else str(root)


def roots_for(utterances: Iterable[Utterance], root: Path | None) -> AudioRoots:
    """One adapter's root, for every dataset name its utterances carry (a manifest may rename itself)."""
    return AudioRoots(roots={u.dataset: recorded(root) for u in utterances} if root is not None else {})


def write_roots(roots: AudioRoots, folder: str | Path) -> Path:
    path = Path(folder) / ROOTS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(roots.model_dump_json(indent=2) + "\n")
    return path


def read_roots(folder: str | Path) -> AudioRoots:
    """The roots recorded in ``folder``; none (older runs, absolute paths) when it has no roots file."""
    path = Path(folder) / ROOTS_FILE
    if not path.is_file():
        return AudioRoots()
    try:
        return AudioRoots.model_validate_json(path.read_text())
    except ValueError as err:
        raise ValueError(f"{path}: not an audio roots file: {err}") from err


def portable(records: Iterable[R], roots: AudioRoots) -> list[R]:
    """``records`` with each audio path made relative to its dataset's root (those outside stay absolute)."""
    out = []
    for r in records:
        recorded_root = roots.roots.get(r.dataset)
        if r.audio_path is None or recorded_root is None or not Path(r.audio_path).is_absolute():
            out.append(r)
            continue
        base = _bundled_demo() if recorded_root == BUNDLED_DEMO else Path(recorded_root)
        path = Path(r.audio_path)
        if path.is_relative_to(base):
            r = r.model_copy(update={"audio_path": path.relative_to(base).as_posix()})
        out.append(r)
    return out


def parse_overrides(values: Sequence[str], datasets: Iterable[str]) -> dict[str | None, Path]:
    """``--audio-root`` values -> {dataset: folder}; the key None stands for every dataset.

    ``DATASET=PATH`` names one dataset of a corpus that mixes several; a plain ``PATH`` applies to
    all of them. ``NAME=`` counts as a dataset only when NAME is one, so paths may contain '='.
    """
    known = set(datasets)
    out: dict[str | None, Path] = {}
    for value in values:
        name, sep, rest = value.partition("=")
        key, path = (name, rest) if sep and name in known else (None, value)
        folder = Path(path).expanduser().resolve()
        if not folder.is_dir():
            raise AudioRootError(f"{OPTION} {value}: {folder} is not a folder")
        out[key] = folder
    return out


def _base(dataset: str, roots: AudioRoots, overrides: dict[str | None, Path]) -> Path | None:
    if dataset in overrides:
        return overrides[dataset]
    if None in overrides:
        return overrides[None]
    recorded_root = roots.roots.get(dataset)
    if recorded_root is None:
        return None
    return _bundled_demo() if recorded_root == BUNDLED_DEMO else Path(recorded_root)


def resolved(
    records: Iterable[R],
    roots: AudioRoots,
    overrides: dict[str | None, Path] | None = None,
    where: str | Path = "",
    check: bool = True,
) -> list[R]:
    """``records`` with absolute audio paths: relative ones joined to their root (an override first).

    With ``check``, every audio file must exist, or :class:`AudioRootError` names the first missing
    file, how many are missing, the root it was looked for under and the option that moves it.
    """
    overrides = overrides or {}
    out, missing, seen = [], {}, set()  # a clip serves several tasks: stat it once
    for r in records:
        if r.audio_path is None:
            out.append(r)
            continue
        path = Path(r.audio_path)
        if not path.is_absolute():
            base = _base(r.dataset, roots, overrides)
            if base is None:
                raise AudioRootError(
                    f"{where}: audio path {r.audio_path!r} of {r.dataset} is relative but no audio root is recorded "
                    f"for {r.dataset} ({ROOTS_FILE} missing?); pass {OPTION} {r.dataset}=PATH"
                )
            path = base / path
            r = r.model_copy(update={"audio_path": str(path)})
        if check and r.audio_path not in seen:
            seen.add(r.audio_path)
            if not path.is_file():
                missing[r.audio_path] = r.dataset
        out.append(r)
    if missing:
        first, dataset = next(iter(missing.items()))
        recorded_root = roots.roots.get(dataset)
        was = f"; recorded audio root of {dataset}: {recorded_root}" if recorded_root else ""
        raise AudioRootError(
            f"{where}: audio file {first} not found ({len(missing)} of the audio files are missing{was}). "
            f"If the dataset lives elsewhere on this machine, point at it with {OPTION} PATH "
            f"(or {OPTION} {dataset}=PATH)"
        )
    return out
