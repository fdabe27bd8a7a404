"""Collator: examples -> a padded ``Batch`` whose audio placeholders match the adapters' output.

Sequence layout belongs here (as in transformers' Qwen2-Audio): the task instruction is rendered
with the decoder's chat template, the audio marker is expanded into exactly as many placeholder
positions as the adapters will emit for that clip (``TokenCounter``), and the loss is masked to
the answer (the assistant turn as the template renders it, end-of-turn token included).

Training rows are padded on the right; prompts for generation on the left.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from model.adapters import TokenCounter
from model.batch import IGNORE_INDEX, Batch
from model.features import MIN_SAMPLES
from model.speaker_norm import speaker_key
from pipeline.records import TrainingExample


@dataclass(frozen=True)
class AudioExample:
    """A training (or evaluation) row: the example and its 16 kHz mono waveform."""

    example: TrainingExample
    waveform: np.ndarray


@dataclass(frozen=True)
class AudioPrompt:
    """An inference row: audio + instruction, no target."""

    instruction: str
    waveform: np.ndarray
    id: str = ""
    speaker: str = ""  # model.speaker_norm.speaker_key; "" = not known (pooled statistics)


@dataclass(frozen=True)
class _Row:
    ids: list[int]
    labels: list[int]
    audio: list[bool]


class AudioCollator:
    def __init__(self, tokenizer, counter: TokenCounter, audio_marker: str = "<audio>", max_length: int | None = None):
        self.tokenizer = tokenizer
        self.counter = counter
        self.marker = audio_marker
        self.max_length = max_length
        fill = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        if fill is None:
            raise ValueError("the tokenizer has neither a pad nor an eos token to fill placeholders and padding")
        self.fill_id = fill

    def _render(self, instruction: str, target: str | None, num_tokens: int, row_id: str) -> _Row:
        count = instruction.count(self.marker)
        if count > 1:
            raise ValueError(f"{row_id}: instruction holds the audio marker {self.marker!r} {count} times")
        if count == 0:
            instruction = f"{self.marker}\n{instruction}"
        user = [{"role": "user", "content": instruction}]
        prompt = self.tokenizer.apply_chat_template(user, add_generation_prompt=True, tokenize=False)
        before, after = prompt.split(self.marker)
        encode = lambda text: self.tokenizer(text, add_special_tokens=False).input_ids  # noqa: E731
        head, tail = encode(before), encode(after)
        ids = [*head, *[self.fill_id] * num_tokens, *tail]
        audio = [False] * len(head) + [True] * num_tokens + [False] * len(tail)
        labels = [IGNORE_INDEX] * len(ids)
        if target is not None:
            full = self.tokenizer.apply_chat_template(
                [*user, {"role": "assistant", "content": target}], add_generation_prompt=False, tokenize=False
            )
            if not full.startswith(prompt):
                raise ValueError(f"{row_id}: the chat template renders the prompt differently with an answer")
            answer = encode(full[len(prompt) :])
            ids += answer
            labels += answer
            audio += [False] * len(answer)
        if self.max_length is not None and len(ids) > self.max_length:
            raise ValueError(
                f"{row_id}: {len(ids)} tokens ({num_tokens} audio) exceed max_length={self.max_length}; "
                "shorten the answer or lower the audio token budget"
            )
        return _Row(ids, labels, audio)

    def _waveform(self, waveform: np.ndarray, row_id: str) -> np.ndarray:
        wave = np.asarray(waveform, dtype=np.float32)
        if wave.ndim != 1 or wave.size == 0:
            raise ValueError(f"{row_id}: expected a non-empty mono waveform, got shape {wave.shape}")
        wave = wave[: self.counter.max_samples]  # Whisper cannot see past its window
        if wave.size < MIN_SAMPLES:  # a few ms: pad with silence so the STFT is defined
            wave = np.pad(wave, (0, MIN_SAMPLES - wave.size))
        return wave

    def __call__(self, items: Sequence[AudioExample | AudioPrompt]) -> Batch:
        if not items:
            raise ValueError("empty batch")
        rows, waves, ids, tasks, speakers = [], [], [], [], []
        for item in items:
            if isinstance(item, AudioExample):
                ex = item.example
                row_id, instruction, target, task = ex.id, ex.instruction, ex.target, ex.task.value
                speakers.append(speaker_key(ex.dataset, ex.speaker))
            else:
                row_id, instruction, target, task = item.id, item.instruction, None, ""
                speakers.append(item.speaker)
            wave = self._waveform(item.waveform, row_id)
            rows.append(self._render(instruction, target, self.counter(wave.size), row_id))
            waves.append(wave)
            ids.append(row_id)
            tasks.append(task)
        has_targets = [isinstance(item, AudioExample) for item in items]
        if len(set(has_targets)) > 1:
            raise ValueError("a batch mixes training rows and prompts; collate them separately")
        left = not has_targets[0]  # generation appends to the right end of every row
        width = max(len(r.ids) for r in rows)
        input_ids = torch.full((len(rows), width), self.fill_id, dtype=torch.long)
        labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
        attention = torch.zeros((len(rows), width), dtype=torch.long)
        audio = torch.zeros((len(rows), width), dtype=torch.bool)
        for i, r in enumerate(rows):
            span = slice(width - len(r.ids), width) if left else slice(0, len(r.ids))
            input_ids[i, span] = torch.tensor(r.ids)
            labels[i, span] = torch.tensor(r.labels)
            attention[i, span] = 1
            audio[i, span] = torch.tensor(r.audio)
        lengths = torch.tensor([w.size for w in waves], dtype=torch.long)
        waveforms = torch.zeros((len(waves), int(lengths.max())), dtype=torch.float32)
        for i, w in enumerate(waves):
            waveforms[i, : w.size] = torch.from_numpy(w)
        return Batch(
            input_ids=input_ids,
            attention_mask=attention,
            audio_mask=audio,
            waveforms=waveforms,
            waveform_lengths=lengths,
            labels=labels if has_targets[0] else None,
            ids=ids,
            tasks=tasks,
            speakers=speakers,
        )
