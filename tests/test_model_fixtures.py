"""Tiny random checkpoints for the model tests, written like real ones and loaded by path.

Whisper: width 32, 2 layers, 150 positions (a 3 s window: fast on CPU, same code paths as the
30 s one). Decoder: a 2-layer Llama of width 64 with a byte-level BPE tokenizer trained here on
a few sentences and a ChatML chat template. Emotion encoder: a random WavLM or Whisper from a
config dict (no weights). No file leaves tmp_path; nothing is downloaded.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
    WhisperConfig,
    WhisperForConditionalGeneration,
)

from model.config import AudioLLMConfig

SR = 16_000
CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
CORPUS = [
    "What emotion does the speaker express? The speaker sounds angry because the voice is loud.",
    "Transcribe the audio. I left the keys on the kitchen table.",
    "neutral calm happy sad angry fearful disgust surprised",
]
TINY_WHISPER = dict(
    d_model=32, encoder_layers=2, decoder_layers=1, encoder_attention_heads=2, decoder_attention_heads=2,
    encoder_ffn_dim=64, decoder_ffn_dim=64, num_mel_bins=80, max_source_positions=150, max_target_positions=32,
    vocab_size=64, pad_token_id=0, bos_token_id=1, eos_token_id=2, decoder_start_token_id=1,
)  # fmt: skip
TINY_WAVLM = dict(
    hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, conv_dim=[32] * 7,
    num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2, num_buckets=16, max_bucket_distance=64,
    feat_extract_norm="layer", do_stable_layer_norm=True,  # as wavlm-large: padding-independent outputs
)  # fmt: skip


def tiny_tokenizer(directory: Path) -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = ["<unk>", "<pad>", "<|im_start|>", "<|im_end|>"]
    trainer = trainers.BpeTrainer(
        vocab_size=320, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(CORPUS, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>", eos_token="<|im_end|>")
    fast.chat_template = CHATML
    fast.save_pretrained(directory)
    return fast


def write_tiny_checkpoints(root: Path) -> tuple[Path, Path]:
    """(whisper dir, decoder dir), created once per root."""
    whisper_dir, decoder_dir = root / "whisper", root / "decoder"
    if not whisper_dir.exists():
        torch.manual_seed(0)
        WhisperForConditionalGeneration(WhisperConfig(**TINY_WHISPER)).save_pretrained(whisper_dir)
        tok = tiny_tokenizer(decoder_dir)
        cfg = LlamaConfig(
            vocab_size=len(tok), hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
            intermediate_size=128, max_position_embeddings=512, pad_token_id=tok.pad_token_id,
            eos_token_id=tok.eos_token_id, bos_token_id=None, tie_word_embeddings=True,
        )  # fmt: skip
        LlamaForCausalLM(cfg).save_pretrained(decoder_dir)
    return whisper_dir, decoder_dir


def tiny_config(root: Path, **changes) -> AudioLLMConfig:
    """A tiny AudioLLMConfig; ``changes`` are dotted keys, e.g. {"fusion.mode": "feature"}."""
    whisper_dir, decoder_dir = write_tiny_checkpoints(root)
    tree = {
        "speech": {"path": str(whisper_dir), "window": "variable", "tokens_per_30s": 100},
        "emotion": {"kind": "wavlm", "path": None, "init": TINY_WAVLM, "tokens_per_30s": 30, "window": "variable"},
        "adapter": {"speech_hidden": [48, 48], "emotion_hidden": [32, 32]},
        "decoder": {"path": str(decoder_dir), "dtype": "float32", "lora": {"r": 4, "alpha": 8, "dropout": 0.0}},
        "freeze": {"speech_encoder": "lora", "emotion_encoder": "full"},
    }
    for key, value in changes.items():
        *parents, leaf = key.split(".")
        node = tree
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return AudioLLMConfig.model_validate(tree)


def tone(seconds: float, freq: float = 220.0, seed: int = 0) -> np.ndarray:
    """A voiced-like test signal: a tone with harmonics and a little noise."""
    t = np.arange(int(seconds * SR)) / SR
    rng = np.random.default_rng(seed)
    wave = sum(np.sin(2 * np.pi * freq * k * t) / k for k in range(1, 4)) * 0.2 + 0.01 * rng.standard_normal(t.size)
    return wave.astype(np.float32)
