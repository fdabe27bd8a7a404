"""An OpenAI-compatible server that answers every request after a fixed latency, for client benchmarks.

With the answer time known (L), a client holding C requests in flight can at best reach C / L
requests per second; the ratio of what it achieves to that is its efficiency. The server runs in
its own process (optionally pinned to a core) and does almost nothing per request — read the
body, sleep L, send a precomputed answer (a valid ``RationaleAnswer``) — so that it is not the
bottleneck at 256 in flight.

    url, stop = start_fixed_latency_server(0.2, cpu=1)
    ...
    stop()

With ``work_s`` it is a *saturating* server instead: each answer needs ``work_s`` seconds of a
server that shares its time among the requests in flight (processor sharing, as a batching LLM
server does), so k requests sent together all take k × ``work_s``.

Standalone: ``python -m benchmarks.fixed_latency_server --latency 0.2 --port 8000``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path

from aiohttp import web

ANSWER = {
    "evidence": [
        {"kind": "lexical", "cue": "I can't believe it", "suggests": "disbelief, heightened arousal"},
        {"kind": "acoustic", "cue": "pitch level high (+1.8 SD)", "suggests": "excitement or anger"},
    ],
    "reasoning": "The speaker's disbelief together with a raised pitch points to surprise rather than anger.",
    "emotion": "surprise",
}
WORK_TICK_S = 0.005
READY = "READY"  # the first line the server prints, followed by its port
START_TIMEOUT_S = 30.0


def _reply(n: int) -> bytes:
    content = json.dumps(ANSWER)
    choices = [
        {"index": i, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"} for i in range(n)
    ]
    usage = {"prompt_tokens": 150, "completion_tokens": 60 * n, "total_tokens": 150 + 60 * n}
    return json.dumps({"id": "bench", "object": "chat.completion", "choices": choices, "usage": usage}).encode()


def make_app(latency_s: float, work_s: float = 0.0) -> web.Application:
    replies: dict[int, bytes] = {1: _reply(1)}
    in_flight = 0

    async def handle(request: web.Request) -> web.Response:
        raw = await request.read()
        # Most requests ask for one candidate: skip parsing their body.
        n = 1 if b'"n": 1,' in raw or b'"n":1,' in raw else int(json.loads(raw).get("n") or 1)
        if n not in replies:
            replies[n] = _reply(n)
        await asyncio.sleep(latency_s)
        nonlocal in_flight
        in_flight += 1
        try:
            remaining = work_s
            while remaining > 0:  # a share of the server's time, tick by tick
                await asyncio.sleep(WORK_TICK_S)
                remaining -= WORK_TICK_S / in_flight
        finally:
            in_flight -= 1
        return web.Response(body=replies[n], content_type="application/json")

    app = web.Application()
    app.router.add_post("/v1/chat/completions", handle)
    return app


class ServerProcess:
    """The running server: call it to stop it; ``cpu_s()`` is the CPU time it has used so far."""

    def __init__(self, proc: subprocess.Popen[str]):
        self.proc = proc
        self.pid = proc.pid

    def cpu_s(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime

    def __call__(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(START_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def start_fixed_latency_server(
    latency_s: float = 0.2, cpu: int | None = None, work_s: float = 0.0
) -> tuple[str, ServerProcess]:
    """Start the server in a subprocess on a free port; returns its base URL and a stop callable."""
    cmd = [sys.executable, "-m", "benchmarks.fixed_latency_server", "--latency", str(latency_s), "--port", "0"]
    cmd += ["--work", str(work_s)]
    if cpu is not None:
        cmd += ["--cpu", str(cpu)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline().split()  # blocks until the server is listening (or died)
    if len(line) != 2 or line[0] != READY:
        proc.kill()
        raise RuntimeError(f"fixed-latency server failed to start (exit {proc.poll()}): {line}")
    return f"http://127.0.0.1:{line[1]}/v1", ServerProcess(proc)


async def _serve(latency_s: float, port: int, work_s: float) -> None:
    # handler_cancellation: a request the client gave up on stops taking a share of the server.
    runner = web.AppRunner(make_app(latency_s, work_s), access_log=None, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port, backlog=4096)
    await site.start()
    print(READY, runner.addresses[0][1], flush=True)
    await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser(description="OpenAI-compatible server answering after a fixed latency")
    parser.add_argument("--latency", type=float, default=0.2, help="seconds before every answer")
    parser.add_argument("--port", type=int, default=8000, help="0 = any free port (printed)")
    parser.add_argument("--cpu", type=int, default=None, help="pin the server to this core")
    parser.add_argument("--work", type=float, default=0.0, help="seconds of server time per request, shared")
    args = parser.parse_args()
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args.latency, args.port, args.work))


if __name__ == "__main__":
    main()
