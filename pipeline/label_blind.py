"""The label-blind answer of an utterance: what the teacher concludes without being told the label.

Stage one can ask the teacher, without the gold label, which emotion an utterance shows (the
``blind`` style); stage two's self-consistency check compares that answer with the gold label.
Both ``emoreason data`` (which asks for the answers itself) and ``emoreason verify`` (which reads
them from a parquet) take the answer from here: the majority of the utterance's parsed candidates,
as written, stripped and lowercased (a tie goes to the earliest candidate). The word is the
teacher's own: the check reads it through the label protocol (pipeline.checks.blind).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from pipeline.records import GenerationRecord

BLIND_STYLE = "blind"  # stage one's label-blind style: its rows are inputs of stage two, not rationales


def label_blind_answers(records: Iterable[GenerationRecord], style: str = BLIND_STYLE) -> dict[str, str]:
    """Label-blind emotion word per utterance, from the stage-one rows of ``style`` (see module doc)."""
    votes: dict[str, Counter[str]] = {}
    for record in records:
        if record.style == style and record.answer is not None:
            votes.setdefault(record.utterance_id, Counter())[record.answer.emotion.strip().lower()] += 1
    return {uid: counter.most_common(1)[0][0] for uid, counter in votes.items()}
