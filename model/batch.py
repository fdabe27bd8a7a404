"""The typed batch the collator builds and the model consumes."""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import torch

IGNORE_INDEX = -100  # label of tokens outside the answer (torch's cross-entropy default)


@dataclass
class Batch:
    input_ids: torch.Tensor  # (B, L) token ids; audio placeholders hold the pad id
    attention_mask: torch.Tensor  # (B, L) 1 = real token
    audio_mask: torch.Tensor  # (B, L) bool: where the audio embeddings go
    waveforms: torch.Tensor  # (B, S) float32 16 kHz, zero-padded
    waveform_lengths: torch.Tensor  # (B,) real samples per clip
    labels: torch.Tensor | None = None  # (B, L) answer token ids, IGNORE_INDEX elsewhere; None at inference
    ids: list[str] = field(default_factory=list)  # example ids, in row order
    tasks: list[str] = field(default_factory=list)  # task per row ("" for free prompts)
    speakers: list[str] = field(default_factory=list)  # model.speaker_norm.speaker_key per row; "" unknown

    def __len__(self) -> int:
        return self.input_ids.shape[0]

    def to(self, device: torch.device | str) -> Batch:
        moved = {
            f.name: value.to(device, non_blocking=True) if isinstance(value, torch.Tensor) else value
            for f in fields(self)
            for value in [getattr(self, f.name)]
        }
        return Batch(**moved)

    def pin_memory(self) -> Batch:
        """DataLoader(pin_memory=True) calls this on custom batch types."""
        return Batch(**{f.name: _pin(getattr(self, f.name)) for f in fields(self)})


def _pin(value):
    return value.pin_memory() if isinstance(value, torch.Tensor) else value
