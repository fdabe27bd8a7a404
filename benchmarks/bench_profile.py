"""Acoustic profile: speed in × real time on ONE core, and peak memory for 1,000 RAVDESS clips.

The measurement runs in a child process pinned to one CPU (os.sched_setaffinity), so that its
peak RSS (resource.getrusage) is the profile's own and the parent's affinity is left alone.
Reported:
- end-to-end speed: audio seconds / wall seconds of `compute_profiles` (decode, measure,
  normalise, write parquet), one worker, N clips;
- measure-only speed: `measure_signal` on audio already in memory (what Praat and numpy cost);
- cached rerun: wall seconds of the same call again (nothing is measured: the resume path);
- peak RSS of the child after the N-clip run.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "ravdess16k"
FULL_CLIPS, QUICK_CLIPS = 1000, 200
MEASURE_ONLY_CLIPS = 200
TARGET_X_REALTIME = 150
NAME = "acoustic profile"


def _utterances(n: int):
    from pipeline.records import Utterance

    with open(DATA / "labels.csv", newline="") as f:
        rows = list(csv.DictReader(f))[:n]
    return [
        Utterance(
            id=r["path"],
            dataset="ravdess",
            split="all",
            audio_path=str(DATA / r["path"]),
            transcript=r["text"],
            speaker=f"Actor_{r['actor']}",
            emotion="neutral",  # labels play no part in the profile
            raw_label=r["emotion"],
            label_protocol="all",
        )
        for r in rows
    ]


def child(n: int) -> dict[str, float]:
    """Runs pinned to one CPU; prints its figures as JSON."""
    import resource

    os.sched_setaffinity(0, {max(os.sched_getaffinity(0))})
    from pipeline.acoustic.compute import compute_profiles
    from pipeline.acoustic.measure import measure_signal
    from pipeline.audio import load_audio

    utterances = _utterances(n)
    rss_start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    with tempfile.TemporaryDirectory() as tmp:
        start, cpu = time.perf_counter(), time.process_time()
        run = compute_profiles(utterances, Path(tmp), workers=1)
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
        start = time.perf_counter()
        compute_profiles(utterances, Path(tmp), workers=1)
        rerun = time.perf_counter() - start
    audio_s = sum(p.duration_s for p in run.profiles)

    clips = [(load_audio(u.audio_path), u.transcript) for u in utterances[:MEASURE_ONLY_CLIPS]]
    cpu_start = time.process_time()
    for samples, transcript in clips:
        measure_signal(samples, transcript=transcript)
    measure_cpu = time.process_time() - cpu_start
    measure_audio_s = sum(len(s) for s, _ in clips) / 16_000
    return {
        "clips": len(run.profiles),
        "audio_s": audio_s,
        "x_realtime_cpu": audio_s / cpu,
        "x_realtime_wall": audio_s / wall,
        "measure_x_realtime_cpu": measure_audio_s / measure_cpu,
        "rerun_s": rerun,
        "rss_import_mb": rss_start,
        "rss_peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def run(quick: bool) -> list:
    from benchmarks.run import Result  # not at the top: the child process must not import torch

    if not (DATA / "labels.csv").is_file():
        return [
            Result(
                NAME, "speed", float("nan"), "x real time", f">= {TARGET_X_REALTIME}", f"skipped: no RAVDESS at {DATA}"
            )
        ]
    n = QUICK_CLIPS if quick else FULL_CLIPS
    repo = Path(__file__).resolve().parents[1]
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_profile", str(n)], cwd=repo, capture_output=True, text=True, check=True
    )
    f = json.loads(proc.stdout.strip().splitlines()[-1])
    clips = f"{f['clips']} RAVDESS clips ({f['audio_s'] / f['clips']:.1f} s each), one core"
    # CPU seconds of the pinned child: on a shared machine wall time also counts other processes'
    # turns on that core. Both are reported; they agree on an idle machine.
    wall_note = f"wall-clock: {f['x_realtime_wall']:.0f}x"
    return [
        Result(
            NAME,
            "speed end to end",
            f["x_realtime_cpu"],
            "x real time (CPU)",
            f">= {TARGET_X_REALTIME}",
            f"{clips}, decode+measure+normalise+write; {wall_note}",
        ),
        Result(
            NAME,
            "speed measure only",
            f["measure_x_realtime_cpu"],
            "x real time (CPU)",
            "",
            f"{MEASURE_ONLY_CLIPS} clips in memory, one core",
        ),
        Result(NAME, "cached rerun", f["rerun_s"], "s", "", f"{clips}: nothing measured again"),
        Result(NAME, "peak RSS", f["rss_peak_mb"], "MiB", "", f"{clips}; {f['rss_import_mb']:.0f} MiB after imports"),
    ]


if __name__ == "__main__":
    print(json.dumps(child(int(sys.argv[1]))))
