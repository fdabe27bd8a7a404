"""Convert an official emotion2vec release (FunASR / ModelScope layout) to our emotion2vec encoder.

A release folder (emotion2vec_plus_large, emotion2vec_plus_base, emotion2vec_base; from
ModelScope ``iic/<name>`` or Hugging Face ``emotion2vec/<name>``) holds ``config.yaml`` (the
architecture under ``model_conf``) and ``model.pt`` (a pickled state dict, bare or under
``model``/``state_dict``). The weights are read with ``torch.load(weights_only=True)``, which
refuses anything but tensors and plain containers, so loading a download runs no code. Every
tensor is renamed by an explicit key map; a tensor the map does not know, or a tensor our
module needs that the file lacks, is an error naming all of them. Training-only parts (the
data2vec decoder, the EMA teacher, the emotion classifier head of the "+" models) are dropped
by name. The output is ``config.json`` + ``model.safetensors``:

    python -m model.encoders.emotion2vec_convert path/to/emotion2vec_plus_large checkpoints/emotion2vec_plus_large
"""

from __future__ import annotations

import argparse
import ast
import pickle
import sys
from pathlib import Path

import torch
import yaml

from model.encoders.emotion2vec import Emotion2vec, Emotion2vecConfig, save_converted

AUDIO = "modality_encoders.AUDIO."
# Training-only tensors of a release: data2vec's decoder (masked prediction), the EMA teacher,
# the "+" models' 9-way emotion classifier (our adapters read frames, not its logits).
DROPPED_PREFIXES = (AUDIO + "decoder.", "_ema.", "ema.", "proj.")


class ConversionError(ValueError):
    pass


def _spec_value(node: ast.AST):
    """fairseq's feature_encoder_spec is a Python expression of tuples, lists, + and *; the
    reference eval()s it. We accept only those forms (no names, no calls)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, int):
        return node.value
    if isinstance(node, ast.Tuple):
        return tuple(_spec_value(e) for e in node.elts)
    if isinstance(node, ast.List):
        return [_spec_value(e) for e in node.elts]
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add | ast.Mult):
        left, right = _spec_value(node.left), _spec_value(node.right)
        return left + right if isinstance(node.op, ast.Add) else left * right
    raise ConversionError(f"feature_encoder_spec: unsupported expression {ast.dump(node)}")


def parse_conv_spec(spec: str) -> tuple[tuple[int, int, int], ...]:
    layers = _spec_value(ast.parse(spec, mode="eval").body)
    if not isinstance(layers, list) or not all(isinstance(t, tuple) and len(t) == 3 for t in layers):
        raise ConversionError(f"feature_encoder_spec {spec!r}: expected a list of (channels, kernel, stride)")
    return tuple(layers)


def config_from_official(model_conf: dict, source: str = "config.yaml") -> Emotion2vecConfig:
    """Our config from the ``model_conf`` section of a release's config.yaml."""
    audio = (model_conf.get("modalities") or {}).get("audio")
    if audio is None:
        raise ConversionError(f"{source}: model_conf.modalities.audio is missing (not an emotion2vec config)")
    if audio.get("learned_alibi"):
        raise ConversionError(f"{source}: learned_alibi (a learned bias table) is not supported")
    try:
        return Emotion2vecConfig(
            embed_dim=model_conf["embed_dim"],
            num_heads=model_conf["num_heads"],
            prenet_depth=audio["prenet_depth"],
            depth=model_conf["depth"],
            mlp_ratio=model_conf["mlp_ratio"],
            norm_eps=float(model_conf["norm_eps"]),
            norm_affine=model_conf["norm_affine"],
            layer_norm_first=model_conf["layer_norm_first"],
            conv_layers=parse_conv_spec(audio["feature_encoder_spec"]),
            extractor_mode=audio["extractor_mode"],
            conv_pos_width=audio["conv_pos_width"],
            conv_pos_groups=audio["conv_pos_groups"],
            conv_pos_depth=audio["conv_pos_depth"],
            conv_pos_pre_ln=audio["conv_pos_pre_ln"],
            num_extra_tokens=audio["num_extra_tokens"],
            use_alibi=audio["use_alibi_encoder"],
            num_alibi_heads=audio["num_alibi_heads"],
            alibi_scale_per_head=audio["learned_alibi_scale_per_head"],
            alibi_scale_per_layer=audio["learned_alibi_scale_per_layer"],
            normalize=model_conf.get("normalize", True),
            encoder_dropout=model_conf["encoder_dropout"],
            attention_dropout=model_conf["attention_dropout"],
            activation_dropout=model_conf["activation_dropout"],
            post_mlp_drop=model_conf["post_mlp_drop"],
            prenet_dropout=audio["prenet_dropout"],
            dropout_input=model_conf["dropout_input"],
        )
    except KeyError as missing:
        raise ConversionError(f"{source}: model_conf lacks {missing}") from None


def key_map(cfg: Emotion2vecConfig) -> dict[str, str]:
    """Our parameter name -> the release's, for every tensor of our module."""
    m: dict[str, str] = {}
    for i in range(len(cfg.conv_layers)):
        src = f"{AUDIO}local_encoder.conv_layers.{i}."
        m[f"conv_layers.{i}.conv.weight"] = src + "0.weight"
        if cfg.extractor_mode == "layer_norm":  # conv, dropout, (transpose, LayerNorm, transpose), GELU
            m[f"conv_layers.{i}.norm.weight"] = src + "2.1.weight"
            m[f"conv_layers.{i}.norm.bias"] = src + "2.1.bias"
        elif i == 0:  # conv, dropout, GroupNorm, GELU
            m["conv_layers.0.norm.weight"] = src + "2.weight"
            m["conv_layers.0.norm.bias"] = src + "2.bias"
    for ours, theirs in (("feature_norm", "project_features.1"), ("feature_proj", "project_features.2")):
        for p in ("weight", "bias"):
            m[f"{ours}.{p}"] = f"{AUDIO}{theirs}.{p}"
    # relative_positional_encoder = Sequential(TransposeLast, *conv stacks, TransposeLast),
    # wrapped as Sequential(LayerNorm, that) when conv_pos_pre_ln.
    pos = f"{AUDIO}relative_positional_encoder."
    if cfg.conv_pos_pre_ln:
        m["pos_pre_norm.weight"], m["pos_pre_norm.bias"] = pos + "0.weight", pos + "0.bias"
        pos += "1."
    for j in range(cfg.conv_pos_depth):
        for p in ("weight", "bias"):
            m[f"pos_convs.{j}.{p}"] = f"{pos}{j + 1}.0.{p}"
    if cfg.num_extra_tokens:
        m["extra_tokens"] = AUDIO + "extra_tokens"
    if cfg.use_alibi:
        m["alibi_scale"] = AUDIO + "alibi_scale"
    if cfg.norm_affine:
        ours, theirs = (
            ("final_norm", "norm") if cfg.layer_norm_first else ("context_norm", AUDIO + "context_encoder.norm")
        )
        m[f"{ours}.weight"], m[f"{ours}.bias"] = f"{theirs}.weight", f"{theirs}.bias"
    block_params = {"norm1": "norm1", "norm2": "norm2", "attn.qkv": "attn.qkv", "attn.out_proj": "attn.proj",
                    "ffn.fc1": "mlp.fc1", "ffn.fc2": "mlp.fc2"}  # fmt: skip
    for i in range(cfg.num_blocks):
        src = f"{AUDIO}context_encoder.blocks.{i}." if i < cfg.prenet_depth else f"blocks.{i - cfg.prenet_depth}."
        for ours, theirs in block_params.items():
            if ours.startswith("norm") and not cfg.norm_affine:
                continue
            for p in ("weight", "bias"):
                m[f"blocks.{i}.{ours}.{p}"] = f"{src}{theirs}.{p}"
    return m


def _unwrap(obj, source: str) -> dict[str, torch.Tensor]:
    for key in ("model", "state_dict", "model_state_dict"):
        if isinstance(obj, dict) and key in obj and isinstance(obj[key], dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ConversionError(f"{source}: expected a state dict of tensors (bare or under 'model'/'state_dict')")
    return obj


def convert_state(state: dict[str, torch.Tensor], cfg: Emotion2vecConfig, source: str) -> dict[str, torch.Tensor]:
    """The release's tensors under our names, or an error listing every missing and unexpected key."""
    mapping = key_map(cfg)
    known = set(mapping.values())
    missing = sorted(theirs for theirs in known if theirs not in state)
    unexpected = sorted(k for k in state if k not in known and not k.startswith(DROPPED_PREFIXES))
    if missing or unexpected:
        raise ConversionError(
            f"{source} does not match its config.yaml: {len(missing)} missing keys {missing}; "
            f"{len(unexpected)} unexpected keys {unexpected}"
        )
    out = {ours: state[theirs] for ours, theirs in mapping.items()}
    if "alibi_scale" in out:
        # Stored as (layers or 1, 1, heads or 1, 1, 1) (older checkpoints drop the first dim).
        scale = out["alibi_scale"]
        out["alibi_scale"] = scale.reshape(-1 if cfg.alibi_scale_per_layer else 1, scale.shape[-3])
    return out


def load_official(release: str | Path) -> Emotion2vec:
    """Our module with the weights of a release folder (config.yaml + model.pt)."""
    release = Path(release)
    config_path, weights_path = release / "config.yaml", release / "model.pt"
    for path in (config_path, weights_path):
        if not path.is_file():
            raise FileNotFoundError(
                f"{path} not found: a release folder holds config.yaml and model.pt (docs/model.md)"
            )
    conf = yaml.safe_load(config_path.read_text())
    if not isinstance(conf, dict) or "model_conf" not in conf:
        raise ConversionError(f"{config_path}: no model_conf section")
    cfg = config_from_official(conf["model_conf"], str(config_path))
    try:
        obj = torch.load(weights_path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise ConversionError(
            f"{weights_path}: torch.load(weights_only=True) refused to unpickle it: {error}"
        ) from None
    state = _unwrap(obj, str(weights_path))
    model = Emotion2vec(cfg)
    converted = convert_state(state, cfg, str(weights_path))
    try:
        model.load_state_dict(converted, strict=True)
    except RuntimeError as error:  # a shape differs from config.yaml
        raise ConversionError(f"{weights_path}: {error}") from None
    return model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Convert an official emotion2vec release to config.json + model.safetensors."
    )
    parser.add_argument(
        "release", help="folder with config.yaml and model.pt (ModelScope iic/<name> or HF emotion2vec/<name>)"
    )
    parser.add_argument("out", help="output folder; set it as `emotion.path` with `emotion.kind: emotion2vec`")
    args = parser.parse_args(argv)
    try:
        model = load_official(args.release)
    except (ConversionError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    out = save_converted(model, args.out)
    params = sum(p.numel() for p in model.parameters())
    print(f"wrote {out} ({params / 1e6:.1f} M parameters, {model.cfg.num_blocks} blocks of {model.cfg.embed_dim})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
