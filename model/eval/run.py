"""Batched, resumable generation on a test split: one result row per utterance, appended per batch.

    items = items_from_dataset("ravdess", root, split="test")          # or items_from_corpus(path, "dev")
    stats = generate_predictions(model, collator, items, out_dir / "predictions", batch_size=8)
    rows = read_predictions(out_dir / "predictions")

Each finished batch is written as its own parquet part (``part-00012.parquet``, atomically), so a
run killed at any point loses at most the batch in flight, and a re-run skips every utterance id
already written. A clip whose audio cannot be read is a :class:`Reject` (stage ``eval``) in
``rejects-*.parquet`` parts, never silently dropped. Batches are formed from clips of similar
duration (sorted), which keeps audio padding, and so wasted encoder work, small.

The label is extracted (model.eval.extract) when the row is written, so the parquet alone
answers "what did the model say, what did we read, what was gold".
"""

from __future__ import annotations

import contextlib
import datetime as dt
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from pydantic import Field

from model.eval.extract import extract_label
from model.speaker_norm import speaker_key
from pipeline.audio import AudioError, load_audio
from pipeline.datasets import load_dataset
from pipeline.datasets.common import ALL_SPLITS
from pipeline.labels import DEFAULT_PROTOCOL, Emotion, protocol
from pipeline.parquet import iter_records, write_records
from pipeline.questions import load_pool
from pipeline.records import Record, Reject, Task, TrainingExample, Utterance

PART = "part-{:05d}.parquet"
REJECT_PART = "rejects-{:05d}.parquet"
INSTRUCTION_SEED = 0  # the question pool's draw for evaluation prompts (fixed: reruns ask the same)
EMOTION_TASKS = (Task.emotion_reasoning, Task.emotion_recognition)


@dataclass(frozen=True)
class EvalItem:
    """One utterance to answer: its audio, the instruction asked, and the gold label."""

    utterance_id: str
    dataset: str
    split: str
    speaker: str
    audio_path: str
    gold: Emotion
    label_protocol: str
    instruction: str
    start_s: float | None = None
    end_s: float | None = None
    transcript: str | None = None
    duration_s: float | None = None


class EvalRow(Record):
    """One generated answer with the label read from it."""

    utterance_id: str
    dataset: str
    split: str
    speaker: str
    label_protocol: str
    transcript: str | None = None
    prompt: str = Field(description="the instruction the model was given (the audio precedes it)")
    generated: str
    label: str | None = Field(description="extracted label under the protocol; None when none could be read")
    status: str = Field(
        description="extraction status: final_line / synonym / ambiguous / none / refusal; scored (label scoring)"
    )
    candidates: list[str] = Field(default_factory=list)
    gold: str
    correct: bool
    latency_s: float = Field(description="the batch's generation time divided by its size")
    batch_s: float
    batch_size: int
    created_at: dt.datetime


def _instruction(task: Task, utterance_id: str, labels: Sequence[str]) -> str:
    return load_pool(task).draw(utterance_id, INSTRUCTION_SEED, labels=", ".join(labels))


def items_from_utterances(
    utterances: Sequence[Utterance], task: Task = Task.emotion_reasoning, model_labels: str | None = None
) -> list[EvalItem]:
    """Items of the utterances that have audio (callers reject the others, see items_from_dataset).

    ``model_labels``: the protocol the model answers in, when it is not the utterances' own. The
    instruction lists its labels, answers are read under it, and gold labels are merged onto it
    (:meth:`Protocol.onto`); a gold class it lacks stays, and is scored as wrong."""
    answer_in = protocol(model_labels) if model_labels else None
    items = []
    for u in utterances:
        if u.audio_path is None:
            continue
        proto = answer_in or protocol(u.label_protocol)
        labels = proto.names
        items.append(
            EvalItem(
                utterance_id=u.id,
                dataset=u.dataset,
                split=u.split,
                speaker=u.speaker,
                audio_path=u.audio_path,
                gold=proto.onto(u.emotion),
                label_protocol=proto.name,
                instruction=_instruction(task, u.id, labels),
                start_s=u.start_s,
                end_s=u.end_s,
                transcript=u.transcript,
                duration_s=u.duration_s,
            )
        )
    return items


def items_from_dataset(
    name: str,
    root: str | None,
    split: str = "test",
    proto: str | None = None,
    task: Task = Task.emotion_reasoning,
    model_labels: str | None = None,
    **options,
) -> tuple[list[EvalItem], list[Reject], list[Utterance]]:
    """Items of one split of a dataset adapter (``ALL_SPLITS``: all of its utterances), the adapter's
    rejects, and the utterances. ``model_labels``: see :func:`items_from_utterances`."""
    proto = proto or DEFAULT_PROTOCOL.get(name, "all")
    splits = None if split == ALL_SPLITS else [split]
    loaded = load_dataset(name, root, protocol=proto, splits=splits, **options)
    if not loaded.utterances:
        hint = ""
        if splits is not None:  # say where the utterances are (a RAVDESS folder without actors 17-20 has no test)
            held = sorted({u.split for u in load_dataset(name, root, protocol=proto, **options).utterances})
            hint = f"; its utterances are in splits {held} (--split {ALL_SPLITS} takes every one)" if held else ""
        raise ValueError(f"{name}: no utterances in split {split!r} ({len(loaded.rejects)} rejects){hint}")
    rejects = list(loaded.rejects)
    rejects += [
        Reject(stage="eval", record_id=u.id, dataset=u.dataset, reason="no_audio", detail="the utterance has no audio")
        for u in loaded.utterances
        if u.audio_path is None
    ]
    return items_from_utterances(loaded.utterances, task, model_labels), rejects, loaded.utterances


def items_from_corpus(examples: Sequence[TrainingExample], split: str, task: Task | None = None) -> list[EvalItem]:
    """Emotion examples of a corpus split, asked with the instruction they were built with."""
    tasks = (task,) if task is not None else EMOTION_TASKS
    items = []
    for ex in examples:
        if (split != ALL_SPLITS and ex.split != split) or ex.task not in tasks or ex.emotion is None:
            continue
        items.append(
            EvalItem(
                utterance_id=ex.utterance_id,
                dataset=ex.dataset,
                split=ex.split,
                speaker=ex.speaker,
                audio_path=ex.audio_path,
                gold=ex.emotion,
                label_protocol=ex.label_protocol or "all",
                instruction=ex.instruction,
                start_s=ex.start_s,
                end_s=ex.end_s,
                transcript=ex.transcript,
                duration_s=ex.duration_s,
            )
        )
    ids = [i.utterance_id for i in items]
    if len(set(ids)) != len(ids):
        raise ValueError(f"split {split!r} holds several emotion examples per utterance; choose one task (--task)")
    return items


def done_ids(parts_dir: Path) -> set[str]:
    """Utterance ids already answered or rejected in earlier runs."""
    done: set[str] = set()
    for path in sorted(parts_dir.glob("part-*.parquet")):
        done.update(r.utterance_id for r in iter_records(path, EvalRow))
    for path in sorted(parts_dir.glob("rejects-*.parquet")):
        done.update(r.record_id for r in iter_records(path, Reject))
    return done


def _next_part(parts_dir: Path) -> int:
    numbers = [int(p.stem.split("-")[-1]) for p in parts_dir.glob("*-*.parquet") if p.stem.split("-")[-1].isdigit()]
    return max(numbers, default=-1) + 1


@dataclass
class GenerationStats:
    answered: int = 0  # now
    skipped: int = 0  # done in an earlier run
    rejected: int = 0
    generate_s: float = 0.0

    @property
    def clips_per_s(self) -> float:
        return self.answered / self.generate_s if self.generate_s else 0.0


def _batches(items: Sequence[EvalItem], size: int) -> Iterator[list[EvalItem]]:
    ordered = sorted(items, key=lambda i: (i.duration_s or 0.0, i.utterance_id))
    for start in range(0, len(ordered), size):
        yield ordered[start : start + size]


def generate_predictions(
    model,
    collator,
    items: Sequence[EvalItem],
    parts_dir: str | Path,
    *,
    batch_size: int = 8,
    max_new_tokens: int = 256,
    device: str = "cpu",
    progress: bool = False,
    score_labels: bool = False,
) -> GenerationStats:
    """Answer every item not answered yet; write one part per batch.

    ``score_labels``: instead of generating, score each label of the item's protocol as the
    answer (summed token log-probabilities, ``AudioLLM.answer_logprobs``) and answer the best;
    the row's status is ``scored`` and its candidates the three best labels. This asks what the
    model prefers among the labels, apart from whether it has learned to say one."""
    import torch

    parts_dir = Path(parts_dir)
    parts_dir.mkdir(parents=True, exist_ok=True)
    done = done_ids(parts_dir)
    todo = [i for i in items if i.utterance_id not in done]
    stats = GenerationStats(skipped=len(items) - len(todo))
    part = _next_part(parts_dir)
    model.eval()
    if todo and getattr(model, "needs_speaker_norm", False):
        with torch.inference_mode():
            _measure_speakers(model, collator, items, batch_size, device)
    for batch in _batches(todo, batch_size):
        prompts, kept, rejects = [], [], []
        for item in batch:
            try:
                wave = load_audio(item.audio_path, item.start_s, item.end_s)
            except AudioError as err:
                rejects.append(
                    Reject(
                        stage="eval",
                        record_id=item.utterance_id,
                        dataset=item.dataset,
                        reason=err.reason,
                        detail=str(err),
                        source=item.audio_path,
                    )
                )
                continue
            prompts.append(_prompt(item, wave))
            kept.append(item)
        rows = []
        if prompts:
            start = time.perf_counter()
            with torch.inference_mode():
                if score_labels:
                    ranked = _rank_labels(model, collator, kept, prompts, device)
                    texts = [labels[0] for labels in ranked]
                else:
                    texts = model.generate(collator(prompts).to(device), max_new_tokens=max_new_tokens)
            elapsed = time.perf_counter() - start
            stats.generate_s += elapsed
            now = dt.datetime.now(dt.timezone.utc)
            for n, (item, text) in enumerate(zip(kept, texts, strict=True)):
                got = extract_label(text, item.label_protocol)
                label = got.label.value if got.label is not None else None
                status = "scored" if score_labels else got.status.value
                candidates = ranked[n][:3] if score_labels else [c.value for c in got.candidates]
                rows.append(
                    EvalRow(
                        utterance_id=item.utterance_id,
                        dataset=item.dataset,
                        split=item.split,
                        speaker=item.speaker,
                        label_protocol=item.label_protocol,
                        transcript=item.transcript,
                        prompt=item.instruction,
                        generated=text,
                        label=label,
                        status=status,
                        candidates=candidates,
                        gold=item.gold.value,
                        correct=label == item.gold.value,
                        latency_s=elapsed / len(kept),
                        batch_s=elapsed,
                        batch_size=len(kept),
                        created_at=now,
                    )
                )
        # Rejects first: a kill between the two writes re-asks the answered clips, never loses a reject.
        if rejects:
            write_records(rejects, parts_dir / REJECT_PART.format(part), Reject)
        if rows:
            write_records(rows, parts_dir / PART.format(part), EvalRow)
        part += 1
        stats.answered += len(rows)
        stats.rejected += len(rejects)
        if progress:
            total = len(todo)
            print(f"\reval: {stats.answered + stats.rejected}/{total} clips", end="", flush=True)
    if progress and todo:
        print()
    return stats


def _prompt(item: EvalItem, wave):
    from model.collator import AudioPrompt

    speaker = speaker_key(item.dataset, item.speaker)
    return AudioPrompt(instruction=item.instruction, waveform=wave, id=item.utterance_id, speaker=speaker)


def _measure_speakers(model, collator, items: Sequence[EvalItem], batch_size: int, device: str) -> int:
    """``adapter.speaker_norm``: each test speaker measured on all of their clips here, answered or
    not (transductive, labels unread), as the trainer measured its speakers. An unreadable clip is
    skipped here and reported as a reject when it is answered."""

    def batches():
        for chunk in _batches(items, batch_size):
            prompts = []
            for item in chunk:
                with contextlib.suppress(AudioError):
                    prompts.append(_prompt(item, load_audio(item.audio_path, item.start_s, item.end_s)))
            if prompts:
                yield collator(prompts).to(device)

    return model.fit_speaker_norm(batches(), pooled=False)


def _rank_labels(model, collator, items: Sequence[EvalItem], prompts, device: str) -> list[list[str]]:
    """Each item's protocol labels, best first by the model's log-probability of answering them."""
    from model.collator import AudioExample

    rows, spans = [], []
    for item, prompt in zip(items, prompts, strict=True):
        labels = protocol(item.label_protocol).names
        spans.append(labels)
        for label in labels:
            example = TrainingExample(
                id=f"{item.utterance_id}#{label}", task=Task.emotion_recognition, instruction=item.instruction,
                target=label, audio_path=item.audio_path, utterance_id=item.utterance_id, dataset=item.dataset,
                split=item.split, speaker=item.speaker,
            )  # fmt: skip
            rows.append(AudioExample(example=example, waveform=prompt.waveform))
    scores = model.answer_logprobs(collator(rows).to(device)).tolist()
    ranked, at = [], 0
    for labels in spans:
        mine = scores[at : at + len(labels)]
        ranked.append([label for _, label in sorted(zip(mine, labels, strict=True), key=lambda p: -p[0])])
        at += len(labels)
    return ranked


def rescore(row: EvalRow) -> EvalRow:
    """The row with its label extracted again by the current rules (extraction may have changed
    since generation; the generated text is what was stored). Scored rows stay as they are."""
    if row.status == "scored":
        return row
    got = extract_label(row.generated, row.label_protocol)
    label = got.label.value if got.label is not None else None
    return row.model_copy(
        update={
            "label": label,
            "status": got.status.value,
            "candidates": [c.value for c in got.candidates],
            "correct": label == row.gold,
        }
    )


def read_predictions(parts_dir: str | Path) -> tuple[list[EvalRow], list[Reject]]:
    parts_dir = Path(parts_dir)
    rows = [r for p in sorted(parts_dir.glob("part-*.parquet")) for r in iter_records(p, EvalRow)]
    rejects = [r for p in sorted(parts_dir.glob("rejects-*.parquet")) for r in iter_records(p, Reject)]
    return sorted(rows, key=lambda r: r.utterance_id), rejects


def resolve_checkpoint(path: str | Path) -> Path:
    """The model folder of ``path``: a saved AudioLLM, a run's ``final/``, or its latest checkpoint's ``model/``."""
    from model.audiollm import CONFIG_FILE
    from model.train.checkpoint import latest_checkpoint

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    candidates = [path, path / "final"]
    latest = latest_checkpoint(path)
    if latest is not None:
        candidates.append(latest / "model")
    for candidate in candidates:
        if (candidate / CONFIG_FILE).is_file():
            return candidate
    raise FileNotFoundError(
        f"{path} holds no AudioLLM checkpoint: expected {CONFIG_FILE} in it, in its final/, or in "
        "checkpoints/step-*/model/ (a run folder of `emoreason train`)"
    )
