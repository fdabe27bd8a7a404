"""Stage one: a teacher LLM writes a rationale for each utterance, with provenance in every row.

    run = generate(utterances, profiles, GenerateConfig(), out_dir)   # -> out_dir/generations.parquet
    blind = generate_blind(utterances, profiles, GenerateConfig(), out_dir)  # {utterance id: emotion word}

For every (utterance, style) one request asks for ``sampling.n`` candidates. Answers go into the
request cache (:mod:`pipeline.request_cache`) the moment they arrive, so the cache is the run's
resumable store: a killed run loses only its in-flight requests, a finished one re-run sends none,
and an edited prompt re-asks only the requests rendered from it. The parquet is written once, at
the end, atomically.

A candidate that does not parse as the answer schema is asked again alone (``n = 1``, its own seed,
a new attempt key) up to ``max_parse_retries`` times, in rounds after the main pass; after that its
raw text is kept in a row with ``error = "invalid_answer: ..."``. Every (utterance, style,
candidate) ends as exactly one row: an answer, or an error whose prefix before ':' is its reason
(``missing_transcript``, ``missing_profile``, ``request_failed``, ``invalid_answer``, ...). The
rows with errors are also written as :class:`pipeline.records.Reject` rows for the audit.

With grounded decoding (``cfg.grounded``, on by default) each utterance's request
carries its own answer schema (:mod:`pipeline.grounded`), keyed into the cache like any schema, and
its rows record ``schema_version = "rationale-v1+grounded-v3"`` (``...+framed`` when the reasoning
is framed, ``cfg.framed``). Given the run's relevance table, the evidence plan
(:mod:`pipeline.evidence_plan`, ``cfg.evidence_plan``) decides which cues and whether transcript
words each prompt and schema offer; an utterance with nothing that supports its label gets no
request and rows with ``error = "no_supporting_evidence: ..."``.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
from pydantic import BaseModel, ValidationError
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from pipeline.generate_config import GenerateConfig
from pipeline.generate_slots import HasCues, Slot, Style, load_style, render_slots, sampling_json
from pipeline.label_blind import BLIND_STYLE, label_blind_answers
from pipeline.llm.base import LLMClient, LLMRequest, LLMResult, Sampling
from pipeline.llm.config import LLMConfig, make_client
from pipeline.parquet import arrow_schema, write_records, write_table_atomic
from pipeline.rationale import RationaleAnswer
from pipeline.records import GenerationRecord, Reject, Utterance
from pipeline.relevance import RelevanceTable
from pipeline.request_cache import Cached, RequestCache, request_key

log = logging.getLogger(__name__)

# Retries of an unparseable answer must sample something new: greedy decoding would repeat itself.
RETRY_MIN_TEMPERATURE = 0.7
SEED_STRIDE = 1009  # retry seed = seed + attempt * stride + candidate: distinct for n < stride
ERROR_DETAIL_CHARS = 500  # how much of a validation error to keep in a row
REQUEST_FAILED = "request_failed"  # the error prefix of a candidate whose request got no answer


@dataclass
class GenerateRun:
    records: list[GenerationRecord]
    path: Path
    rejects_path: Path
    requests_sent: int = 0
    cache_hits: int = 0
    elapsed_s: float = 0.0
    reasons: Counter = field(default_factory=Counter)
    requests: int = 0  # distinct requests of the main pass (identical prompts share one)

    @property
    def answers(self) -> int:
        return sum(r.answer is not None for r in self.records)

    def failed_requests(self) -> Counter[str]:
        """Requests that got no answer (after the backend's retries), counted once each by why.

        These are the failures a rerun repairs: the request cache does not keep them, so the next
        run asks exactly these again. Answers that do not parse are the teacher's, not failures.
        """
        why: dict[str, str] = {}
        for r in self.records:
            if r.error and r.error.startswith(f"{REQUEST_FAILED}:"):
                why.setdefault(r.request_key or r.id, r.error.split(":")[1].strip())
        return Counter(why.values())

    def summary(self) -> str:
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(self.reasons.items())) or "none"
        return (
            f"{len(self.records)} candidates: {self.answers} answers; errors: {reasons}; "
            f"{self.requests_sent} requests sent, {self.cache_hits} answered from the cache, {self.elapsed_s:.1f} s"
        )


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _parse(text: str, style: Style) -> tuple[BaseModel | None, str | None]:
    try:
        return style.answer_model.model_validate_json(text), None
    except ValidationError as exc:
        detail = " ".join(str(exc).split())[:ERROR_DETAIL_CHARS]
        return None, f"invalid_answer: {detail}"


def _retry_sampling(base: Sampling, attempt: int, candidate: int) -> Sampling:
    seed = None if base.seed is None else base.seed + attempt * SEED_STRIDE + candidate
    return base.model_copy(update={"n": 1, "seed": seed, "temperature": max(base.temperature, RETRY_MIN_TEMPERATURE)})


class _Progress:
    """Stage one's progress: requests answered, tokens written, and an ETA from the token rate.

    An in-process backend answers a batch of requests at once, minutes apart on a CPU: a bar of
    requests alone sits still, then jumps, and its rate extrapolates from whichever answer came
    first. So the bar also counts tokens as they are written (``on_tokens``) or arrive with their
    answers, and the ETA is the tokens still expected (the answers' mean length so far; before
    the first answer, the ``max_tokens`` bound) over the token rate since the start.
    """

    REFRESH_S = 0.5

    def __init__(self, total: int, desc: str, enabled: bool, tokens_per_request_bound: int):
        self.bar = tqdm(
            total=total,
            desc=desc,
            disable=not enabled,
            mininterval=self.REFRESH_S,
            bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} requests [{elapsed}{postfix}]",
        )
        self.bound = tokens_per_request_bound
        self.start = time.perf_counter()
        self.written = 0  # reported while being written
        self.answered = 0  # completion tokens of the answers so far
        self.shown = 0.0
        self.extra = ""

    def tokens(self, count: int) -> None:
        self.written += count
        self._show()

    def done(self, result: LLMResult, failures: int, invalid: int) -> None:
        self.answered += result.completion_tokens
        if failures or invalid:
            self.extra = f", failed {failures}, unparsable {invalid}"
        self.bar.update()
        self._show()

    def eta(self, now: float) -> str:
        tokens = max(self.written, self.answered)
        rate = tokens / max(now - self.start, 1e-9)
        done = self.bar.n
        per_request = self.answered / done if done else self.bound
        left = max(0.0, per_request * self.bar.total - tokens)
        return f"{tokens:,} tokens, {rate:.1f}/s, ETA {tqdm.format_interval(left / rate) if rate > 0 else '?'}"

    def _show(self, force: bool = False) -> None:
        now = time.perf_counter()
        if self.bar.disable or (not force and now - self.shown < self.REFRESH_S):
            return
        self.shown = now
        self.bar.set_postfix_str(f"{self.eta(now)}{self.extra}", refresh=True)

    def __enter__(self) -> _Progress:
        # A backend's warnings (e.g. an overloaded server) print above the bar, not into it.
        self._logging = logging_redirect_tqdm()
        self._logging.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._show(force=True)
        self.bar.close()
        self._logging.__exit__(*exc)


class _Runner:
    """Asks the client for what the cache lacks and stores each answer as it arrives."""

    def __init__(self, client: LLMClient | None, cfg: LLMConfig, cache: RequestCache, progress: bool):
        self._client, self.cfg, self.cache, self.progress = client, cfg, cache, progress
        self.own_client = client is None
        self.sent = self.hits = 0

    @property
    def client(self) -> LLMClient:
        # Built on first use: a re-run answered from the cache never loads an in-process model.
        if self._client is None:
            self._client = make_client(self.cfg)
        return self._client

    def close(self) -> None:
        if self.own_client and self._client is not None:
            self._client.close()

    def resolve(self, requests: dict[str, tuple[LLMRequest, Style]], desc: str) -> dict[str, Cached]:
        """key -> (result, when it was answered), for requests given as key -> (request, style)."""
        found = self.cache.get_many(requests)
        self.hits += len(found)
        missing = [req for key, (req, _) in requests.items() if key not in found]
        if not missing:
            return found
        failures = invalid = 0
        bound = max(req.sampling.max_tokens * req.sampling.n for req in missing)
        with _Progress(len(missing), desc, self.progress, bound) as progress:
            for result in self.client.run(iter(missing), on_tokens=progress.tokens):
                if result.key not in requests or result.key in found:
                    raise RuntimeError(
                        f"backend {self.client.backend} returned an unknown or repeated key {result.key}"
                    )
                style = requests[result.key][1]
                self.cache.put(result, style.template.id, self.client.model)
                found[result.key] = Cached(result, _now())
                self.sent += 1
                # For the progress bar only (~4 us a text): the candidates are parsed for real later.
                bad = sum(_parse(text, style)[0] is None for text in result.texts)
                failures, invalid = failures + (result.error is not None), invalid + bad
                progress.done(result, failures, invalid)
        lost = [key for key in requests if key not in found]
        for key in lost:  # a backend that breaks the one-result-per-request contract loses nothing here
            found[key] = Cached(LLMResult(key=key, error="no result from the backend"), _now())
        return found


def generate(
    utterances: Iterable[Utterance],
    profiles: dict[str, HasCues] | None,
    cfg: GenerateConfig,
    out_dir: str | Path,
    client: LLMClient | None = None,
    relevance: RelevanceTable | None = None,
) -> GenerateRun:
    """Run stage one; write ``out_dir/<cfg.output>`` and ``out_dir/<cfg.rejects_output>``.

    ``profiles`` maps utterance id to its acoustic profile (only ``.cues`` is read); None when
    the dataset has no audio. ``client`` defaults to ``make_client(cfg.llm)``, built only when
    some request is not in the cache (and closed at the end). ``relevance`` is the run's
    relevance table: with it, ``cfg.evidence_plan`` decides which evidence each prompt offers.
    """
    start = time.perf_counter()
    out_dir = Path(out_dir)
    utts = list(utterances)[: cfg.limit]
    _check_unique(utts)
    # Who answers, for keys and provenance: the given client, else the configured backend and model
    # (every backend reports cfg.model as its model), without building it yet.
    who = (client.backend, client.model) if client is not None else (cfg.llm.backend, cfg.llm.model)
    cache = RequestCache(cfg.cache_path or out_dir / "cache" / "requests.sqlite")
    runner = _Runner(client, cfg.llm, cache, cfg.progress)
    try:
        styles = [load_style(s, cfg, who) for s in cfg.resolved_styles(profiles is not None)]
        framed = cfg.grounded and cfg.resolved_framed(who[1])
        slots = render_slots(utts, profiles, styles, cfg, grounded=cfg.grounded, framed=framed, relevance=relevance)
        requests = _ask(slots, cfg, runner)
        for attempt in range(1, cfg.max_parse_retries + 1):
            if not _retry(slots, cfg, runner, attempt):
                break
        records = [rec for slot in slots for rec in _records(slot, cfg, who)]
    finally:
        cache.close()
        runner.close()
    run = GenerateRun(
        records,
        _write_generations(records, out_dir / cfg.output),
        out_dir / cfg.rejects_output,
        runner.sent,
        runner.hits,
        reasons=Counter(r.error.split(":", 1)[0] for r in records if r.error),
        requests=requests,
    )
    rejects = [
        Reject(
            stage="generate",
            record_id=r.id,
            dataset=r.dataset,
            reason=r.error.split(":", 1)[0],
            detail=r.error,
            source=r.utterance_id,
        )
        for r in records
        if r.error
    ]
    write_records(rejects, run.rejects_path, Reject)
    run.elapsed_s = time.perf_counter() - start
    log.info("generate: %s", run.summary())
    return run


def generate_blind(
    utterances: Iterable[Utterance],
    profiles: dict[str, HasCues] | None,
    cfg: GenerateConfig,
    out_dir: str | Path,
    client: LLMClient | None = None,
) -> dict[str, str]:
    """Label-blind answers for stage two's self-consistency check: utterance id -> emotion word.

    Runs :func:`generate` with the single style ``blind`` (the teacher sees the same transcript,
    context and acoustic cues as the ``acoustic`` style, but not the gold label) and writes its
    rows to ``out_dir/blind.parquet`` (rejects to ``blind_rejects.parquet``), sharing the request
    cache. The answer per utterance is :func:`pipeline.label_blind.label_blind_answers` of its
    candidates, as ``emoreason verify`` reads it; utterances with no parsed candidate are absent
    from the result (their reasons are in the rejects). The word is the teacher's own: read it
    with ``pipeline.labels.emotion_from_word(word, protocol)``.
    """
    blind_cfg = cfg.model_copy(
        update={"styles": [BLIND_STYLE], "output": "blind.parquet", "rejects_output": "blind_rejects.parquet"}
    )
    run = generate(utterances, profiles, blind_cfg, out_dir, client)
    return label_blind_answers(run.records, BLIND_STYLE)


def _write_generations(records: list[GenerationRecord], path: Path) -> Path:
    """``pipeline.parquet.write_records``, through pydantic's compiled ``model_dump``.

    The generic writer walks each record in Python (~0.2 ms per row on the dev VM, an eighth of
    the stage's per-request budget); ``model_dump`` gives the same Arrow values (enums are str
    subclasses, the nested answer a dict) at ~0.02 ms. Same schema, same atomic write.
    """
    table = pa.Table.from_pylist([r.model_dump() for r in records], schema=arrow_schema(GenerationRecord))
    return write_table_atomic(table, path)


def _check_unique(utts: Sequence[Utterance]) -> None:
    seen = Counter(u.id for u in utts)
    repeated = [i for i, count in seen.items() if count > 1]
    if repeated:
        raise ValueError(f"{len(repeated)} utterance id(s) occur more than once, e.g. {repeated[:3]}")


def _ask(slots: list[Slot], cfg: GenerateConfig, runner: _Runner) -> int:
    """The main pass: one request per distinct prompt, all candidates at once; how many requests."""
    requests: dict[str, tuple[LLMRequest, Style]] = {}
    for slot in slots:
        if slot.prompt is not None and slot.key not in requests:
            # Identical prompts (same words, context, label and cues) share one request and its answer.
            req = LLMRequest(
                key=slot.key, messages=slot.prompt.messages, json_schema=slot.schema, sampling=cfg.sampling
            )
            requests[slot.key] = (req, slot.style)
    results = runner.resolve(requests, "generate")
    for slot in slots:
        if slot.prompt is None:
            continue
        result, received = results[slot.key]
        for i, cand in enumerate(slot.candidates):
            cand.attempts, cand.result, cand.received_at = result.attempts, result, received
            cand.sampling = cfg.sampling
            if result.error is not None:
                cand.error = f"{REQUEST_FAILED}: {result.error}"
            elif i >= len(result.texts):
                cand.error = f"{REQUEST_FAILED}: asked for {cfg.sampling.n} candidates, got {len(result.texts)}"
            else:
                cand.text = result.texts[i]
                cand.finish_reason = result.finish_reasons[i] if i < len(result.finish_reasons) else ""
                cand.answer, cand.error = _parse(cand.text, slot.style)
    return len(requests)


def _retry(slots: list[Slot], cfg: GenerateConfig, runner: _Runner, attempt: int) -> bool:
    """Re-ask every candidate that still does not parse; False when there was none."""
    pending: list[tuple[Slot, int, str]] = []
    requests: dict[str, tuple[LLMRequest, Style]] = {}
    # Candidate-major order: requests sharing sampling (the seed depends on the candidate) come
    # together, so an in-process backend batches them in one generate() call.
    for i in range(cfg.sampling.n):
        for slot in slots:
            cand = slot.candidates[i]
            if cand.error is None or not cand.error.startswith("invalid_answer"):
                continue
            key = request_key(slot.prefix, slot.prompt.messages, attempt=f"retry:{attempt}:{i}")
            pending.append((slot, i, key))
            if key not in requests:
                sampling = _retry_sampling(cfg.sampling, attempt, i)
                req = LLMRequest(key=key, messages=slot.prompt.messages, json_schema=slot.schema, sampling=sampling)
                requests[key] = (req, slot.style)
    if not pending:
        return False
    results = runner.resolve(requests, f"retry {attempt}")
    for slot, i, key in pending:
        result, received = results[key]
        cand = slot.candidates[i]
        cand.attempts += result.attempts
        if result.error is not None or not result.texts:
            continue  # the retry itself failed: keep the earlier unparseable text and its error
        cand.text, cand.result, cand.received_at = result.texts[0], result, received
        cand.finish_reason = result.finish_reasons[0] if result.finish_reasons else ""
        cand.sampling = requests[key][0].sampling
        cand.answer, cand.error = _parse(cand.text, slot.style)
    return True


def _records(slot: Slot, cfg: GenerateConfig, who: tuple[str, str]) -> Iterator[GenerationRecord]:
    utt, style = slot.utterance, slot.style
    for i, cand in enumerate(slot.candidates):
        result = cand.result
        answer = cand.answer
        if answer is not None and not isinstance(answer, RationaleAnswer):
            answer = RationaleAnswer.model_validate(answer.model_dump())  # blind answers share the shape
        yield GenerationRecord(
            id=f"{utt.id}#{style.name}#{i}",
            utterance_id=utt.id,
            dataset=utt.dataset,
            split=utt.split,
            speaker=utt.speaker,
            emotion=utt.emotion,
            label_protocol=utt.label_protocol,
            transcript=utt.transcript,
            style=style.name,
            candidate=i,
            backend=who[0],
            model=who[1],
            template_id=style.template.id,
            template_hash=style.template.hash,
            sampling=sampling_json(cand.sampling or cfg.sampling),
            schema_version=slot.schema_version,
            request_key=result.key if result is not None else "",
            attempts=cand.attempts,
            prompt_tokens=result.prompt_tokens if result is not None else 0,
            completion_tokens=result.completion_tokens if result is not None else 0,
            latency_s=result.latency_s if result is not None else 0.0,
            created_at=cand.received_at or _now(),
            raw_text=cand.text,
            finish_reason=cand.finish_reason,
            answer=answer,
            error=cand.error,
        )
