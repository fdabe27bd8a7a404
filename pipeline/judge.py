"""The AudioBench protocol: an LLM judge rates each answer against the reference, score x 100.

    with RequestCache(out / "cache" / "judge.sqlite") as cache:
        judge = Judge(make_client(LLMConfig()), cache)          # any backend; default the embedded model
        verdicts = judge.rate([JudgeItem(id, question, reference="angry", prediction=text), ...])
    judge_score(verdicts).score                                  # AudioBench's number

The prompt is AudioBench's binary judge (``prompts/judge/binary.v1.md``), asking for JSON
``{"explanation", "rating"}``; the JSON schema is sent as the structured-output constraint
(``JudgeConfig.structured``), and a plain ``Rating: 1`` reply is read too, for servers that
ignore the constraint. Every call goes through the request cache like stage one's: a re-run costs
no request, and an edited judge prompt re-asks only what it changes.

A reply that does not parse, or a request that failed, is a *recorded failure*: its verdict has
``rating=None`` and ``error`` set. AudioBench silently scores such replies 0; here the score is
reported over rated answers, with the failures counted beside it (and a failures-as-wrong score).

The same machinery rates reasoning quality on the paper's 0-2 scales (``prompts/judge/reasoning.v1.md``).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pipeline.llm.base import ChatMessage, LLMClient, LLMRequest, LLMResult, Sampling
from pipeline.llm.config import LLMConfig
from pipeline.prompts import HASH_CHARS, PROMPTS_DIR
from pipeline.records import Record
from pipeline.request_cache import RequestCache, canonical_json, key_prefix, request_key

BINARY_TEMPLATE = "judge/binary.v1"
REASONING_TEMPLATE = "judge/reasoning.v1"
JUDGE_SCHEMA_VERSION = "judge-v1"
SCORE_SCALE = 100  # AudioBench reports the mean binary rating x 100
# Data the judge reads is fenced; a fence tag inside the data is defused so it cannot close it.
FENCES = ("model_answer", "transcript")
_FENCE_IN_DATA = re.compile(r"<(?=\s*/?\s*(?:" + "|".join(FENCES) + r")\b)", re.IGNORECASE)
_DEFUSED = "\u2039"
_PLACEHOLDER = re.compile(r"\{\{\s*(\w+)\s*\}\}")
_SECTION = re.compile(r"^## (system|user)[ \t]*$", re.MULTILINE)
_FIELDS = frozenset({"question", "reference", "prediction", "transcript"})
_RATING_LINE = re.compile(r"\brating\W{0,3}\s*[:=]?\s*\(?\s*([0-9])\b", re.IGNORECASE)
_JSON_OBJECT = re.compile(r"\{.*\}", re.DOTALL)
_KEY = r'"{}"\s*:\s*(true|false|[0-9])\b'  # one verdict field in JSON, complete or cut off later


# The verdict comes first and the explanation is bounded: under the structured-output constraint a
# judge that rambles (small models copy the template's "I think ...") still emits its rating, and
# a reply cut by max_tokens inside the explanation still carries it (read by _KEY below).
EXPLANATION_CHARS = 400


class BinaryAnswer(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rating: Literal[0, 1]
    explanation: str = Field("", max_length=EXPLANATION_CHARS)


class ReasoningAnswer(BaseModel):
    model_config = ConfigDict(extra="forbid")

    quotes: bool
    groundedness: Literal[0, 1, 2]
    relevance: Literal[0, 1, 2]
    explanation: str = Field("", max_length=EXPLANATION_CHARS)


def fence(tag: str, body: str) -> str:
    return f"<{tag}>\n{_FENCE_IN_DATA.sub(_DEFUSED, body)}\n</{tag}>"


@dataclass(frozen=True)
class JudgeTemplate:
    id: str
    hash: str
    system: str
    user: str

    def render(
        self, question: str, reference: str, prediction: str, transcript: str | None = None
    ) -> list[ChatMessage]:
        values = {
            "question": question,
            "reference": reference,
            "prediction": fence("model_answer", prediction),
            "transcript": fence("transcript", transcript or "(no transcript)"),
        }

        def fill(text: str) -> str:
            return _PLACEHOLDER.sub(lambda m: values[m.group(1)], text)

        return [
            ChatMessage(role="system", content=fill(self.system)),
            ChatMessage(role="user", content=fill(self.user)),
        ]


def load_judge_template(template_id: str, root: str | Path | None = None) -> JudgeTemplate:
    """A judge prompt file (front matter, ``## system``, ``## user``); its hash is of the whole file."""
    path = Path(root or PROMPTS_DIR) / f"{template_id}.md"
    if not path.is_file():
        raise FileNotFoundError(f"no judge prompt {template_id!r} at {path}")
    text = path.read_text(encoding="utf-8")
    if not text.startswith("---\n") or "\n---\n" not in text[4:]:
        raise ValueError(f"judge prompt {template_id}: expected front matter between '---' lines")
    head, body = text[4:].split("\n---\n", 1)
    meta = yaml.safe_load(head) or {}
    if f"{meta.get('id')}.v{meta.get('version')}" != template_id:
        raise ValueError(f"judge prompt {template_id}: front matter names {meta.get('id')}.v{meta.get('version')}")
    parts = _SECTION.split(body)
    if len(parts) != 5 or parts[1] != "system" or parts[3] != "user":
        raise ValueError(f"judge prompt {template_id}: expected '## system' then '## user' sections")
    unknown = set(_PLACEHOLDER.findall(parts[2] + parts[4])) - _FIELDS
    if unknown:
        raise ValueError(f"judge prompt {template_id}: unknown placeholders {sorted(unknown)}; known {sorted(_FIELDS)}")
    digest = hashlib.sha256(text.encode()).hexdigest()[:HASH_CHARS]
    return JudgeTemplate(template_id, digest, parts[2].strip("\n"), parts[4].strip("\n"))


class JudgeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    llm: LLMConfig = Field(default_factory=LLMConfig, description="the judge LLM; default the embedded model")
    template: str = BINARY_TEMPLATE
    reasoning_template: str = REASONING_TEMPLATE
    structured: bool = Field(True, description="send the answer's JSON schema as the structured-output constraint")
    # Greedy: a judge should give the same verdict for the same answer.
    sampling: Sampling = Sampling(temperature=0.0, top_p=1.0, max_tokens=200, seed=0)


@dataclass(frozen=True)
class JudgeItem:
    id: str
    question: str
    reference: str
    prediction: str
    transcript: str | None = None


class JudgeVerdict(Record):
    """One judged answer; ``rating`` is None when the judge's reply did not parse or the call failed."""

    item_id: str
    rating: int | None
    quotes: bool | None = None  # reasoning judge only
    groundedness: int | None = None
    relevance: int | None = None
    explanation: str = ""
    raw_text: str = ""
    error: str | None = None
    request_key: str
    template_id: str
    template_hash: str
    backend: str
    model: str


class JudgeScore(BaseModel):
    model_config = ConfigDict(frozen=True)

    n: int
    n_rated: int
    n_failed: int
    score: float | None  # mean rating x 100 over rated answers
    score_failures_as_wrong: float | None  # failures counted as 0, as AudioBench does silently
    success_rate: float


def _fields(text: str, names: Sequence[str]) -> dict[str, str] | None:
    """The verdict fields of a JSON reply cut off after them (e.g. inside the explanation)."""
    found = {n: m.group(1) for n in names if (m := re.search(_KEY.format(n), text))}
    return found if len(found) == len(names) else None


def parse_binary(text: str) -> tuple[BinaryAnswer | None, str | None]:
    """(answer, None) or (None, why it does not parse)."""
    match = _JSON_OBJECT.search(text)
    if match:
        try:
            return BinaryAnswer.model_validate_json(match.group(0)), None
        except ValidationError as err:
            json_error = f"JSON does not fit the verdict schema: {err.errors()[0]['msg']}"
    else:
        json_error = "no JSON object"
    cut = _fields(text, ["rating"])
    ratings = [cut["rating"]] if cut else _RATING_LINE.findall(text)
    if ratings:
        rating = int(ratings[-1]) if ratings[-1].isdigit() else -1
        if rating in (0, 1):
            return BinaryAnswer(rating=rating, explanation=text.strip()[:EXPLANATION_CHARS]), None
        return None, f"rating {ratings[-1]} is not 0 or 1"
    return None, f"unparsed judge reply ({json_error}; no 'Rating: 0/1' line)"


def parse_reasoning(text: str) -> tuple[ReasoningAnswer | None, str | None]:
    match = _JSON_OBJECT.search(text)
    error = "unparsed judge reply (no JSON object)"
    if match:
        try:
            return ReasoningAnswer.model_validate_json(match.group(0)), None
        except ValidationError as err:
            error = f"JSON does not fit the reasoning schema: {err.errors()[0]['msg']}"
    cut = _fields(text, ["quotes", "groundedness", "relevance"])
    if cut is None:
        return None, error
    try:
        return ReasoningAnswer(
            quotes=cut["quotes"] == "true",
            groundedness=int(cut["groundedness"]) if cut["groundedness"].isdigit() else -1,
            relevance=int(cut["relevance"]) if cut["relevance"].isdigit() else -1,
            explanation=text.strip()[:EXPLANATION_CHARS],
        ), None
    except ValidationError as err:
        return None, f"verdict out of range: {err.errors()[0]['msg']}"


class Judge:
    """Rates answers through any LLMClient, every call cached."""

    def __init__(self, client: LLMClient, cache: RequestCache, cfg: JudgeConfig | None = None):
        self.client, self.cache, self.cfg = client, cache, cfg or JudgeConfig()
        self.requests_sent = 0

    def _ask(self, template: JudgeTemplate, schema: type[BaseModel], items: Sequence[JudgeItem]):
        schema_json = schema.model_json_schema() if self.cfg.structured else None
        prefix = key_prefix(
            template_id=template.id,
            template_hash=template.hash,
            backend=self.client.backend,
            model=self.client.model,
            sampling_json=canonical_json(self.cfg.sampling.model_dump()),
            schema_version=JUDGE_SCHEMA_VERSION,
            schema_json=canonical_json(schema_json),
        )
        keyed: dict[str, LLMRequest] = {}
        item_keys = []
        for item in items:
            messages = template.render(item.question, item.reference, item.prediction, item.transcript)
            key = request_key(prefix, messages)
            item_keys.append(key)
            keyed.setdefault(
                key,
                LLMRequest(
                    key=key,
                    messages=messages,
                    json_schema=schema_json,
                    schema_name="verdict",
                    sampling=self.cfg.sampling,
                ),
            )
        results: dict[str, LLMResult] = {k: c.result for k, c in self.cache.get_many(keyed).items()}
        missing = [r for k, r in keyed.items() if k not in results]
        self.requests_sent += len(missing)
        for result in self.client.run(missing):
            self.cache.put(result, template.id, self.client.model)
            results[result.key] = result
        return item_keys, results

    def _verdict(self, item: JudgeItem, key: str, result: LLMResult | None, template: JudgeTemplate, parsed, error):
        return dict(
            item_id=item.id,
            raw_text=result.texts[0] if result is not None and result.texts else "",
            error=error,
            request_key=key,
            template_id=template.id,
            template_hash=template.hash,
            backend=self.client.backend,
            model=self.client.model,
            explanation=parsed.explanation if parsed is not None else "",
        )

    def _reply(self, result: LLMResult | None) -> tuple[str | None, str | None]:
        if result is None:
            return None, "no result came back for this request"
        if result.error is not None:
            return None, f"request failed: {result.error}"
        if not result.texts:
            return None, "empty reply"
        return result.texts[0], None

    def rate(self, items: Sequence[JudgeItem]) -> list[JudgeVerdict]:
        """One binary verdict per item, in item order."""
        template = load_judge_template(self.cfg.template)
        keys, results = self._ask(template, BinaryAnswer, items)
        verdicts = []
        for item, key in zip(items, keys, strict=True):
            text, error = self._reply(results.get(key))
            parsed = None
            if text is not None:
                parsed, error = parse_binary(text)
            fields = self._verdict(item, key, results.get(key), template, parsed, error)
            verdicts.append(JudgeVerdict(rating=parsed.rating if parsed else None, **fields))
        return verdicts

    def rate_reasoning(self, items: Sequence[JudgeItem]) -> list[JudgeVerdict]:
        """Quotation / Groundedness / Relevance verdicts (paper's 0-2 scales) per item."""
        template = load_judge_template(self.cfg.reasoning_template)
        keys, results = self._ask(template, ReasoningAnswer, items)
        verdicts = []
        for item, key in zip(items, keys, strict=True):
            text, error = self._reply(results.get(key))
            parsed = None
            if text is not None:
                parsed, error = parse_reasoning(text)
            fields = self._verdict(item, key, results.get(key), template, parsed, error)
            verdicts.append(
                JudgeVerdict(
                    rating=None,
                    quotes=parsed.quotes if parsed else None,
                    groundedness=parsed.groundedness if parsed else None,
                    relevance=parsed.relevance if parsed else None,
                    **fields,
                )
            )
        return verdicts


def judge_score(verdicts: Iterable[JudgeVerdict]) -> JudgeScore:
    verdicts = list(verdicts)
    rated = [v.rating for v in verdicts if v.rating is not None]
    n = len(verdicts)
    return JudgeScore(
        n=n,
        n_rated=len(rated),
        n_failed=n - len(rated),
        score=SCORE_SCALE * sum(rated) / len(rated) if rated else None,
        score_failures_as_wrong=SCORE_SCALE * sum(rated) / n if n else None,
        success_rate=len(rated) / n if n else 0.0,
    )


def dump_verdicts(verdicts: Sequence[JudgeVerdict]) -> str:
    """JSON lines, for a quick look without pandas."""
    return "\n".join(json.dumps(v.model_dump(mode="json")) for v in verdicts)
