"""OpenAI-compatible HTTP backend (`vllm serve`, llama.cpp server, hosted APIs) on bare aiohttp.

Why not the ``openai`` SDK: measured on this project's 2-core VM with the client on one core
(DESIGN.md), the SDK's httpx transport costs 6-10 ms CPU per request and reaches 13 % of the ideal
rate at 256 in flight, its aiohttp transport ~1.3 ms; bare aiohttp ~0.25 ms. The request body here
is one small JSON document, so the SDK adds nothing we need.

Shape: ``run()`` owns one private event loop, driven from the calling thread. ``concurrency``
worker coroutines share the request iterator (pulled lazily, so a caller's generator that renders
prompts runs only as fast as answers come back) and each worker holds at most one request in
flight, which bounds concurrency without a semaphore. Finished results collect in a deque; the
caller's ``for`` loop runs the event loop until at least one is ready, then yields them all.
No background thread: the GIL handoffs would cost more than they save on a one-core budget.

Overload: ``concurrency`` is a ceiling, not a promise. A server slower than the client thinks
(vLLM on CPU answered 64 concurrent requests with a p50 of 211 s) makes every attempt time out,
and re-sending them only keeps it saturated: nothing ever comes back. So the requests in flight
follow the server (AIMD, as TCP does): a timeout, 429 or 503 halves the window (once per window:
requests sent before the last cut do not cut again), and each answer widens it by 1/window, back
up to ``concurrency``. A server that answers one request within ``timeout_s`` when it is alone
therefore always makes progress.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import os
import queue
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import aiohttp

from pipeline.llm.base import LLMRequest, LLMResult
from pipeline.llm.config import LLMConfig

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})  # 409: OpenAI's "retry this" conflict
MAX_RETRY_AFTER_S = 300.0  # honour a server's Retry-After, but never hang a run longer on one request
ERROR_BODY_CHARS = 200  # how much of an error response to keep in LLMResult.error
CHARS_PER_TOKEN = 4  # prompt-token estimate for the token rate limit, before the server counts them
MAX_CACHED_SCHEMAS = 8  # a stage uses one or two answer schemas
RATE_BURST_S = 1.0  # a rate limiter may spend this many seconds' worth of budget at once
OVERLOAD_STATUSES = frozenset({429, 503})  # the server says it has too much to do: fewer in flight


class _Bucket:
    """Token bucket: ``take(amount)`` waits until the rate allows it."""

    def __init__(self, rate_per_s: float):
        self.rate = rate_per_s
        self.capacity = max(1.0, rate_per_s * RATE_BURST_S)
        self.level = self.capacity
        self.stamp = time.monotonic()

    async def take(self, amount: float) -> None:
        amount = min(amount, self.capacity)  # a request larger than the burst still goes, alone
        while True:
            now = time.monotonic()
            self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
            self.stamp = now
            if self.level >= amount:
                self.level -= amount
                return
            await asyncio.sleep((amount - self.level) / self.rate)


class _Retry(Exception):
    """One attempt failed in a way worth retrying; the final error reads "<reason> after N attempts: <detail>"."""

    def __init__(self, reason: str, detail: str = "", retry_after: float | None = None, overload: bool = False):
        super().__init__(reason)
        self.reason = reason  # short, e.g. "http 503"
        self.detail = detail
        self.retry_after = retry_after
        self.overload = overload  # a sign that the server has more than it can do


class _Fatal(_Retry):
    """Retrying cannot help (400, 401, 404, ...)."""


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header: delta-seconds or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


class OpenAIClient:
    backend = "openai"

    def __init__(self, cfg: LLMConfig):
        self.model = cfg.model
        self._cfg = cfg
        self._endpoints = [url.rstrip("/") + "/chat/completions" for url in cfg.base_urls]
        self._headers = {"Content-Type": "application/json"}
        # Read once, kept only inside the headers; never logged, never part of a result or repr.
        self._secret = os.environ.get(cfg.api_key_env) or None
        if self._secret:
            self._headers["Authorization"] = f"Bearer {self._secret}"

        self._formats: list[tuple[dict[str, Any], str, str]] = []  # most recent first

    def __repr__(self) -> str:
        return f"OpenAIClient(model={self.model!r}, endpoints={self._endpoints!r})"

    def close(self) -> None:
        """Nothing held between runs: each ``run()`` opens and closes its own session."""

    def run(
        self, requests: Iterable[LLMRequest], on_tokens: Callable[[int], None] | None = None
    ) -> Iterator[LLMResult]:
        # on_tokens is not called: a non-streamed answer's tokens arrive with its result.
        try:
            asyncio.get_running_loop()
        except RuntimeError:  # the usual case: no event loop in this thread, drive our own here
            return self._run_here(requests)
        return self._run_in_thread(requests)  # called from async code (a notebook): loops cannot nest

    def _run_in_thread(self, requests: Iterable[LLMRequest]) -> Iterator[LLMResult]:
        results: queue.Queue[LLMResult | BaseException | None] = queue.Queue()
        stop = threading.Event()

        def pump() -> None:
            try:
                for result in self._run_here(requests):
                    results.put(result)
                    if stop.is_set():
                        break
            except BaseException as e:  # handed to the caller's thread, raised there
                results.put(e)
            results.put(None)

        thread = threading.Thread(target=pump, name="openai-client", daemon=True)
        thread.start()
        try:
            while (item := results.get()) is not None:
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()

    def _run_here(self, requests: Iterable[LLMRequest]) -> Iterator[LLMResult]:
        loop = asyncio.new_event_loop()
        job = _Job(self, iter(requests))
        try:
            loop.run_until_complete(job.start())
            while True:
                batch = loop.run_until_complete(job.next_batch())
                if not batch:
                    return
                yield from batch
        finally:
            loop.run_until_complete(job.stop())
            loop.close()

    # -- one request ------------------------------------------------------------------------------

    def _body(self, req: LLMRequest) -> bytes:
        s = req.sampling
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": m.role, "content": m.content} for m in req.messages],
            "temperature": s.temperature,
            "top_p": s.top_p,
            "max_tokens": s.max_tokens,
            "n": s.n,
        }
        if s.seed is not None:
            body["seed"] = s.seed
        text = json.dumps(body)
        if req.json_schema is None:
            return text.encode()
        return f'{text[:-1]}, "response_format": {self._response_format(req)}}}'.encode()

    def _response_format(self, req: LLMRequest) -> str:
        """The serialised structured-output constraint, cached.

        Encoding a schema like RationaleAnswer's costs ~170 us, most of this client's CPU per
        request; comparing two equal dicts costs a few. (Requests hold copies, so identity
        cannot be the key.)
        """
        for schema, name, text in self._formats:
            if name == req.schema_name and schema == req.json_schema:
                return text
        fmt = {
            "type": "json_schema",
            "json_schema": {"name": req.schema_name, "schema": req.json_schema, "strict": True},
        }
        text = json.dumps(fmt)
        self._formats = [(req.json_schema, req.schema_name, text), *self._formats[: MAX_CACHED_SCHEMAS - 1]]
        return text

    def _redact(self, text: str) -> str:
        return text.replace(self._secret, "***") if self._secret else text

    def _excerpt(self, raw: bytes) -> str:
        """The start of a response body for an error message: redacted *before* it is cut, so no
        piece of a key that straddles the cut can survive."""
        return self._redact(raw.decode("utf-8", "replace"))[:ERROR_BODY_CHARS]

    def _parse(self, req: LLMRequest, raw: bytes, attempts: int, latency_s: float) -> LLMResult:
        try:
            reply = json.loads(raw)
            choices = sorted(reply["choices"], key=lambda c: c.get("index", 0))
            texts, reasons = [], []
            for choice in choices:
                message = choice["message"]
                content = message.get("content")
                if content is None and message.get("refusal"):
                    texts.append(message["refusal"])
                    reasons.append("refusal")
                else:
                    texts.append(content or "")
                    reasons.append(choice.get("finish_reason") or "")
            usage = reply.get("usage") or {}
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise _Retry("malformed response body", f"{type(e).__name__}: {e}; body {self._excerpt(raw)!r}") from None
        if len(texts) != req.sampling.n:
            raise _Retry(f"asked for {req.sampling.n} candidates, got {len(texts)}")
        return LLMResult(
            key=req.key,
            texts=texts,
            finish_reasons=reasons,
            prompt_tokens=usage.get("prompt_tokens") or 0,
            completion_tokens=usage.get("completion_tokens") or 0,
            latency_s=latency_s,
            attempts=attempts,
        )


class _Job:
    """The state of one ``run()`` call, living on its event loop."""

    def __init__(self, client: OpenAIClient, requests: Iterator[LLMRequest]):
        self.client = client
        self.cfg = client._cfg
        self.requests = requests
        self.done: deque[LLMResult] = deque()
        self.waiter: asyncio.Future[None] | None = None
        self.failure: BaseException | None = None  # the request iterator itself raised
        self.load = [0] * len(client._endpoints)  # in flight per endpoint
        self.turn = 0
        self.rps = _Bucket(self.cfg.requests_per_s) if self.cfg.requests_per_s else None
        self.tpm = _Bucket(self.cfg.tokens_per_min / 60.0) if self.cfg.tokens_per_min else None
        self.session: aiohttp.ClientSession | None = None
        self.workers: list[asyncio.Task[None]] = []
        self.live = 0
        # AIMD window of requests in flight (see the module docstring).
        self.window = float(self.cfg.concurrency)
        self.in_flight = 0
        self.last_cut = -1.0  # time.monotonic() of the last cut
        self.admitted: asyncio.Condition | None = None

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(limit=self.cfg.concurrency, limit_per_host=0, ttl_dns_cache=300)
        self.session = aiohttp.ClientSession(
            connector=connector,
            headers=self.client._headers,
            timeout=aiohttp.ClientTimeout(total=self.cfg.timeout_s),
            raise_for_status=False,
        )
        self.live = self.cfg.concurrency
        self.admitted = asyncio.Condition()
        self.workers = [asyncio.create_task(self.worker()) for _ in range(self.cfg.concurrency)]

    async def stop(self) -> None:
        for task in self.workers:
            task.cancel()
        await asyncio.gather(*self.workers, return_exceptions=True)
        if self.session is not None:
            await self.session.close()

    def _wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    async def next_batch(self) -> list[LLMResult]:
        """Every finished result so far; waits for one if none; [] when all are done."""
        while not self.done and self.live and self.failure is None:
            self.waiter = asyncio.get_running_loop().create_future()
            await self.waiter
        if self.failure is not None:
            raise self.failure
        batch = list(self.done)
        self.done.clear()
        return batch

    async def worker(self) -> None:
        try:
            while True:
                try:
                    req = next(self.requests)
                except StopIteration:
                    return
                except Exception as e:  # the caller's generator broke: stop the run, report it
                    self.failure = e
                    return
                self.done.append(await self.ask(req))
                self._wake()
        finally:
            self.live -= 1
            self._wake()

    def _pick(self) -> int:
        """Least-loaded endpoint; ties go round-robin."""
        if len(self.load) == 1:
            return 0
        self.turn = (self.turn + 1) % len(self.load)
        order = self.load[self.turn :] + self.load[: self.turn]
        return (self.turn + order.index(min(order))) % len(self.load)

    async def ask(self, req: LLMRequest) -> LLMResult:
        """One request, retried on transient failures; always returns a result.

        ``latency_s`` runs from the first attempt to the answer, backoff waits included.
        """
        cfg = self.cfg
        body = self.client._body(req)
        start = time.perf_counter()
        attempts = 0
        reason, detail = "", ""
        while True:
            attempts += 1
            try:
                if self.rps is not None:
                    await self.rps.take(1)
                if self.tpm is not None:
                    await self.tpm.take(len(body) / CHARS_PER_TOKEN + req.sampling.max_tokens * req.sampling.n)
                return await self.attempt(req, body, attempts, start)
            except _Retry as e:
                reason, detail, retry_after = e.reason, e.detail, e.retry_after
                if isinstance(e, _Fatal):
                    break
            except asyncio.TimeoutError:
                reason, detail, retry_after = f"timeout of {cfg.timeout_s} s", "", None
            except aiohttp.ClientError as e:
                reason, detail, retry_after = "connection error", f"{type(e).__name__}: {e}", None
            if attempts > cfg.max_retries:
                break
            # Full jitter: a burst of failures does not come back as a synchronised burst.
            delay = random.uniform(0, min(cfg.backoff_max_s, cfg.backoff_base_s * 2 ** (attempts - 1)))
            if retry_after is not None:
                delay = max(delay, min(retry_after, MAX_RETRY_AFTER_S))
            await asyncio.sleep(delay)
        error = f"{reason} after {attempts} attempt{'s' if attempts > 1 else ''}" + (f": {detail}" if detail else "")
        return self._failed(req, error, attempts, start)

    def _failed(self, req: LLMRequest, error: str, attempts: int, start: float) -> LLMResult:
        return LLMResult(
            key=req.key, error=self.client._redact(error), attempts=attempts, latency_s=time.perf_counter() - start
        )

    async def _admit(self) -> float:
        """Wait until the window has room for one more request; when it was sent (monotonic)."""
        assert self.admitted is not None
        async with self.admitted:
            await self.admitted.wait_for(lambda: self.in_flight < max(1, int(self.window)))
            self.in_flight += 1
        return time.monotonic()

    async def _release(self, sent: float, overloaded: bool) -> None:
        assert self.admitted is not None
        async with self.admitted:
            self.in_flight -= 1
            if overloaded and sent > self.last_cut:
                before, self.window = self.window, max(1.0, self.window / 2)
                self.last_cut = time.monotonic()
                if int(before) > 1:
                    log.warning(
                        "the server is overloaded (timeouts or 429/503 at %d in flight): sending at most %d at once",
                        int(before),
                        int(self.window),
                    )
            elif not overloaded:
                self.window = min(float(self.cfg.concurrency), self.window + 1 / self.window)
            self.admitted.notify_all()

    async def attempt(self, req: LLMRequest, body: bytes, attempts: int, start: float) -> LLMResult:
        assert self.session is not None
        sent = await self._admit()
        overloaded = True  # until an answer or a non-overload failure says otherwise
        slot = self._pick()
        self.load[slot] += 1
        try:
            async with self.session.post(self.client._endpoints[slot], data=body) as resp:
                raw = await resp.read()
                status = resp.status
                retry_after = resp.headers.get("Retry-After")
            overloaded = status in OVERLOAD_STATUSES
        except aiohttp.ClientError as e:
            # A refused or dropped connection says nothing about the server's load; a timeout does.
            overloaded = isinstance(e, asyncio.TimeoutError)
            raise
        finally:
            self.load[slot] -= 1
            await self._release(sent, overloaded)
        if status == 200:
            return self.client._parse(req, raw, attempts, time.perf_counter() - start)
        detail = self.client._excerpt(raw)
        if status in RETRY_STATUSES:
            raise _Retry(f"http {status}", detail, _retry_after(retry_after), overload=status in OVERLOAD_STATUSES)
        raise _Fatal(f"http {status}", detail)
