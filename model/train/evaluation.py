"""Evaluation during training: loss per task on the held-out split, and emotion accuracy read from
generated answers.

``answer_emotion`` is the one place that turns generated text into a label; it uses the
evaluation package's extraction (model.eval.extract), so training-time and final accuracy agree.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch.utils.data import DataLoader

from model.eval.extract import extract_label
from model.train.data import CorpusDataset, eval_batches, length_key
from model.train.distributed import DistEnv
from pipeline.labels import Emotion
from pipeline.records import Task, TrainingExample

# Tasks whose target ends in an emotion label, so accuracy can be read from generated text.
EMOTION_ANSWER_TASKS = (Task.emotion_recognition, Task.emotion_reasoning)


def answer_emotion(text: str, label_protocol: str | None) -> Emotion | None:
    """The emotion a generated answer concludes with, by the evaluation's own extraction (label
    line, synonyms, negation, hedging): training-time accuracy reads answers like `emoreason eval`."""
    return extract_label(text, label_protocol or "all").label


def answer_tokens(batch) -> int:
    """Tokens the loss is averaged over (labels not ignored)."""
    return int((batch.labels != -100).sum())


@dataclass
class EvalResult:
    loss: dict[str, float] = field(default_factory=dict)  # task -> mean token loss
    tokens: dict[str, int] = field(default_factory=dict)
    accuracy: dict[str, float] = field(default_factory=dict)  # task -> share of correct emotions (WA)
    balanced_accuracy: dict[str, float] = field(default_factory=dict)  # task -> mean per-class recall (UA)
    answered: dict[str, int] = field(default_factory=dict)  # task -> examples generated
    samples: list[tuple[str, str, str]] = field(default_factory=list)  # (id, gold, generated), a few

    def flat(self) -> dict[str, float]:
        out = {f"eval/loss/{t}": v for t, v in self.loss.items()}
        out.update({f"eval/accuracy/{t}": v for t, v in self.accuracy.items()})
        out.update({f"eval/balanced_accuracy/{t}": v for t, v in self.balanced_accuracy.items()})
        return out


def _loader(examples, collate_fn, batches, num_workers: int, item_type) -> DataLoader:
    return DataLoader(
        CorpusDataset(examples, item_type),
        batch_sampler=batches,
        collate_fn=collate_fn,
        num_workers=num_workers,
        generator=torch.Generator().manual_seed(0),
    )


@torch.no_grad()
def evaluate(
    model,
    by_task: dict[Task, list[TrainingExample]],
    collate_fn: Callable,
    env: DistEnv,
    *,
    micro_batch_size: int,
    max_examples: int,
    max_new_tokens: int,
    num_workers: int = 0,
    autocast=None,
    item_type=None,
) -> EvalResult:
    """Every process evaluates its share of fixed batches; sums are reduced over processes."""
    autocast = autocast or contextlib.nullcontext
    was_training = model.training
    model.eval()
    result = EvalResult()
    for task, examples in by_task.items():
        examples = examples[:: max(1, len(examples) // max_examples)][:max_examples]  # spread over speakers/labels
        batches = eval_batches(
            len(examples), micro_batch_size, [length_key(e) for e in examples], env.rank, env.world_size
        )
        loss_sum = tokens = 0.0
        hits, totals = [0.0] * len(Emotion), [0.0] * len(Emotion)  # per gold class
        classes = list(Emotion)
        loader = _loader(examples, collate_fn, batches, num_workers, item_type)
        for batch_ids, batch in zip(batches, loader, strict=True):
            batch = batch.to(env.device)
            n = answer_tokens(batch)
            with autocast():
                loss_sum += float(model(batch).loss) * n
            tokens += n
            if task in EMOTION_ANSWER_TASKS:  # the model drops the answers of training rows to generate
                texts = model.generate(batch, max_new_tokens=max_new_tokens)
                for i, text in zip(batch_ids, texts, strict=True):
                    ex = examples[i]
                    if ex.emotion is None:
                        continue
                    predicted = answer_emotion(text, ex.label_protocol)
                    totals[classes.index(ex.emotion)] += 1
                    hits[classes.index(ex.emotion)] += float(predicted == ex.emotion)
                    if len(result.samples) < 8 and env.is_main:
                        result.samples.append((ex.id, ex.emotion.value if ex.emotion else "", text))
        reduced = env.sum([loss_sum, tokens, *hits, *totals])
        loss_sum, tokens = reduced[:2]
        hits, totals = reduced[2 : 2 + len(classes)], reduced[2 + len(classes) :]
        if tokens:
            result.loss[task.value] = loss_sum / tokens
            result.tokens[task.value] = int(tokens)
        if sum(totals):
            result.accuracy[task.value] = sum(hits) / sum(totals)
            result.balanced_accuracy[task.value] = sum(h / n for h, n in zip(hits, totals, strict=True) if n) / sum(
                1 for n in totals if n
            )
            result.answered[task.value] = int(sum(totals))
    model.train(was_training)
    return result
