"""What stage one asks: for each (utterance, style) a slot with its rendered prompt, its answer
schema (the style's, or the utterance's own under grounded decoding), its cache key, and the state
of each candidate answer. :mod:`pipeline.generate` sends the slots and writes their rows."""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import BaseModel

from pipeline.evidence_plan import EvidencePlan, plan_evidence
from pipeline.generate_config import GenerateConfig
from pipeline.grounded import (
    FRAMED_SCHEMA_VERSION,
    GROUNDED_SCHEMA_VERSION,
    MAX_QUOTE_WORDS,
    ReasoningFrame,
    grounded_answer_model,
    word_spans,
)
from pipeline.labels import protocol
from pipeline.llm.base import LLMResult, Sampling
from pipeline.prompts import PromptError, RenderedPrompt, Template, load_template
from pipeline.rationale import ANSWER_SCHEMA_VERSION, BlindAnswer, RationaleAnswer
from pipeline.records import AcousticCue, Utterance
from pipeline.relevance import RelevanceTable
from pipeline.request_cache import canonical_json, key_prefix, request_key

ANSWER_MODELS: dict[str, type[BaseModel]] = {"rationale": RationaleAnswer, "blind": BlindAnswer}


class HasCues(Protocol):
    """What stage one needs of an acoustic profile (pipeline.acoustic.AcousticProfile)."""

    cues: list[AcousticCue]


@dataclass
class Style:
    name: str
    template: Template
    answer_model: type[BaseModel]
    schema: dict[str, Any]
    prefix: str
    who: tuple[str, str]  # backend, model: for the keys of grounded schemas
    sampling_json: str


@dataclass
class Candidate:
    text: str = ""
    finish_reason: str = ""  # why the backend stopped this text: "stop", "length" (cut at max_tokens), ...
    answer: BaseModel | None = None
    error: str | None = None
    attempts: int = 0
    result: LLMResult | None = None  # the request whose text is kept
    sampling: Sampling | None = None  # ... and how it was sampled
    received_at: dt.datetime | None = None


@dataclass
class Slot:
    """One (utterance, style): its prompt and answer schema, and one state per candidate."""

    utterance: Utterance
    style: Style
    prompt: RenderedPrompt | None
    key: str = ""
    candidates: list[Candidate] = field(default_factory=list)
    schema: dict[str, Any] | None = None  # the style's, or this utterance's grounded schema
    prefix: str = ""  # cache-key prefix of that schema
    schema_version: str = ANSWER_SCHEMA_VERSION
    error: str | None = None  # "reason: detail" when this utterance cannot fill the template


def _prompt_fields(utt: Utterance, profile: HasCues | None, cfg: GenerateConfig, plan: EvidencePlan | None):
    context = utt.context[-cfg.max_context_turns :] if cfg.max_context_turns else []
    cues = profile.cues if profile is not None else None
    return {
        "dataset": utt.dataset,
        "labels": protocol(utt.label_protocol).names,
        "emotion": utt.emotion,
        "transcript": utt.transcript,
        "context": context,
        "cues": plan.cues if plan is not None and cues is not None else cues,
        "sentence_emotions": len(plan.sentence.emotions) if plan is not None and plan.sentence is not None else 1,
    }


@functools.lru_cache(maxsize=1024)
def sampling_json(sampling: Sampling) -> str:
    """Canonical JSON of sampling parameters (hashed into cache keys, stored in every row)."""
    return canonical_json(sampling.model_dump())


def load_style(name: str, cfg: GenerateConfig, who: tuple[str, str]) -> Style:
    template = load_template(cfg.templates[name], cfg.prompts_dir)
    answer_model = ANSWER_MODELS[template.answer]
    schema = answer_model.model_json_schema()
    prefix = key_prefix(
        template_id=template.id,
        template_hash=template.hash,
        backend=who[0],
        model=who[1],
        sampling_json=sampling_json(cfg.sampling),
        schema_version=ANSWER_SCHEMA_VERSION,
        schema_json=canonical_json(schema),
    )
    return Style(name, template, answer_model, schema, prefix, who, sampling_json(cfg.sampling))


def _grounded_schema(
    style: Style, fields: dict[str, Any], plan: EvidencePlan | None, framed: bool
) -> tuple[dict[str, Any], str, str]:
    """This utterance's grounded answer schema, its cache-key prefix and schema version (see pipeline.grounded)."""
    used = style.template.fields
    label_blind = "emotion" not in used  # the schema must not reveal the label the prompt withholds
    quote_words = "transcript" in used and (plan is None or plan.quote_words)
    transcript = fields["transcript"] if quote_words else None
    cues = fields["cues"] if "cues" in used else None
    emotion = getattr(fields["emotion"], "value", fields["emotion"])
    frame = None
    if framed and not label_blind:
        # The reasoning opens with what the evidence offers: the cues, else the quotable words, in
        # curly quotes (xgrammar writes a pattern's ASCII '"' unescaped, which breaks the JSON).
        openers = [c.phrase for c in cues or []]
        if not openers and transcript:
            openers = [f"saying “{span}”" for span in word_spans(transcript, MAX_QUOTE_WORDS)]
        if not openers:
            openers = [f"the earlier words “{s}”" for turn in fields["context"] for s in word_spans(turn.text)]
        frame = ReasoningFrame(cues=tuple(dict.fromkeys(openers)), emotion=emotion) if openers else None
    model = grounded_answer_model(
        transcript=transcript,
        cues=cues,
        context=fields["context"] if "context" in used else (),
        emotions=fields["labels"] if label_blind else [emotion],
        frame=frame,
    )
    schema = model.model_json_schema()
    version = FRAMED_SCHEMA_VERSION if frame is not None else GROUNDED_SCHEMA_VERSION
    prefix = key_prefix(
        template_id=style.template.id,
        template_hash=style.template.hash,
        backend=style.who[0],
        model=style.who[1],
        sampling_json=style.sampling_json,
        schema_version=version,
        schema_json=canonical_json(schema),
    )
    return schema, prefix, version


def render_slots(
    utts: Sequence[Utterance],
    profiles: dict[str, HasCues] | None,
    styles: Sequence[Style],
    cfg: GenerateConfig,
    grounded: bool,
    framed: bool = False,
    relevance: RelevanceTable | None = None,
) -> list[Slot]:
    slots = []
    n = cfg.sampling.n
    for utt in utts:
        profile = profiles.get(utt.id) if profiles is not None else None
        for style in styles:
            slot = _render_one(style, utt, profile, cfg, grounded, framed, relevance)
            slot.candidates = [Candidate(error=slot.error) for _ in range(n)]
            if slot.prompt is not None:
                slot.key = request_key(slot.prefix, slot.prompt.messages)
            slots.append(slot)
    return slots


def _render_one(
    style: Style,
    utt: Utterance,
    profile: HasCues | None,
    cfg: GenerateConfig,
    grounded: bool,
    framed: bool,
    relevance: RelevanceTable | None,
) -> Slot:
    """A slot with its prompt and schema, or with ``error`` when the utterance cannot fill the template."""
    try:
        # Only a prompt given the gold label is planned: a label-blind one must not learn it from the offer.
        plan = None
        if relevance is not None and "emotion" in style.template.fields:
            plan = plan_evidence(utt, profile.cues if profile is not None else None, relevance, cfg.evidence_plan)
            if plan.empty:
                return Slot(utt, style, None, error=f"no_supporting_evidence: {plan.why_empty(utt.emotion.value)}")
        fields = _prompt_fields(utt, profile, cfg, plan)
        prompt = style.template.render(**fields)
        if not grounded:
            return Slot(utt, style, prompt, schema=style.schema, prefix=style.prefix)
        schema, prefix, version = _grounded_schema(style, fields, plan, framed)
        return Slot(utt, style, prompt, schema=schema, prefix=prefix, schema_version=version)
    except PromptError as exc:  # missing transcript, profile, ...: the reason leads the message
        return Slot(utt, style, None, error=str(exc))
    except ValueError as exc:  # an unknown label protocol, nothing a grounded answer could cite
        return Slot(utt, style, None, error=f"invalid_input: {exc}")
