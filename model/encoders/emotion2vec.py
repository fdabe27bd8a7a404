"""emotion2vec / emotion2vec+ (the paper's emotion encoder) in plain PyTorch.

emotion2vec is a data2vec 2.0 audio encoder: a wav2vec2-style convolutional front end (stride
320: 50 frames/s), a stack of grouped convolutions adding relative position, 10 learned "extra"
tokens prepended to the frames, and post-LN transformer blocks whose attention carries an ALiBi
bias (-slope x distance, a learned non-negative scale per head). The first ``prenet_depth``
blocks are data2vec's modality-specific "context encoder" (a LayerNorm before them), the other
``depth`` the shared encoder; both are one stack here. Its frame features are the last block's
output without the extra tokens.

Weights come from the official FunASR/ModelScope release converted by
model/encoders/emotion2vec_convert.py (``config.json`` + ``model.safetensors``); equality with
the reference implementation is tested in tests/test_emotion2vec_reference.py.

Unlike the reference, a padded batch gives each clip exactly what it gets alone: padded frames
are zeroed before each positional convolution (the reference lets them leak into the last
frames of shorter clips) and masked out of attention.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from safetensors.torch import load_file
from torch import nn
from torch.nn import functional as F
from torch.utils.checkpoint import checkpoint

from model.encoders.base import WINDOW_S, EncodedAudio, FrameEncoder, FrameSpec, masked_waveforms

CONFIG_FILE, WEIGHTS_FILE = "config.json", "model.safetensors"
WAVEFORM_NORM_EPS = 1e-5  # the reference normalises a clip with F.layer_norm's default epsilon
POS_NORM_EPS = 1e-5  # fairseq LayerNorm default, in the positional convolutions
WAV2VEC2_CONV = ((512, 10, 5),) + ((512, 3, 2),) * 4 + ((512, 2, 2),) * 2  # (channels, kernel, stride)


class Emotion2vecConfig(BaseModel):
    """The architecture; defaults are emotion2vec+ large (data2vec 2.0 large: 8 + 16 blocks of width 1024)."""

    model_config = ConfigDict(extra="forbid")

    embed_dim: int = 1024
    num_heads: int = 16
    prenet_depth: int = Field(8, ge=0, description="blocks of the context encoder (data2vec's modality prenet)")
    depth: int = Field(16, ge=1, description="blocks of the shared encoder")
    mlp_ratio: float = 4.0
    norm_eps: float = 1e-5
    norm_affine: bool = True
    layer_norm_first: bool = Field(False, description="pre-LN blocks (False: post-LN, as every released emotion2vec)")
    conv_layers: tuple[tuple[int, int, int], ...] = WAV2VEC2_CONV
    extractor_mode: Literal["layer_norm", "default"] = "layer_norm"
    conv_pos_width: int = 95
    conv_pos_groups: int = 16
    conv_pos_depth: int = 5
    conv_pos_pre_ln: bool = False
    num_extra_tokens: int = 10
    use_alibi: bool = True
    num_alibi_heads: int = 16
    alibi_scale_per_head: bool = True
    alibi_scale_per_layer: bool = False
    normalize: bool = Field(True, description="zero-mean unit-variance per clip before the encoder")
    # Dropout rates of the release (training only; LayerDrop and SpecAugment-style masking are
    # left out: a fine-tuned or probed encoder runs every block on unmasked input).
    encoder_dropout: float = 0.1
    attention_dropout: float = 0.1
    activation_dropout: float = 0.0
    post_mlp_drop: float = 0.1
    prenet_dropout: float = 0.1
    dropout_input: float = 0.0

    @property
    def num_blocks(self) -> int:
        return self.prenet_depth + self.depth

    @property
    def pos_kernel(self) -> int:
        return max(3, self.conv_pos_width // self.conv_pos_depth)


# Shapes of the released checkpoints (their config.yaml); the converter reads the real file.
SHAPES: dict[str, dict] = {
    "emotion2vec_plus_large": {},
    "emotion2vec_plus_base": dict(embed_dim=768, num_heads=12, prenet_depth=4, depth=8, num_alibi_heads=12),
    "emotion2vec_base": dict(embed_dim=768, num_heads=12, prenet_depth=4, depth=8, num_alibi_heads=12),
}


def alibi_slopes(heads: int) -> torch.Tensor:
    """ALiBi's geometric slopes (Press et al.); for a head count that is no power of 2, the
    closest power's slopes plus every other slope of twice that many (data2vec 2.0's rule)."""

    def power_of_2(n: int) -> list[float]:
        start = 2 ** (-(2 ** -(math.log2(n) - 3)))
        return [start * start**i for i in range(n)]

    if math.log2(heads).is_integer():
        return torch.tensor(power_of_2(heads))
    closest = 2 ** math.floor(math.log2(heads))
    return torch.cat([torch.tensor(power_of_2(closest)), alibi_slopes(2 * closest)[0::2][: heads - closest]])


class ConvLayer(nn.Module):
    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, norm: str | None):
        super().__init__()
        self.conv = nn.Conv1d(c_in, c_out, kernel, stride=stride, bias=False)
        self.norm_kind = norm
        if norm == "layer":
            self.norm = nn.LayerNorm(c_out)
        elif norm == "group":
            self.norm = nn.GroupNorm(c_out, c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, T) -> (B, C', T')
        x = self.conv(x)
        if self.norm_kind == "layer":  # over channels, in fp32 as fairseq's Fp32LayerNorm
            n = self.norm
            x = F.layer_norm(x.transpose(1, 2).float(), n.normalized_shape, n.weight.float(), n.bias.float(), n.eps)
            x = x.transpose(1, 2).type_as(self.conv.weight)
        elif self.norm_kind == "group":
            n = self.norm
            x = F.group_norm(x.float(), n.num_groups, n.weight.float(), n.bias.float(), n.eps).type_as(self.conv.weight)
        return F.gelu(x)


class Attention(nn.Module):
    def __init__(self, cfg: Emotion2vecConfig):
        super().__init__()
        self.heads = cfg.num_heads
        self.qkv = nn.Linear(cfg.embed_dim, 3 * cfg.embed_dim)
        self.out_proj = nn.Linear(cfg.embed_dim, cfg.embed_dim)
        self.attn_drop, self.out_drop = cfg.attention_dropout, cfg.encoder_dropout

    def forward(self, x: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)  # 3 x (B, H, T, hd)
        attn_drop = self.attn_drop if self.training else 0.0
        x = F.scaled_dot_product_attention(q, k, v, attn_mask=None if bias is None else bias.to(q.dtype),
                                           dropout_p=attn_drop)  # fmt: skip
        x = self.out_proj(x.transpose(1, 2).reshape(b, t, d))
        return F.dropout(x, self.out_drop, self.training)


class FeedForward(nn.Module):
    def __init__(self, cfg: Emotion2vecConfig):
        super().__init__()
        hidden = int(cfg.embed_dim * cfg.mlp_ratio)
        self.fc1 = nn.Linear(cfg.embed_dim, hidden)
        self.fc2 = nn.Linear(hidden, cfg.embed_dim)
        self.drop = cfg.activation_dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.dropout(F.gelu(self.fc1(x)), self.drop, self.training)
        return F.dropout(self.fc2(x), self.drop, self.training)


class Block(nn.Module):
    def __init__(self, cfg: Emotion2vecConfig):
        super().__init__()
        self.pre_ln = cfg.layer_norm_first
        self.norm1 = nn.LayerNorm(cfg.embed_dim, eps=cfg.norm_eps, elementwise_affine=cfg.norm_affine)
        self.attn = Attention(cfg)
        self.norm2 = nn.LayerNorm(cfg.embed_dim, eps=cfg.norm_eps, elementwise_affine=cfg.norm_affine)
        self.ffn = FeedForward(cfg)
        self.post_drop = cfg.post_mlp_drop

    def forward(self, x: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        if self.pre_ln:
            x = x + self.attn(self.norm1(x), bias)
            return x + F.dropout(self.ffn(self.norm2(x)), self.post_drop, self.training)
        r = self.norm1(x + self.attn(x, bias))
        return self.norm2(r + F.dropout(self.ffn(r), self.post_drop, self.training))


class Emotion2vec(nn.Module):
    """Waveform (B, S) -> every hidden state (B, T, D): the input of the first block, then each block's output."""

    def __init__(self, cfg: Emotion2vecConfig):
        super().__init__()
        self.cfg = cfg
        d = cfg.embed_dim
        layers, c_in = [], 1
        for i, (c_out, kernel, stride) in enumerate(cfg.conv_layers):
            norm = "layer" if cfg.extractor_mode == "layer_norm" else ("group" if i == 0 else None)
            layers.append(ConvLayer(c_in, c_out, kernel, stride, norm))
            c_in = c_out
        self.conv_layers = nn.ModuleList(layers)
        self.feature_norm = nn.LayerNorm(c_in)
        self.feature_proj = nn.Linear(c_in, d)
        self.pos_pre_norm = nn.LayerNorm(d) if cfg.conv_pos_pre_ln else None
        k = cfg.pos_kernel
        self.pos_convs = nn.ModuleList(
            nn.Conv1d(d, d, k, padding=k // 2, groups=cfg.conv_pos_groups) for _ in range(cfg.conv_pos_depth)
        )
        self.extra_tokens = nn.Parameter(torch.zeros(1, cfg.num_extra_tokens, d)) if cfg.num_extra_tokens else None
        if cfg.use_alibi:
            scales = (
                cfg.num_blocks if cfg.alibi_scale_per_layer else 1,
                cfg.num_alibi_heads if cfg.alibi_scale_per_head else 1,
            )
            self.alibi_scale = nn.Parameter(torch.ones(*scales))  # (layers or 1, heads or 1)
            self.register_buffer("slopes", alibi_slopes(cfg.num_alibi_heads), persistent=False)
        else:
            self.alibi_scale = None
        self.context_norm = (
            None if cfg.layer_norm_first else nn.LayerNorm(d, eps=cfg.norm_eps, elementwise_affine=cfg.norm_affine)
        )
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.num_blocks))
        self.final_norm = (
            nn.LayerNorm(d, eps=cfg.norm_eps, elementwise_affine=cfg.norm_affine) if cfg.layer_norm_first else None
        )
        self.gradient_checkpointing = False
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Random weights in the release's spirit (tests, gpu-check); real ones come from a conversion."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)
        for layer in self.conv_layers:
            nn.init.kaiming_normal_(layer.conv.weight)
        if self.extra_tokens is not None:
            nn.init.normal_(self.extra_tokens)

    def frame_lengths(self, samples: torch.Tensor) -> torch.Tensor:
        n = samples
        for _, kernel, stride in self.cfg.conv_layers:
            n = torch.div(n - kernel, stride, rounding_mode="floor") + 1
        return n.clamp(min=0)

    def _bias(self, frames: int, keep: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
        """Additive attention bias (B or 1, H, T', T') over extra tokens + frames; per layer if scaled per layer."""
        cfg, e = self.cfg, self.cfg.num_extra_tokens
        total = frames + e
        bias = None
        if self.alibi_scale is not None:
            pos = torch.arange(frames, device=self.slopes.device)
            distance = -(pos[None, :] - pos[:, None]).abs().float()  # (T, T)
            alibi = self.slopes[:, None, None] * distance  # (Ha, T, T)
            scale = self.alibi_scale.clamp_min(0).float()  # (L or 1, Ha or 1)
            alibi = scale[:, :, None, None] * alibi[None]  # (L or 1, Ha, T, T)
            # Extra tokens carry no position: zero bias to and from them. Heads past num_alibi_heads get none.
            bias = torch.zeros(alibi.shape[0], cfg.num_heads, total, total, device=alibi.device)
            bias[:, : cfg.num_alibi_heads, e:, e:] = alibi
            bias = bias[:, None]  # (L or 1, 1, H, T', T')
        if keep is not None:
            pad = torch.zeros(keep.shape[0], total, device=keep.device)
            pad[:, e:] = pad[:, e:].masked_fill(~keep, float("-inf"))
            pad = pad[:, None, None, :]  # (B, 1, 1, T')
            bias = pad[None] if bias is None else bias + pad[None]
        return None if bias is None else bias.to(dtype)

    def forward(
        self, x: torch.Tensor, lengths: torch.Tensor | None = None, all_layers: bool = True
    ) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
        """(B, S) waveform already normalised; ``lengths`` (B,) valid samples, None: all valid.
        Returns every hidden state (only the last without ``all_layers``) and valid frames (B,)."""
        cfg = self.cfg
        x = x[:, None, :]  # (B, 1, S)
        for layer in self.conv_layers:
            x = layer(x)  # (B, C, T)
        x = self.feature_proj(self.feature_norm(x.transpose(1, 2)))  # (B, T, D)
        batch, frames, _ = x.shape
        valid = self.frame_lengths(lengths) if lengths is not None else torch.full((batch,), frames, device=x.device)
        keep = torch.arange(frames, device=x.device)[None, :] < valid[:, None]  # (B, T)
        keep_mask = None if bool(keep.all()) else keep
        y = self.pos_pre_norm(x) if self.pos_pre_norm is not None else x
        y = y.transpose(1, 2)  # (B, D, T)
        for conv in self.pos_convs:
            # Zero past each clip before every conv: the edge frames see what they would see alone.
            y = conv(y * keep[:, None, :])[..., :frames]  # an even kernel gives one frame too many
            y = F.gelu(F.layer_norm(y.transpose(1, 2), y.shape[1:2], eps=POS_NORM_EPS).transpose(1, 2))
        x = x + y.transpose(1, 2)
        if self.extra_tokens is not None:
            x = torch.cat([self.extra_tokens.expand(batch, -1, -1).to(x.dtype), x], dim=1)  # (B, E + T, D)
        bias = self._bias(frames, keep_mask, x.dtype)  # (L or 1, B or 1, H, T', T') or None
        if self.context_norm is not None:
            x = self.context_norm(x)
        x = F.dropout(x, cfg.prenet_dropout, self.training)
        e = cfg.num_extra_tokens
        states = [x[:, e:]]
        for i, block in enumerate(self.blocks):
            if i == cfg.prenet_depth:
                x = F.dropout(x, cfg.dropout_input, self.training)
            b = None if bias is None else bias[i if bias.shape[0] > 1 else 0]
            if self.gradient_checkpointing and self.training and torch.is_grad_enabled():
                x = checkpoint(block, x, b, use_reentrant=False)
            else:
                x = block(x, b)
            if all_layers or i == len(self.blocks) - 1:
                states.append(x[:, e:])
        if self.final_norm is not None:
            states[-1] = self.final_norm(x)[:, e:]
        return (tuple(states) if all_layers else (states[-1],)), valid


def frame_spec(cfg: Emotion2vecConfig, sample_rate: int) -> FrameSpec:
    layers = tuple((kernel, stride) for _, kernel, stride in cfg.conv_layers)
    total_stride = math.prod(stride for _, stride in layers)
    return FrameSpec(
        frames_per_30s=WINDOW_S * sample_rate // total_stride,
        window_samples=WINDOW_S * sample_rate,
        conv_layers=layers,
    )


def read_config(directory: str | Path) -> Emotion2vecConfig:
    path = Path(directory) / CONFIG_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: an emotion2vec `path` is a folder written by "
            "`python -m model.encoders.emotion2vec_convert` (docs/model.md)"
        )
    return Emotion2vecConfig.model_validate_json(path.read_text())


class Emotion2vecFrames(FrameEncoder):
    """The encoder interface: waveforms + lengths -> every hidden state + valid frames per clip."""

    def __init__(self, model: Emotion2vec, sample_rate: int):
        super().__init__()
        self.model = model
        self.spec = frame_spec(model.cfg, sample_rate)
        self.hidden_size = model.cfg.embed_dim
        self.num_hidden_states = model.cfg.num_blocks + 1

    @classmethod
    def from_pretrained(cls, directory: str | Path, sample_rate: int) -> Emotion2vecFrames:
        """A converted folder (config.json + model.safetensors): no pickle is ever read."""
        model = Emotion2vec(read_config(directory))
        state = load_file(Path(directory) / WEIGHTS_FILE)
        missing, unexpected = model.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise ValueError(
                f"{directory}: weights do not match config.json: missing {missing}, unexpected {unexpected}"
            )
        return cls(model, sample_rate)

    def gradient_checkpointing_enable(self) -> None:
        self.model.gradient_checkpointing = True

    def forward(
        self, waveforms: torch.Tensor, lengths: torch.Tensor, window: str, all_layers: bool = True
    ) -> EncodedAudio:
        span = waveforms.shape[1]
        x = masked_waveforms(waveforms, lengths, self.model.cfg.normalize, WAVEFORM_NORM_EPS)
        dtype = self.model.feature_proj.weight.dtype
        if window == "fixed":
            # The paper's window: zero-pad to 30 s; every frame is attended to and kept.
            x = F.pad(x, (0, self.spec.window_samples - span))
            states, valid = self.model(x.to(dtype), None, all_layers)
        else:
            states, valid = self.model(x.to(dtype), lengths, all_layers)
        return EncodedAudio(hidden_states=states, lengths=valid)


def save_converted(model: Emotion2vec, directory: str | Path) -> Path:
    """Write a folder ``Emotion2vecFrames.from_pretrained`` reads (safetensors: later loads never unpickle)."""
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, directory / WEIGHTS_FILE)
    (directory / CONFIG_FILE).write_text(json.dumps(model.cfg.model_dump(mode="json"), indent=2))
    return directory
