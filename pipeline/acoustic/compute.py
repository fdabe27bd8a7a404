"""Profiles for a whole dataset: process-parallel, resumable, nothing lost.

Layout of `out_dir`:
- raw/part-*.parquet  raw measures (or the audio error) of each utterance, one shard per finished
  chunk, keyed by a hash of what determines them (audio file, its size and mtime, span,
  transcript, MEASURE_VERSION). A rerun measures only utterances whose key is not there yet,
  so a killed run loses at most the chunks in flight.
- profiles.parquet    AcousticProfile rows (normalisation needs every utterance, so this is
                      rebuilt from the raw shards on every call: cheap, no audio is read)
- rejects.parquet     Reject rows (stage "profile": unreadable audio, silent audio, measurement
                      errors); later steps of `emoreason data` leave these utterances out
- stats.json          the Normaliser (speaker / gender / dataset statistics)
- summary.json        counts: profiled, cached, measured now, rejects by reason, no_audio, flags
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path

import numpy as np
import parselmouth

from pipeline.acoustic.cues import cues_from
from pipeline.acoustic.measure import MEASURE_VERSION, SILENT_DBFS, Measurements, ProfileFlag, measure_signal, screen
from pipeline.acoustic.normalise import Normaliser
from pipeline.acoustic.profile import PROFILE_VERSION, PROFILES_FILE, AcousticProfile, z_by_measure
from pipeline.audio import AudioError, Level, load_audio, normalise_level
from pipeline.parquet import read_records, write_records
from pipeline.records import Record, Reject, Utterance

CHUNK_SIZE = 64  # utterances per task: ~0.5-1 s of work, small enough to balance and to lose on a kill
REJECTS_FILE = "rejects.parquet"
STATS_FILE = "stats.json"
SUMMARY_FILE = "summary.json"
RAW_DIR = "raw"
PARENT_POLL_S = 0.5  # how often a pool worker checks that its parent is alive
MAX_SHARDS = 64  # beyond this many raw shards, merge them into one (keeps later reads fast)


class RawRow(Record):
    """Cached outcome of measuring one utterance: measurements, or why there are none."""

    utterance_id: str
    key: str
    measurements: Measurements | None = None
    error_reason: str | None = None
    error_detail: str = ""


@dataclass(frozen=True)
class _Job:
    utterance_id: str
    key: str
    audio_path: str
    start_s: float | None
    end_s: float | None
    transcript: str | None
    level: Level = Level.none


@dataclass
class ProfileRun:
    profiles: list[AcousticProfile]
    rejects: list[Reject]
    no_audio: list[str] = field(default_factory=list)  # ids of utterances without audio: not rejects
    measured: int = 0  # utterances measured by this call
    cached: int = 0  # utterances whose raw measures came from an earlier call
    normaliser: Normaliser | None = None

    def summary(self) -> dict[str, object]:
        flags = Counter(f for p in self.profiles for f in p.flags)
        return {
            "profiles": len(self.profiles),
            "measured_now": self.measured,
            "cached": self.cached,
            "rejects": dict(Counter(r.reason for r in self.rejects)),
            "no_audio": len(self.no_audio),
            "basis": dict(Counter(p.basis for p in self.profiles)),
            "flags": dict(flags),
            "cues": dict(Counter(f"{c.measure.value}:{c.level.value}" for p in self.profiles for c in p.cues)),
        }


@functools.cache
def versions() -> dict[str, str]:
    return {
        "profile": f"{PROFILE_VERSION}.{MEASURE_VERSION}",
        "parselmouth": parselmouth.__version__,
        "praat": parselmouth.PRAAT_VERSION,
        "numpy": np.__version__,
        "soxr": version("soxr"),
    }


def cache_key(u: Utterance, level: Level = Level.none) -> str:
    """What the raw measures depend on; the file's size and mtime catch a replaced recording.
    The level enters only when set, so measures cached before it existed stay valid."""
    try:
        st = os.stat(u.audio_path)
        stamp = [st.st_size, st.st_mtime_ns]
    except OSError:
        stamp = [-1, -1]
    parts = [MEASURE_VERSION, u.audio_path, u.start_s, u.end_s, u.transcript, *stamp]
    if Level(level) is not Level.none:
        parts.append(Level(level).value)
    return hashlib.sha1(json.dumps(parts).encode()).hexdigest()[:20]


def _measure_chunk(jobs: list[_Job]) -> list[RawRow]:
    rows = []
    for job in jobs:
        try:
            samples = normalise_level(load_audio(job.audio_path, job.start_s, job.end_s), job.level)
            m = measure_signal(samples, transcript=job.transcript)
            rows.append(RawRow(utterance_id=job.utterance_id, key=job.key, measurements=m))
        except AudioError as err:
            rows.append(
                RawRow(utterance_id=job.utterance_id, key=job.key, error_reason=err.reason, error_detail=str(err))
            )
        except (parselmouth.PraatError, ValueError, FloatingPointError) as err:
            detail = f"{type(err).__name__}: {err}"
            rows.append(
                RawRow(utterance_id=job.utterance_id, key=job.key, error_reason="measure_error", error_detail=detail)
            )
    return rows


def _die_with_parent(parent: int) -> None:
    """Pool worker initializer: exit as soon as the process that started the pool is gone.

    A killed parent leaves its workers blocked on the task queue forever (they hold its write
    end themselves, so it never closes). A daemon thread watches for the worker being orphaned:
    its parent process changes (reparented) or, if the parent died before this ran, is gone."""
    try:
        os.kill(parent, 0)
    except ProcessLookupError:
        os._exit(1)
    started_by = os.getppid()  # the parent itself, or the forkserver it started

    def watch() -> None:
        while os.getppid() == started_by:
            time.sleep(PARENT_POLL_S)
        os._exit(1)

    threading.Thread(target=watch, name="die-with-parent", daemon=True).start()


def _read_cache(raw_dir: Path) -> dict[str, RawRow]:
    """Cached rows by key (ids can repeat across keys when audio or transcript changed)."""
    cache = {}
    for shard in sorted(raw_dir.glob("part-*.parquet")):
        for row in read_records(shard, RawRow):
            cache[row.key] = row
    return cache


def _compact(raw_dir: Path, cache: dict[str, RawRow]) -> None:
    """Merge the raw shards into one. The merged shard is written before the old ones go, so a
    kill in between leaves duplicate rows (same key, same values), never missing ones."""
    shards = sorted(raw_dir.glob("part-*.parquet"))
    if len(shards) <= MAX_SHARDS:
        return
    write_records(
        cache.values(), raw_dir / f"part-{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}-merged.parquet", RawRow
    )
    for shard in shards:
        shard.unlink()


def _run_jobs(jobs: list[_Job], raw_dir: Path, workers: int) -> Iterator[list[RawRow]]:
    """Measure `jobs` in chunks, writing one shard per finished chunk before yielding it."""
    chunks = [jobs[i : i + CHUNK_SIZE] for i in range(0, len(jobs), CHUNK_SIZE)]
    stamp = f"{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}"  # unique per call: never overwrite

    def save(i: int, rows: list[RawRow]) -> list[RawRow]:
        write_records(rows, raw_dir / f"part-{stamp}-{i:05d}.parquet", RawRow)
        return rows

    if workers <= 1 or len(chunks) <= 1:
        for i, chunk in enumerate(chunks):
            yield save(i, _measure_chunk(chunk))
        return
    with ProcessPoolExecutor(max_workers=workers, initializer=_die_with_parent, initargs=(os.getpid(),)) as pool:
        futures = {pool.submit(_measure_chunk, chunk): i for i, chunk in enumerate(chunks)}
        for future in as_completed(futures):
            yield save(futures[future], future.result())


def compute_profiles(
    utterances: list[Utterance],
    out_dir: str | Path,
    workers: int = 1,
    progress: bool = False,
    level: Level | str = Level.none,
) -> ProfileRun:
    """Measure, normalise and cue every utterance with audio; write the results under `out_dir`.

    ``level``: scale each waveform first (pipeline.audio.Level); only the loudness level changes."""
    level = Level(level)
    out_dir = Path(out_dir)
    raw_dir = out_dir / RAW_DIR
    raw_dir.mkdir(parents=True, exist_ok=True)
    ids = Counter(u.id for u in utterances)
    duplicates = [i for i, n in ids.items() if n > 1]
    if duplicates:
        raise ValueError(f"{len(duplicates)} utterance ids occur more than once, e.g. {duplicates[:3]}")

    with_audio = [u for u in utterances if u.audio_path is not None]
    no_audio = [u.id for u in utterances if u.audio_path is None]
    keys = {u.id: cache_key(u, level) for u in with_audio}
    cache = _read_cache(raw_dir)
    jobs = [
        _Job(u.id, keys[u.id], u.audio_path, u.start_s, u.end_s, u.transcript, level)
        for u in with_audio
        if keys[u.id] not in cache
    ]
    done = 0
    for rows in _run_jobs(jobs, raw_dir, workers):
        cache.update((r.key, r) for r in rows)
        done += len(rows)
        if progress:
            print(f"\rprofile: measured {done}/{len(jobs)}", end="", flush=True)
    if progress and jobs:
        print()
    _compact(raw_dir, cache)

    measured: list[tuple[Utterance, Measurements]] = []
    rejects: list[Reject] = []
    for u in with_audio:
        row = cache[keys[u.id]]
        if row.measurements is None:
            reason = row.error_reason or "measure_error"
            rejects.append(
                Reject(
                    stage="profile",
                    record_id=u.id,
                    dataset=u.dataset,
                    reason=reason,
                    detail=row.error_detail,
                    source=u.audio_path,
                )
            )
        elif ProfileFlag.silent.value in row.measurements.flags:
            # Nothing above -60 dBFS: no speech to transcribe, hear or describe.
            detail = f"{u.audio_path}: no sound above {SILENT_DBFS:.0f} dBFS"
            rejects.append(
                Reject(
                    stage="profile",
                    record_id=u.id,
                    dataset=u.dataset,
                    reason="silent_audio",
                    detail=detail,
                    source=u.audio_path,
                )
            )
        else:
            measured.append((u, screen(row.measurements)))

    normaliser = Normaliser.fit((u.dataset, u.speaker, _gender(u), m) for u, m in measured)
    profiles = [make_profile(u, m, normaliser) for u, m in measured]
    run = ProfileRun(
        profiles, rejects, no_audio, measured=len(jobs), cached=len(with_audio) - len(jobs), normaliser=normaliser
    )
    write_records(profiles, out_dir / PROFILES_FILE, AcousticProfile)
    write_records(rejects, out_dir / REJECTS_FILE, Reject)
    (out_dir / STATS_FILE).write_text(normaliser.model_dump_json(indent=1))
    (out_dir / SUMMARY_FILE).write_text(
        json.dumps(run.summary() | {"level": level.value, "versions": versions()}, indent=2)
    )
    return run


def _gender(u: Utterance) -> str | None:
    return u.gender.value if u.gender is not None else None


def make_profile(u: Utterance, m: Measurements, normaliser: Normaliser) -> AcousticProfile:
    basis, group = normaliser.basis_for(u.dataset, u.speaker, _gender(u))
    feature_z = normaliser.zscores(m, group)
    z = z_by_measure(feature_z)
    return AcousticProfile(
        utterance_id=u.id,
        dataset=u.dataset,
        speaker=u.speaker,
        **m.model_dump(),
        z={measure.value: value for measure, value in z.items()},
        feature_z=feature_z,
        cues=cues_from(z, m.f0_slope_st_per_s),
        basis=basis.value,
        versions=dict(versions()),
    )
