"""Fusion of the two token streams into the audio embeddings placed in the decoder's input.

- ``sequence`` (the paper; it beat the feature axis): per clip, speech tokens then emotion
  tokens, optionally each preceded by its adapter's learned separator embedding.
- ``feature``: token i of both streams side by side; each adapter emits its share of the
  decoder width (``fusion.emotion_width``), so the concatenation is the decoder width and no
  extra projection is needed.

Returns one (sum of tokens over clips, d) tensor in clip order, ready for ``masked_scatter``.
"""

from __future__ import annotations

import torch

from model.adapters import Adapter


def fuse(
    mode: str,
    speech: torch.Tensor,  # (B, Ns, ds)
    emotion: torch.Tensor,  # (B, Ne, de)
    speech_counts: torch.Tensor,  # (B,)
    emotion_counts: torch.Tensor,  # (B,)
    speech_adapter: Adapter,
    emotion_adapter: Adapter,
) -> torch.Tensor:
    pieces: list[torch.Tensor] = []
    for i, (ns, ne) in enumerate(zip(speech_counts.tolist(), emotion_counts.tolist(), strict=True)):
        if mode == "feature":
            if ns != ne:
                raise ValueError(f"feature fusion needs equal token counts; clip {i}: speech {ns}, emotion {ne}")
            pieces.append(torch.cat([speech[i, :ns], emotion[i, :ne]], dim=-1))
            continue
        for adapter, tokens in ((speech_adapter, speech[i, :ns]), (emotion_adapter, emotion[i, :ne])):
            if adapter.separator is not None:
                pieces.append(adapter.separator[None].to(tokens.dtype))
            pieces.append(tokens)
    return torch.cat(pieces)  # (sum_i n_i, d)
