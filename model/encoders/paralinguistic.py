"""The paralinguistic (emotion) stream: a waveform encoder plus the choice of layer.

Emotion probes read intermediate layers (SUPERB's recipe: a learned softmax-weighted sum of all
hidden states), so the encoder returns every hidden state and ``LayerSelector`` picks one index
or learns the weights. The selector's weights train with the emotion adapter even when the
encoder itself is frozen (model/audiollm.py puts them in the "emotion_adapter" group).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from transformers import AutoConfig, AutoModel

from model.embedded import resolve_path
from model.encoders.base import WINDOW_S, EncodedAudio, FrameEncoder, FrameSpec, masked_waveforms

NORM_EPS = 1e-7  # Wav2Vec2FeatureExtractor's zero-mean unit-variance epsilon


def conv_frame_spec(config: Any, sample_rate: int) -> FrameSpec:
    """Frame arithmetic of a wav2vec2-style convolutional front end (WavLM, HuBERT, data2vec-audio)."""
    layers = tuple(zip(config.conv_kernel, config.conv_stride, strict=True))
    total_stride = 1
    for _, stride in layers:
        total_stride *= stride
    # Nominal rate (1500 frames per 30 s for the usual stride 320): budgets are stated per 30 s.
    return FrameSpec(
        frames_per_30s=WINDOW_S * sample_rate // total_stride,
        window_samples=WINDOW_S * sample_rate,
        conv_layers=layers,
    )


class WaveformFrames(FrameEncoder):
    """Any transformers model that maps ``input_values`` (B, S) to hidden states (B, T, D)."""

    def __init__(self, model: nn.Module, sample_rate: int, normalize: bool):
        super().__init__()
        self.model = model
        # LayerDrop skips layers at random in training, which changes the number of hidden states
        # the layer read-out sees; a frozen or probed encoder should not drop layers.
        model.config.layerdrop = 0.0
        # SpecAugment (random frame masking in training) is off: features stay deterministic, and
        # its mask embedding, then never used, would be a trainable parameter without gradient
        # (which DistributedDataParallel rejects).
        model.config.apply_spec_augment = False
        if isinstance(getattr(model, "masked_spec_embed", None), nn.Parameter):
            del model.masked_spec_embed
        self.normalize = normalize
        self.spec = conv_frame_spec(model.config, sample_rate)
        self.hidden_size = model.config.hidden_size
        self.num_hidden_states = self._count_hidden_states(sample_rate)

    @torch.no_grad()
    def _count_hidden_states(self, sample_rate: int) -> int:
        # Not always num_hidden_layers + 1 (transformers' WavLM omits one): ask the model, on 1 s of silence.
        probe = torch.zeros(1, sample_rate, dtype=self.model.dtype, device=self.model.device)
        return len(self.model(input_values=probe, output_hidden_states=True).hidden_states)

    @classmethod
    def from_pretrained(cls, path: str, sample_rate: int, normalize: bool) -> WaveformFrames:
        return cls(AutoModel.from_pretrained(resolve_path(path)), sample_rate, normalize)

    @classmethod
    def from_config(cls, model_type: str, init: dict, sample_rate: int, normalize: bool) -> WaveformFrames:
        return cls(AutoModel.from_config(AutoConfig.for_model(model_type, **init)), sample_rate, normalize)

    def forward(
        self, waveforms: torch.Tensor, lengths: torch.Tensor, window: str, all_layers: bool = True
    ) -> EncodedAudio:
        span = waveforms.shape[1]
        keep = torch.arange(span, device=waveforms.device)[None, :] < lengths[:, None]  # (B, S)
        x = masked_waveforms(waveforms, lengths, self.normalize, NORM_EPS)
        if window == "fixed":
            # The paper's window: zero-pad to 30 s; the encoder sees (and we keep) every frame.
            x = nn.functional.pad(x, (0, self.spec.window_samples - span))
            mask = None
            valid = torch.full_like(lengths, self.spec.frames(self.spec.window_samples))
        else:
            mask = keep.long()
            valid = torch.tensor([self.spec.frames(int(n)) for n in lengths.tolist()], device=lengths.device)
        out = self.model(input_values=x.to(self.model.dtype), attention_mask=mask, output_hidden_states=True)
        # The last hidden state after the encoder's final norm (transformers 5 returns it before).
        states = (*out.hidden_states[:-1], out.last_hidden_state) if all_layers else (out.last_hidden_state,)
        return EncodedAudio(hidden_states=states, lengths=valid)


class LayerSelector(nn.Module):
    """One hidden state by index, or a learned softmax-weighted sum of layer-normalised ones."""

    def __init__(self, num_hidden_states: int, layer: int | str):
        super().__init__()
        self.layer = layer
        if layer == "weighted":
            self.weights = nn.Parameter(torch.zeros(num_hidden_states))  # uniform at start
        elif not -num_hidden_states <= int(layer) < num_hidden_states:
            raise ValueError(f"emotion.layer={layer}: the encoder has {num_hidden_states} hidden states")

    def forward(self, hidden_states: tuple[torch.Tensor, ...]) -> torch.Tensor:
        if self.layer != "weighted":
            return hidden_states[int(self.layer)]
        stacked = torch.stack([nn.functional.layer_norm(h, h.shape[-1:]) for h in hidden_states])  # (L, B, T, D)
        weights = torch.softmax(self.weights, dim=0).to(stacked.dtype)
        return torch.einsum("l,lbtd->btd", weights, stacked)
