"""Quote grounding: every transcript quote of the rationale occurs in the transcript.

Every ``lexical`` evidence item's cue must occur in the utterance's transcript, compared as
word content with a small fuzzy tolerance for typos (see :mod:`pipeline.checks.text`); an
ellipsis may join two parts of the turn. A fabricated quote fails, naming it. Quoted spans of
``MIN_REASONING_QUOTE_WORDS`` or more words inside the reasoning must also occur in the
transcript, a previous turn or one of the evidence cues: a rationale cannot invent a quote in
its prose either. Not applicable when the rationale quotes nothing.
"""

from __future__ import annotations

import re
from enum import StrEnum

from pipeline.checks.base import CheckInput, clip, failed, not_applicable, passed
from pipeline.checks.text import NormText, normalise
from pipeline.rationale import EvidenceKind
from pipeline.records import GenerationRecord
from pipeline.verdict import CheckName, CheckResult, CommonCode

NAME = CheckName.quote_grounding
MIN_REASONING_QUOTE_WORDS = 3  # shorter quoted phrases are often labels or cue names, not quotes
_REASONING_QUOTE = re.compile(r'["“]([^"”\n]{1,400})["”]')


class Code(StrEnum):
    no_quote = "no_quote"  # n/a: the rationale quotes nothing
    no_transcript = "no_transcript"  # lexical evidence for an utterance without a transcript
    not_in_transcript = "not_in_transcript"  # a quote that the transcript (or dialogue) does not hold


def _reasoning_quotes(reasoning: str) -> list[str]:
    if '"' not in reasoning and "“" not in reasoning:
        return []
    return [q for q in _REASONING_QUOTE.findall(reasoning) if len(q.split()) >= MIN_REASONING_QUOTE_WORDS]


def check_quotes(record: GenerationRecord, evidence: CheckInput) -> CheckResult:
    answer = record.answer
    if answer is None:
        return not_applicable(NAME, CommonCode.no_answer, "no answer")
    lexical = [e.cue for e in answer.evidence if e.kind == EvidenceKind.lexical]
    prose = _reasoning_quotes(answer.reasoning)
    if not lexical and not prose:
        return not_applicable(NAME, Code.no_quote, "no transcript quote")
    transcript = evidence.transcript
    if lexical and transcript is None:
        return failed(NAME, Code.no_transcript, "lexical evidence but the utterance has no transcript")
    similarity = evidence.settings.quote_similarity
    missing = [cue for cue in lexical if not transcript.contains(cue, similarity)]
    if prose:
        cues = NormText.of(" | ".join(e.cue for e in answer.evidence))
        sources = [t for t in (transcript, cues, *(turn for _, _, turn in evidence.context)) if t is not None]
        missing += [q for q in prose if normalise(q) and not any(source.contains(q, similarity) for source in sources)]
    if missing:
        return failed(NAME, Code.not_in_transcript, "not in transcript: " + "; ".join(repr(clip(q)) for q in missing))
    return passed(NAME)
