"""The encoder of any Hugging Face Whisper checkpoint, with a fixed 30 s or a variable window.

Whisper's own forward insists on mel length = 2 x max_source_positions (3000 frames = 30 s).
The paper pads every clip to that window (1500 frames, most of them silence for a 4 s clip).
The variable window runs the same layers on the real frames only: positional embeddings are
sliced to the input length and padded frames are masked out of attention, so a clip's output
does not depend on its neighbours in the batch. Weights are unchanged: any checkpoint works.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import safe_open
from torch import nn
from torch.utils.checkpoint import checkpoint
from transformers import WhisperConfig
from transformers.models.whisper.modeling_whisper import WhisperEncoder

from model import features
from model.embedded import resolve_path
from model.encoders.base import EncodedAudio, FrameEncoder, FrameSpec

WHISPER_FRAMES_PER_30S = 1500  # 3000 mel frames (10 ms hop) halved by conv2's stride 2
WHISPER_CONV_STRIDE = 2
# A checkpoint holds the encoder under one of these prefixes (ForConditionalGeneration, Model, encoder-only).
_ENCODER_PREFIXES = ("model.encoder.", "encoder.", "")


def _local_dir(path: str) -> Path:
    resolved = resolve_path(path)
    if Path(resolved).is_dir():
        return Path(resolved)
    from huggingface_hub import snapshot_download  # users with hub access; never reached in tests

    return Path(snapshot_download(resolved, allow_patterns=["*.json", "*.safetensors"]))


def load_whisper_encoder(path: str) -> WhisperEncoder:
    """Only the encoder's tensors are read (large-v3's decoder is never materialised)."""
    directory = _local_dir(path)
    config = WhisperConfig.from_pretrained(directory)
    encoder = WhisperEncoder(config)
    wanted = set(encoder.state_dict())
    state: dict[str, torch.Tensor] = {}
    files = sorted(directory.glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"no *.safetensors in {directory} (Whisper checkpoint {path!r})")
    for file in files:
        with safe_open(file, framework="pt") as f:
            for key in f.keys():  # noqa: SIM118 (safe_open is not a dict)
                for prefix in _ENCODER_PREFIXES:
                    if key.startswith(prefix) and key[len(prefix) :] in wanted:
                        state[key[len(prefix) :]] = f.get_tensor(key)
                        break
    missing = wanted - set(state)
    if missing:
        raise ValueError(f"Whisper checkpoint {path!r} lacks encoder tensors: {sorted(missing)[:5]} ...")
    encoder.load_state_dict(state)
    return encoder


def whisper_frame_spec(config: WhisperConfig) -> FrameSpec:
    window_samples = config.max_source_positions * WHISPER_CONV_STRIDE * features.HOP
    return FrameSpec(
        frames_per_30s=WHISPER_FRAMES_PER_30S,
        window_samples=window_samples,
        mel_hop=features.HOP,
        mel_stride=WHISPER_CONV_STRIDE,
    )


def whisper_spec_from_path(path: str) -> FrameSpec:
    """The frame arithmetic from the checkpoint's config.json alone (the collator needs no weights)."""
    return whisper_frame_spec(WhisperConfig.from_pretrained(_local_dir(path)))


class WhisperFrames(FrameEncoder):
    def __init__(self, encoder: WhisperEncoder):
        super().__init__()
        self.encoder = encoder
        self.spec = whisper_frame_spec(encoder.config)
        self.hidden_size = encoder.config.d_model
        self.num_hidden_states = encoder.config.encoder_layers + 1
        self.gradient_checkpointing = False

    def gradient_checkpointing_enable(self) -> None:
        """Recompute each layer in backward when the encoder trains (memory for time)."""
        self.gradient_checkpointing = True

    @classmethod
    def from_pretrained(cls, path: str) -> WhisperFrames:
        return cls(load_whisper_encoder(path))

    @classmethod
    def from_config(cls, init: dict) -> WhisperFrames:
        return cls(WhisperEncoder(WhisperConfig(**init)))

    def forward(
        self, waveforms: torch.Tensor, lengths: torch.Tensor, window: str, all_layers: bool = False
    ) -> EncodedAudio:
        enc = self.encoder
        max_positions = enc.config.max_source_positions
        mel_len = max_positions * WHISPER_CONV_STRIDE if window == "fixed" else None
        mel = features.log_mel(waveforms, lengths, enc.config.num_mel_bins, window, mel_len)  # (B, n_mels, T_mel)
        x = mel.features.to(enc.conv1.weight.dtype)
        if window == "fixed":
            x = nn.functional.gelu(enc.conv1(x))
        else:
            # Zero what lies past each clip, before each conv, so the convs' edge frames see the
            # zero padding they would see for the clip alone: outputs independent of the batch.
            real = (torch.arange(x.shape[-1], device=x.device)[None, :] < mel.lengths[:, None])[:, None, :]
            x = nn.functional.gelu(enc.conv1(x * real)) * real
        x = nn.functional.gelu(enc.conv2(x)).permute(0, 2, 1)  # (B, T, D)
        frames = x.shape[1]
        if frames > max_positions:
            raise ValueError(f"{frames} encoder frames exceed Whisper's {max_positions} positions: truncate the audio")
        x = x + enc.embed_positions.weight[:frames]
        x = nn.functional.dropout(x, p=enc.dropout, training=self.training)
        if window == "fixed":
            # The paper's setting: every frame of the window is attended to and kept, as in Whisper.
            valid = torch.full_like(mel.lengths, frames)
            mask = None
        else:
            valid = torch.div(mel.lengths + WHISPER_CONV_STRIDE - 1, WHISPER_CONV_STRIDE, rounding_mode="floor")
            keep = torch.arange(frames, device=x.device)[None, :] < valid[:, None]  # (B, T)
            mask = torch.zeros(keep.shape, dtype=x.dtype, device=x.device)
            mask = mask.masked_fill(~keep, torch.finfo(x.dtype).min)[:, None, None, :]  # (B, 1, 1, T) additive
        states = [x]
        recompute = self.gradient_checkpointing and self.training and torch.is_grad_enabled()
        for layer in enc.layers:
            x = checkpoint(layer, x, mask, use_reentrant=False) if recompute else layer(x, mask)
            if all_layers:
                states.append(x)
        x = enc.layer_norm(x)
        states = [*states[:-1], x] if all_layers else [x]
        return EncodedAudio(hidden_states=tuple(states), lengths=valid)
