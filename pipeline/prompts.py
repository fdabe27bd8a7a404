"""Prompt templates: versioned files under ``prompts/``, rendered into chat messages with their hash.

A template is one Markdown file, ``prompts/<group>/<name>.v<version>.md``, whose id is the path
without the suffix (``rationale/elaborate.v1``)::

    ---
    id: rationale/elaborate        # must match the file name
    version: 1
    answer: rationale              # the answer schema: rationale (RationaleAnswer) or blind (BlindAnswer)
    optional: [cues]               # fields rendered as "not measured" instead of failing when absent
    description: ...
    ---
    ## system
    ...
    ## user
    ... {{transcript}} ...

The hash is the sha256 of the whole file, so any edit (even to the description) is a new prompt
and re-asks only the requests rendered from it.

Everything that comes from a recording (transcript, earlier turns, speaker names) is fenced as
data: the renderer, not the template, writes the ``<transcript>`` / ``<context>`` /
``<acoustic_cues>`` fences, and any fence tag inside the data is defused (its ``<`` becomes ``‹``),
so a transcript cannot close its fence and talk to the teacher from outside it. The templates
tell the teacher that nothing inside a fence is an instruction; stage two still checks that the
concluded emotion equals the gold label, which is what an injection would have to change.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from pipeline.llm.base import ChatMessage
from pipeline.records import AcousticCue, ContextTurn

PROMPTS_DIR = Path(__file__).resolve().parents[1] / "prompts"
HASH_CHARS = 16  # 64 bits of sha256: no collision among a project's prompt versions
ANSWER_KINDS = ("rationale", "blind")

# Placeholders a template may use, and the fences the renderer writes around data.
FIELDS = ("dataset", "labels", "emotion", "transcript", "context", "cues", "words")
FENCE_TAGS = ("transcript", "context", "acoustic_cues")
_PLACEHOLDER = re.compile(r"\{\{\s*(\w+)\s*\}\}")
# A fence tag in the data, opening or closing, with any spacing or case: "</ Transcript", "<context".
_FENCE_IN_DATA = re.compile(r"<(?=\s*/?\s*(?:" + "|".join(FENCE_TAGS) + r")\b)", re.IGNORECASE)
_DEFUSED = "\u2039"  # single left-pointing angle quotation mark: reads like "<", is not one

NO_CONTEXT = "(none: this is the first turn of the dialogue)"
NO_CUES = "(none: every measure was typical for this speaker)"
NOT_MEASURED = "(not measured: no audio for this utterance)"
# {{words}}: whether the transcript's words are evidence (stage one's evidence plan decides).
WORDS_ARE_EVIDENCE = "The words may be quoted as evidence."
WORDS_ARE_NOT_EVIDENCE = (
    "This sentence is spoken with {n} different emotions in this dataset, so its words are no evidence: "
    "explain the emotion from the voice."
)


class PromptError(ValueError):
    """A template that cannot be rendered for one utterance; ``reason`` is short and groupable."""

    def __init__(self, reason: str, detail: str):
        self.reason = reason
        super().__init__(f"{reason}: {detail}")


@dataclass(frozen=True)
class RenderedPrompt:
    template_id: str
    template_hash: str
    messages: list[ChatMessage]


def defuse(text: str) -> str:
    """Neutralise fence tags inside data so that the data cannot end its own fence."""
    return _FENCE_IN_DATA.sub(_DEFUSED, text)


def fence(tag: str, body: str) -> str:
    return f"<{tag}>\n{defuse(body)}\n</{tag}>"


def _one_line(text: str) -> str:
    # Each context turn is one line, so a turn cannot pose as another speaker's turn.
    return " ".join(text.split())


def format_context(turns: Sequence[ContextTurn]) -> str:
    body = "\n".join(f"{_one_line(t.speaker)}: {_one_line(t.text)}" for t in turns) if turns else NO_CONTEXT
    return fence("context", body)


def format_cues(cues: Sequence[AcousticCue] | None) -> str:
    if cues is None:
        return fence("acoustic_cues", NOT_MEASURED)
    body = "\n".join(f"- {c.measure.value.replace('_', ' ')}: {c.phrase}" for c in cues) if cues else NO_CUES
    return fence("acoustic_cues", body)


@dataclass(frozen=True)
class Template:
    id: str
    hash: str
    answer: str
    system: str
    user: str
    fields: frozenset[str]
    optional: frozenset[str]
    description: str = ""

    def render(
        self,
        *,
        dataset: str = "",
        labels: Sequence[str] = (),
        emotion: str | None = None,
        transcript: str | None = None,
        context: Sequence[ContextTurn] = (),
        cues: Sequence[AcousticCue] | None = None,
        sentence_emotions: int = 1,
    ) -> RenderedPrompt:
        """Chat messages for one utterance; raises PromptError when a field the template uses is missing.

        ``sentence_emotions``: how many emotions the corpus speaks the transcript with (the
        evidence plan's count; at 2 or more ``{{words}}`` says the words are no evidence)."""
        values: dict[str, str] = {
            "dataset": dataset,
            "labels": ", ".join(labels),
            "context": format_context(context),
            "words": WORDS_ARE_EVIDENCE
            if sentence_emotions < 2
            else WORDS_ARE_NOT_EVIDENCE.format(n=sentence_emotions),
        }
        if "transcript" in self.fields:
            if transcript is None or not transcript.strip():
                raise PromptError("missing_transcript", f"{self.id} quotes the transcript; the utterance has none")
            values["transcript"] = fence("transcript", transcript)
        if "emotion" in self.fields:
            if emotion is None:
                raise PromptError("missing_emotion", f"{self.id} needs the gold emotion")
            values["emotion"] = getattr(emotion, "value", emotion)
        if "cues" in self.fields:
            if cues is None and "cues" not in self.optional:
                raise PromptError("missing_profile", f"{self.id} cites acoustic cues; the utterance has no profile")
            values["cues"] = format_cues(cues)

        def fill(text: str) -> str:
            return _PLACEHOLDER.sub(lambda m: values[m.group(1)], text)

        return RenderedPrompt(
            self.id,
            self.hash,
            [ChatMessage(role="system", content=fill(self.system)), ChatMessage(role="user", content=fill(self.user))],
        )


_SECTION = re.compile(r"^## (system|user)[ \t]*$", re.MULTILINE)


def parse_template(template_id: str, text: str) -> Template:
    """Parse a template file's text; every structural mistake is an error naming the template."""
    if not text.startswith("---\n") or "\n---\n" not in text[4:]:
        raise ValueError(f"prompt {template_id}: expected front matter between '---' lines")
    head, body = text[4:].split("\n---\n", 1)
    meta = yaml.safe_load(head) or {}
    expected = f"{meta.get('id')}.v{meta.get('version')}"
    if expected != template_id:
        raise ValueError(f"prompt {template_id}: front matter says {expected!r}; rename the file or fix id/version")
    if meta.get("answer") not in ANSWER_KINDS:
        raise ValueError(f"prompt {template_id}: answer must be one of {ANSWER_KINDS}, not {meta.get('answer')!r}")
    parts = _SECTION.split(body)
    # parts = [preamble, "system", text, "user", text]
    if len(parts) != 5 or parts[1] != "system" or parts[3] != "user" or parts[0].strip():
        raise ValueError(f"prompt {template_id}: expected exactly '## system' then '## user' sections")
    system, user = parts[2].strip("\n"), parts[4].strip("\n")
    used = set(_PLACEHOLDER.findall(system) + _PLACEHOLDER.findall(user))
    unknown = used - set(FIELDS)
    if unknown:
        raise ValueError(f"prompt {template_id}: unknown placeholder(s) {sorted(unknown)}; known: {FIELDS}")
    optional = frozenset(meta.get("optional") or ())
    return Template(
        id=template_id,
        hash=hashlib.sha256(text.encode()).hexdigest()[:HASH_CHARS],
        answer=meta["answer"],
        system=system,
        user=user,
        fields=frozenset(used),
        optional=optional,
        description=str(meta.get("description", "")).strip(),
    )


def load_template(template_id: str, root: str | Path | None = None) -> Template:
    root = Path(root or PROMPTS_DIR)
    path = root / f"{template_id}.md"
    if not path.is_file():
        available = sorted(p.relative_to(root).with_suffix("").as_posix() for p in root.rglob("*.md"))
        raise FileNotFoundError(f"no prompt template {template_id!r} at {path}; available: {available}")
    return parse_template(template_id, path.read_text(encoding="utf-8"))


def render(template_id: str, root: str | Path | None = None, **fields) -> RenderedPrompt:
    """Render one template: ``render("rationale/elaborate.v1", transcript=..., emotion=..., labels=...)``."""
    return load_template(template_id, root).render(**fields)
