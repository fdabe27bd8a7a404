"""The LLM judge's Relevance of stage-one rationales, for stage two's optional ``judge`` check.

    judged = judge_relevance(records, JudgeConfig(llm=...), out / "cache" / "judge.sqlite")

Each parsed candidate is rendered as the training target would say it
(:func:`pipeline.corpora.render_rationale`) and rated by the reasoning judge of ``emoreason eval``
(:class:`pipeline.judge.Judge`, prompts/judge/reasoning.v1.md) against its gold label and
transcript. Every request goes through the request cache, so a re-verification costs nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from pipeline.checks.base import JudgedRelevance
from pipeline.corpora import render_rationale
from pipeline.judge import Judge, JudgeConfig, JudgeItem
from pipeline.llm.base import LLMClient
from pipeline.llm.config import make_client
from pipeline.records import GenerationRecord
from pipeline.request_cache import RequestCache

QUESTION = "Why does the speaker express this emotion? Cite the evidence."


def judge_relevance(
    records: Iterable[GenerationRecord],
    cfg: JudgeConfig,
    cache_path: str | Path,
    client: LLMClient | None = None,
    skip_style: str = "blind",
) -> dict[str, JudgedRelevance]:
    """record id -> the judge's Relevance, for every record with a parsed answer."""
    items = [
        JudgeItem(r.id, QUESTION, r.emotion.value, render_rationale(r.answer, r.emotion.value, r.style), r.transcript)
        for r in records
        if r.answer is not None and r.style != skip_style
    ]
    if not items:
        return {}
    own = client is None
    client = client or make_client(cfg.llm)
    try:
        with RequestCache(cache_path) as cache:
            verdicts = Judge(client, cache, cfg).rate_reasoning(items)
    finally:
        if own:
            client.close()
    return {v.item_id: JudgedRelevance(v.relevance, v.explanation, v.error) for v in verdicts}
