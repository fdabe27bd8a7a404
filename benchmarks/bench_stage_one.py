"""Stage-one client efficiency through the whole stage path, against a server of known latency.

A local OpenAI-compatible server (benchmarks/fixed_latency_server.py) answers every request after
exactly L = 0.2 s with a valid RationaleAnswer. The client process, pinned to one core, runs
``pipeline.generate.generate`` on N synthetic utterances with C requests in flight: render, cache
key, cache lookup, HTTP request, cache store, parse, validate, records, parquet. The ideal rate is
C / L; efficiency is the achieved rate divided by it. CPU ms per request is the client process's
user + system time over the same span, divided by N.

    emoreason bench stage_one               # N = 3000 at C = 64 and C = 256
    python -m benchmarks.bench_stage_one --profile 256   # cProfile of the client at C = 256
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.fixed_latency_server import start_fixed_latency_server
from benchmarks.run import Result

LATENCY_S = 0.2
N_REQUESTS = 3000
QUICK_REQUESTS = 600
CONCURRENCIES = (64, 256)
TARGETS = {64: 0.9, 256: 0.6}
TARGET_CPU_MS = 1.5
REPO = Path(__file__).resolve().parents[1]


def _cores() -> tuple[int, int]:
    """(client core, server core): different ones when the machine has two."""
    cores = sorted(os.sched_getaffinity(0))
    return cores[0], cores[-1]


def _run_delay() -> float:
    """Seconds this process's threads spent runnable but waiting for a CPU (Linux schedstat; 0 elsewhere)."""
    total = 0.0
    for stat in Path("/proc/self/task").glob("*/schedstat"):
        try:
            total += int(stat.read_text().split()[1]) / 1e9
        except (OSError, IndexError, ValueError):
            continue
    return total


def _utterances(count: int):
    from pipeline.labels import Emotion
    from pipeline.records import ContextTurn, Utterance

    emotions = [Emotion.neutral, Emotion.happy, Emotion.angry, Emotion.sad]
    return [
        Utterance(
            id=f"bench/{i:05d}",
            dataset="bench",
            split="train",
            transcript=f"I told you twice already, number {i}, and you still did not listen to me!",
            speaker=f"spk{i % 10}",
            emotion=emotions[i % len(emotions)],
            raw_label=emotions[i % len(emotions)].value,
            label_protocol="all",
            context=[
                ContextTurn(turn=0, speaker="A", text="Did you bring the tickets?"),
                ContextTurn(turn=1, speaker="B", text="What tickets? You never said anything about tickets."),
            ],
        )
        for i in range(count)
    ]


def client(url: str, count: int, concurrency: int, core: int, profile: str | None = None) -> dict:
    """Run stage one in this process on one core; returns timings (excluding imports and setup)."""
    os.sched_setaffinity(0, {core})
    # One-time imports are not a per-request cost: the backend, and pandas (pyarrow's from_pylist imports it).
    import pandas  # noqa: F401

    import pipeline.llm.openai_backend  # noqa: F401
    from pipeline.generate import generate
    from pipeline.generate_config import GenerateConfig
    from pipeline.llm.base import Sampling
    from pipeline.llm.config import LLMConfig

    utterances = _utterances(count)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = GenerateConfig(
            styles=["elaborate"],
            sampling=Sampling(n=1, temperature=0.7, max_tokens=256),
            llm=LLMConfig(backend="openai", model="bench", base_urls=[url], concurrency=concurrency, timeout_s=60),
            max_parse_retries=0,
            progress=False,
        )
        profiler = None
        if profile:
            import cProfile

            profiler = cProfile.Profile(time.process_time)  # CPU time: wall time on a shared VM misleads
            profiler.enable()
        before, start, delay = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter(), _run_delay()
        run = generate(utterances, None, cfg, tmp)
        wall = time.perf_counter() - start
        after, delay = resource.getrusage(resource.RUSAGE_SELF), _run_delay() - delay
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(profile)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {
        "wall_s": wall,
        "cpu_s": cpu,
        "run_delay_s": delay,
        "answers": run.answers,
        "sent": run.requests_sent,
        "reasons": dict(run.reasons),
    }


def _measure(count: int, concurrency: int, profile: str | None = None) -> dict:
    client_core, server_core = _cores()
    url, stop = start_fixed_latency_server(LATENCY_S, cpu=server_core)
    try:
        code = (
            "import json; from benchmarks.bench_stage_one import client; "
            f"print(json.dumps(client({url!r}, {count}, {concurrency}, {client_core}, {profile!r})))"
        )
        out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    finally:
        stop()
    return json.loads(out.stdout.strip().splitlines()[-1])


def run(quick: bool) -> list[Result]:
    count = QUICK_REQUESTS if quick else N_REQUESTS
    results = []
    for concurrency in CONCURRENCIES:
        m = _measure(count, concurrency)
        ideal = concurrency / LATENCY_S
        efficiency = count / m["wall_s"] / ideal
        # Time the client was ready to run but waited for its core (other processes on a shared VM):
        # when it is a large part of the wall time, the machine, not the client, set the rate.
        note = (
            f"N={count}, L={LATENCY_S}s, client on 1 core, {m['answers']} answers, "
            f"waited for the CPU {m['run_delay_s']:.1f} of {m['wall_s']:.1f} s"
        )
        results.append(
            Result(
                "stage one client",
                f"efficiency C={concurrency}",
                efficiency,
                "of ideal C/L",
                f">= {TARGETS[concurrency]}",
                note,
            )
        )
        results.append(
            Result(
                "stage one client",
                f"CPU per request C={concurrency}",
                1000 * m["cpu_s"] / count,
                "ms",
                f"<= {TARGET_CPU_MS}",
                note,
            )
        )
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", type=int, metavar="C", help="cProfile the client at this concurrency")
    parser.add_argument("--n", type=int, default=N_REQUESTS)
    args = parser.parse_args()
    if args.profile:
        stats = str(Path(tempfile.gettempdir()) / f"stage_one_c{args.profile}.prof")
        print(_measure(args.n, args.profile, stats))
        import pstats

        pstats.Stats(stats).sort_stats("cumulative").print_stats(35)
    else:
        for r in run(quick=False):
            print(f"{r.metric:<28} {r.value:8.3f} {r.unit:<14} target {r.target}")
