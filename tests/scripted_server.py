"""A scripted OpenAI-compatible server on 127.0.0.1 with per-request fault injection.

    with ScriptedServer(plan={"utt-7": ["500", "429", "ok"]}, fault_rate=0.2) as server:
        client = make_client(LLMConfig(backend="openai", base_urls=[server.url], ...))
        ...
        assert server.max_in_flight <= 8

A request is matched to a plan entry when the entry's key occurs in its last user message (put the
utterance id or transcript there); the entry lists one fault per attempt, and attempts past the
list answer "ok". Requests that match no entry draw a fault with probability ``fault_rate``,
deterministically from (content, attempt number, seed): an interrupted and a fresh run see the
same faults. ``answer_fn(body, candidate)`` writes the message content of a good answer.

Faults (``FAULTS``): transport/HTTP — "400" (not worth retrying), "429" (with Retry-After:
``retry_after_s``), "500", "503", "timeout" (sleeps
past any sane client timeout), "disconnect" (drops the connection), "malformed_body" (200 with
a non-JSON body), "truncated_body" (200 with half a JSON body), "slow" (answers after
``slow_s``); content, for the caller's parse step — "malformed_json", "truncated_json",
"refusal", "wrong_schema". ``work_s`` makes a saturating server: each answer needs
``work_s`` seconds of a server that shares its time among the requests in flight (processor
sharing, as a batching LLM server does), so k requests sent together all take ``k * work_s``. ``error_text`` replaces the message of the scripted 500/503 bodies.
Run standalone: ``python -m tests.scripted_server --port 8000``.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import random
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

HTTP_FAULTS = ("400", "429", "500", "503", "timeout", "disconnect", "malformed_body", "truncated_body", "slow")
CONTENT_FAULTS = ("malformed_json", "truncated_json", "refusal", "wrong_schema")
FAULTS = HTTP_FAULTS + CONTENT_FAULTS
TIMEOUT_HANG_S = 3600.0  # "timeout" never answers within a test's lifetime
WORK_TICK_S = 0.005
REFUSAL = "I'm sorry, but I can't help with that request."


def default_answer(body: dict[str, Any], candidate: int) -> str:
    """A valid pipeline.rationale.RationaleAnswer as JSON text."""
    return json.dumps(
        {
            "evidence": [{"kind": "lexical", "cue": "fine", "suggests": f"calm acceptance (candidate {candidate})"}],
            "reasoning": "The speaker says 'fine' without emphasis, which suggests no strong emotion.",
            "emotion": "neutral",
        }
    )


@dataclass(frozen=True)
class Seen:
    """One request as the server received it."""

    match: str  # the last user message
    attempt: int  # 1 for the first time this content was seen
    fault: str  # what the server did: "ok" or one of FAULTS
    authorization: str | None  # the Authorization header, for tests that check the key is sent
    body: dict[str, Any]


class ScriptedServer:
    def __init__(
        self,
        plan: dict[str, list[str]] | None = None,
        answer_fn: Callable[[dict[str, Any], int], str] = default_answer,
        fault_rate: float = 0.0,
        faults: tuple[str, ...] = FAULTS,
        latency_s: float = 0.0,
        work_s: float = 0.0,
        error_text: str | None = None,
        slow_s: float = 0.5,
        retry_after_s: float = 0.05,
        seed: int = 0,
        port: int = 0,
    ):
        unknown = {f for steps in (plan or {}).values() for f in steps} - set(FAULTS) - {"ok"}
        unknown |= set(faults) - set(FAULTS)
        if unknown:
            raise ValueError(f"unknown faults {sorted(unknown)}; known: {FAULTS}")
        self.plan = plan or {}
        self.answer_fn = answer_fn
        self.fault_rate = fault_rate
        self.faults = faults
        self.latency_s = latency_s
        self.work_s = work_s
        self.error_text = error_text
        self.slow_s = slow_s
        self.retry_after_s = retry_after_s
        self.seed = seed
        self.port = port
        self.requests_seen: list[Seen] = []
        self.attempts: Counter[str] = Counter()  # per last-user-message
        self.in_flight = 0
        self.max_in_flight = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def faults_seen(self) -> Counter[str]:
        return Counter(s.fault for s in self.requests_seen)

    # -- choosing what to do ----------------------------------------------------------------------

    def _fault(self, match: str, attempt: int) -> str:
        for key, steps in self.plan.items():
            if key in match:
                return steps[attempt - 1] if attempt <= len(steps) else "ok"
        if self.fault_rate <= 0:
            return "ok"
        digest = hashlib.sha256(f"{self.seed}\0{attempt}\0{match}".encode()).digest()
        rng = random.Random(digest)
        return rng.choice(self.faults) if rng.random() < self.fault_rate else "ok"

    def _content(self, fault: str, body: dict[str, Any], candidate: int) -> str:
        good = self.answer_fn(body, candidate)
        if fault == "malformed_json":
            return "Sure! Here is the answer: {evidence: [lexical, 'fine'], emotion = neutral"
        if fault == "truncated_json":
            return good[: len(good) // 2]
        if fault == "wrong_schema":
            return json.dumps({"label": "neutral", "confidence": 0.9})
        return good

    def _reply(self, fault: str, body: dict[str, Any]) -> dict[str, Any]:
        choices = []
        for i in range(int(body.get("n") or 1)):
            message: dict[str, Any] = {"role": "assistant", "content": self._content(fault, body, i)}
            if fault == "refusal":
                message = {"role": "assistant", "content": None, "refusal": REFUSAL}
            choices.append({"index": i, "message": message, "finish_reason": "stop"})
        prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in body.get("messages", []))
        completion_tokens = sum(len(str(c["message"]["content"] or "").split()) for c in choices)
        return {
            "id": f"chatcmpl-{len(self.requests_seen)}",
            "object": "chat.completion",
            "model": body.get("model", ""),
            "choices": choices,
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }

    # -- serving ----------------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            body = await request.json()
            users = [m.get("content", "") for m in body.get("messages", []) if m.get("role") == "user"]
            match = users[-1] if users else ""
            self.attempts[match] += 1
            attempt = self.attempts[match]
            fault = self._fault(match, attempt)
            self.requests_seen.append(Seen(match, attempt, fault, request.headers.get("Authorization"), body))
            if self.latency_s:
                await asyncio.sleep(self.latency_s)
            remaining = self.work_s
            while remaining > 0:  # a share of the server's time, tick by tick
                await asyncio.sleep(WORK_TICK_S)
                remaining -= WORK_TICK_S / self.in_flight
            if fault == "429":
                return web.json_response(
                    {"error": {"message": "rate limited"}}, status=429, headers={"Retry-After": str(self.retry_after_s)}
                )
            if fault == "400":
                return web.json_response({"error": {"message": "scripted bad request"}}, status=400)
            if fault in ("500", "503"):
                message = self.error_text if self.error_text is not None else f"scripted {fault}"
                return web.json_response({"error": {"message": message}}, status=int(fault))
            if fault == "timeout":
                await asyncio.sleep(TIMEOUT_HANG_S)
            if fault == "disconnect":
                assert request.transport is not None
                request.transport.close()
                return web.Response()
            if fault == "slow":
                await asyncio.sleep(self.slow_s)
            text = json.dumps(self._reply(fault, body))
            if fault == "malformed_body":
                text = "<html><body>502 Bad Gateway</body></html>"
            elif fault == "truncated_body":
                text = text[: len(text) // 2]
            return web.Response(text=text, content_type="application/json")
        finally:
            self.in_flight -= 1

    def _app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._handle)
        return app

    async def _start(self) -> None:
        self._runner = web.AppRunner(
            # handler_cancellation: a request the client gave up on stops counting as in flight.
            self._app(),
            access_log=None,
            handle_signals=False,
            shutdown_timeout=0.1,
            handler_cancellation=True,
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port, backlog=1024)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def _shutdown(self) -> None:
        assert self._runner is not None
        await self._runner.cleanup()
        # Handlers still sleeping ("timeout", "slow") would be destroyed pending: cancel them.
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)

    def start(self) -> ScriptedServer:
        self._loop = asyncio.new_event_loop()
        ready = threading.Event()

        def serve() -> None:
            assert self._loop is not None
            asyncio.set_event_loop(self._loop)
            self._loop.run_until_complete(self._start())
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=serve, name="scripted-server", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("scripted server did not start within 10 s")
        return self

    def stop(self) -> None:
        if self._loop is None or self._thread is None:
            return
        assert self._runner is not None
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()
        self._loop = self._thread = None

    def __enter__(self) -> ScriptedServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--fault-rate", type=float, default=0.0)
    parser.add_argument("--faults", default=",".join(FAULTS), help="comma-separated subset of faults to draw from")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before every answer")
    parser.add_argument(
        "--work", type=float, default=0.0, help="seconds of server time per request, shared (saturating)"
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    server = ScriptedServer(
        fault_rate=args.fault_rate,
        faults=tuple(args.faults.split(",")),
        latency_s=args.latency,
        work_s=args.work,
        seed=args.seed,
        port=args.port,
    )
    with server:
        print(
            f"scripted OpenAI-compatible server on {server.url} (fault rate {args.fault_rate}); Ctrl-C stops",
            flush=True,
        )
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            print(f"faults served: {dict(server.faults_seen())}")


if __name__ == "__main__":
    main()
