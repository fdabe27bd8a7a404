"""LLM client efficiency: how close the openai backend gets to the ideal rate C / L, and its CPU cost.

Method (the issue's): a local OpenAI-compatible server answers every request after L = 0.2 s
(benchmarks/fixed_latency_server.py, pinned to one core); the client runs in its own process
pinned to the other core and sends N = 3000 requests with C = 64 and C = 256 in flight.
Efficiency = achieved requests/s ÷ (C / L); CPU = the client process's CPU time ÷ N. This is the
client layer alone (request objects in, LLMResult out); benchmarks/bench_stage_one.py measures the
whole stage path. Comparison rows: bare aiohttp (the ceiling, measured under the same machine load)
and the ``openai`` SDK with its default httpx transport.

A second part sends 128 requests to a *saturating* server (each needs 0.05 s of a server that
shares its time: 64 sent together take 3.2 s each) with 64 in flight and a 1 s timeout: a client
that re-sends everything it timed out gets almost nothing back; ours halves its window on
timeouts (pipeline/llm/openai_backend.py) and should answer all.

    emoreason bench llm_client            # or: python -m benchmarks.bench_llm_client --client ...
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time

from benchmarks.fixed_latency_server import start_fixed_latency_server
from benchmarks.run import Result

LATENCY_S = 0.2
CONCURRENCIES = (64, 256)
N_FULL, N_QUICK = 3000, 600
N_SDK = 1000  # the SDK row costs 6-10 ms CPU per request: fewer requests, same rate measurement
CLIENT_CPU, SERVER_CPU = 0, 1
TARGETS = {64: ">= 0.9", 256: ">= 0.6"}
CPU_TARGET = "<= 1.5"


def _requests(n: int):
    from pipeline.llm.base import ChatMessage, LLMRequest, Sampling
    from pipeline.rationale import RationaleAnswer

    schema = RationaleAnswer.model_json_schema()
    system = ChatMessage(
        role="system", content="You explain, with evidence, why a speaker sounds the way the label says."
    )
    for i in range(n):
        user = ChatMessage(role="user", content=f"Utterance {i}: 'I can't believe you did that!' Label: anger.")
        yield LLMRequest(key=f"{i:06d}", messages=[system, user], json_schema=schema, sampling=Sampling(max_tokens=256))


def _client_emoreason(url: str, n: int, concurrency: int) -> int:
    from pipeline.llm.config import LLMConfig, make_client

    client = make_client(LLMConfig(backend="openai", model="bench", base_urls=[url], concurrency=concurrency))
    return sum(r.error is None for r in client.run(_requests(n)))


def _client_openai_sdk(url: str, n: int, concurrency: int) -> int:
    import openai

    async def main() -> int:
        client = openai.AsyncOpenAI(base_url=url, api_key="unused", max_retries=0, timeout=120.0)
        it = iter(_requests(n))
        ok = 0

        async def worker() -> None:
            nonlocal ok
            for req in it:
                reply = await client.chat.completions.create(
                    model="bench",
                    messages=[m.model_dump() for m in req.messages],
                    max_tokens=req.sampling.max_tokens,
                    temperature=req.sampling.temperature,
                    response_format={
                        "type": "json_schema",
                        "json_schema": {"name": req.schema_name, "schema": req.json_schema, "strict": True},
                    },
                )
                ok += bool(reply.choices[0].message.content)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        await client.close()
        return ok

    return asyncio.run(main())


def _client_bare_aiohttp(url: str, n: int, concurrency: int) -> int:
    """The ceiling: one shared aiohttp session, a prebuilt body, no retries, no result objects."""
    import aiohttp

    req = next(_requests(1))
    body = json.dumps(
        {
            "model": "bench",
            "messages": [m.model_dump() for m in req.messages],
            "max_tokens": req.sampling.max_tokens,
            "response_format": {"type": "json_schema", "json_schema": {"name": "answer", "schema": req.json_schema}},
        }
    ).encode()

    async def main() -> int:
        remaining = iter(range(n))
        ok = 0
        connector = aiohttp.TCPConnector(limit=concurrency)
        async with aiohttp.ClientSession(connector=connector, headers={"Content-Type": "application/json"}) as session:

            async def worker() -> None:
                nonlocal ok
                for _ in remaining:
                    async with session.post(url + "/chat/completions", data=body) as resp:
                        ok += bool(json.loads(await resp.read())["choices"][0]["message"]["content"])

            await asyncio.gather(*(worker() for _ in range(concurrency)))
        return ok

    return asyncio.run(main())


CLIENTS = {
    "emoreason": _client_emoreason,
    "bare-aiohttp": _client_bare_aiohttp,
    "openai-sdk-httpx": _client_openai_sdk,
}


def _measure(kind: str, url: str, n: int, concurrency: int) -> dict[str, float]:
    """Run one client in a fresh process pinned to CLIENT_CPU; returns its JSON line."""
    cmd = [sys.executable, "-m", "benchmarks.bench_llm_client", "--client", kind, "--url", url]
    cmd += ["--n", str(n), "--concurrency", str(concurrency)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


SATURATED_WORK_S, SATURATED_N, SATURATED_TIMEOUT_S = 0.05, 128, 1.0


def _saturated() -> list[Result]:
    from pipeline.llm.config import LLMConfig, make_client

    url, server = start_fixed_latency_server(0.0, work_s=SATURATED_WORK_S)
    try:
        cfg = LLMConfig(
            backend="openai", model="bench", base_urls=[url], concurrency=64, timeout_s=SATURATED_TIMEOUT_S,
            max_retries=4, backoff_base_s=0.1, backoff_max_s=1.0,
        )  # fmt: skip
        start = time.perf_counter()
        ok = sum(r.error is None for r in make_client(cfg).run(_requests(SATURATED_N)))
        wall = time.perf_counter() - start
    finally:
        server()
    ideal = SATURATED_N * SATURATED_WORK_S
    note = f"N={SATURATED_N}, C=64, timeout {SATURATED_TIMEOUT_S} s, {SATURATED_WORK_S} s of shared server time each"
    return [
        Result("llm client saturated server", "answered", ok / SATURATED_N, "share", "1.0", note),
        Result("llm client saturated server", "wall / ideal", wall / ideal, "x", "", f"{note}; ideal {ideal:.1f} s"),
    ]


def run(quick: bool) -> list[Result]:
    n = N_QUICK if quick else N_FULL
    two_cores = len(os.sched_getaffinity(0)) >= 2
    url, server = start_fixed_latency_server(LATENCY_S, cpu=SERVER_CPU if two_cores else None)
    note_cores = "client on 1 core, server on another" if two_cores else "client and server share 1 core"
    results = []
    try:
        # bare aiohttp runs under the same conditions: on a shared machine, "ours ÷ bare" is the
        # part of the gap the client is responsible for.
        runs = [(kind, c, n) for c in CONCURRENCIES for kind in ("emoreason", "bare-aiohttp")]
        runs += [("openai-sdk-httpx", c, min(n, N_SDK)) for c in CONCURRENCIES]

        for kind, concurrency, count in runs:
            server_cpu = server.cpu_s()
            m = _measure(kind, url, count, concurrency)
            # Includes the warm-up requests; says whether the server, not the client, was the limit.
            server_ms = 1000 * (server.cpu_s() - server_cpu) / (count + min(count, 2 * concurrency))
            efficiency = (m["ok"] / m["wall_s"]) / (concurrency / LATENCY_S)
            note = (
                f"{kind}, N={count}, L={LATENCY_S} s, {note_cores}; {m['ok']}/{count} ok; "
                f"client {m['cpu_ms'] * count / 1000 / m['wall_s']:.0%} of its core, server {server_ms:.2f} ms/request"
            )
            mine = kind == "emoreason"
            results += [
                Result(
                    f"llm client {kind}",
                    f"efficiency C={concurrency}",
                    efficiency,
                    "of C/L",
                    TARGETS[concurrency] if mine else "",
                    note,
                ),
                Result(
                    f"llm client {kind}",
                    f"cpu C={concurrency}",
                    m["cpu_ms"],
                    "ms/request",
                    CPU_TARGET if mine else "",
                    note,
                ),
            ]
    finally:
        server()
    return results + _saturated()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--client", choices=sorted(CLIENTS), help="run one client (used by run())")
    parser.add_argument("--url")
    parser.add_argument("--n", type=int, default=N_FULL)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.client is None:  # the whole benchmark, printed
        for r in run(args.quick):
            print(f"{r.benchmark:<28} {r.metric:<18} {r.value:8.3f} {r.unit:<12} {r.target:<8} {r.note}")
        return
    if len(os.sched_getaffinity(0)) >= 2 or CLIENT_CPU in os.sched_getaffinity(0):
        os.sched_setaffinity(0, {CLIENT_CPU})
    fn = CLIENTS[args.client]
    fn(args.url, min(args.n, 2 * args.concurrency), args.concurrency)  # warm-up: imports, connections
    cpu, wall = time.process_time(), time.perf_counter()
    ok = fn(args.url, args.n, args.concurrency)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    print(json.dumps({"ok": ok, "wall_s": wall, "cpu_ms": 1000 * cpu / args.n}))


if __name__ == "__main__":
    main()
