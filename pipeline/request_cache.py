"""The request-level cache: every LLM answer, stored as it arrives, keyed by everything that shaped it.

The key is the sha256 of (template id + hash, rendered messages, backend, model, sampling,
answer-schema version + schema). So a finished job re-run sends zero requests; an edited prompt,
another model or other sampling re-asks exactly the requests it changes; and a run killed at any
point (SIGKILL included) resumes with only its in-flight requests lost.

Storage is one SQLite file in WAL mode with ``synchronous=NORMAL``, one row per key, committed
after every result: a commit then writes to the WAL without an fsync, which survives the process
being killed (not a power cut, where the last few results are re-asked). Measured on the 2-core
dev VM (3000 results of ~600 bytes): SQLite ~25 us CPU per stored result and ~8 us per key
looked up; append-only JSONL ~4 us per line flushed without fsync (the same crash guarantee) or
~25 us CPU and ~80 us wall with fsync, but it must be read whole into memory at start-up (~5 us
per line) and cannot be queried. Both are far below a request's ~1 ms budget; SQLite wins on
lookups by key, concurrent readers and a cache that grows past memory.

Failed requests (an HTTP 500 after the backend's retries, a timeout) are stored too, for the
audit, but :meth:`RequestCache.get_many` does not return them: the next run asks them again, so
a transient failure never becomes permanent. A later success replaces the failure; a success is
never overwritten. Answers that arrived but do not parse are *successes* here (the text came
back); stage one retries those with new attempt keys, which are cached like any other request.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from pipeline.llm.base import ChatMessage, LLMResult

# SQLite limits the number of bound parameters per statement (999 on old builds).
_LOOKUP_CHUNK = 900

_SCHEMA = """
CREATE TABLE IF NOT EXISTS results (
    key TEXT PRIMARY KEY,
    ok INTEGER NOT NULL,
    template_id TEXT NOT NULL,
    model TEXT NOT NULL,
    created_at TEXT NOT NULL,
    result TEXT NOT NULL
) WITHOUT ROWID
"""


class Cached(NamedTuple):
    result: LLMResult
    created_at: dt.datetime  # when the answer arrived (UTC)


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def key_prefix(
    *,
    template_id: str,
    template_hash: str,
    backend: str,
    model: str,
    sampling_json: str,
    schema_version: str,
    schema_json: str,
) -> str:
    """Digest of everything but the messages: computed once per (template, sampling) in a run."""
    payload = [template_id, template_hash, backend, model, sampling_json, schema_version, schema_json]
    return hashlib.sha256(canonical_json(payload).encode()).hexdigest()


def request_key(prefix: str, messages: Sequence[ChatMessage], attempt: str = "") -> str:
    """Hex sha256 of the prefix, the rendered messages, and ``attempt`` (which distinguishes parse retries)."""
    payload = [prefix, [[m.role, m.content] for m in messages], attempt]
    return hashlib.sha256(canonical_json(payload).encode()).hexdigest()


class RequestCache:
    """SQLite-backed store of LLM results; use as a context manager or call :meth:`close`."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, isolation_level=None)  # autocommit: one result, one commit
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(_SCHEMA)

    def get_many(self, keys: Iterable[str]) -> dict[str, Cached]:
        """Stored *successful* results for the keys that have one."""
        keys = list(dict.fromkeys(keys))
        found: dict[str, Cached] = {}
        for start in range(0, len(keys), _LOOKUP_CHUNK):
            chunk = keys[start : start + _LOOKUP_CHUNK]
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(
                f"SELECT key, result, created_at FROM results WHERE ok = 1 AND key IN ({marks})", chunk
            )
            for key, result, created_at in rows:
                found[key] = Cached(LLMResult.model_validate_json(result), dt.datetime.fromisoformat(created_at))
        return found

    def get(self, key: str) -> LLMResult | None:
        hit = self.get_many([key]).get(key)
        return hit.result if hit is not None else None

    def put(self, result: LLMResult, template_id: str = "", model: str = "") -> None:
        """Store one result now. A failure never replaces a success."""
        ok = int(result.error is None)
        self._db.execute(
            "INSERT INTO results (key, ok, template_id, model, created_at, result) VALUES (?, ?, ?, ?, ?, ?) "
            "ON CONFLICT(key) DO UPDATE SET ok = excluded.ok, template_id = excluded.template_id, "
            "model = excluded.model, created_at = excluded.created_at, result = excluded.result "
            "WHERE results.ok = 0",
            (
                result.key,
                ok,
                template_id,
                model,
                dt.datetime.now(dt.timezone.utc).isoformat(),
                result.model_dump_json(),
            ),
        )

    def counts(self) -> dict[str, int]:
        """Stored results by outcome: {"ok": ..., "failed": ...}."""
        rows = dict(self._db.execute("SELECT ok, COUNT(*) FROM results GROUP BY ok").fetchall())
        return {"ok": rows.get(1, 0), "failed": rows.get(0, 0)}

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> RequestCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
