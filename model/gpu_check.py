"""`make gpu-check`: bf16 training steps of the paper config's AudioLLM with random weights.

configs/paper.yaml's model (Whisper-large-v3 encoder, emotion2vec+ large, Gemma-2-9B with LoRA,
30 s window, 100 + 10 audio tokens, what trains per its `freeze:`) is built with random weights
from config dims written here (no download). For gradient checkpointing off and then on, and
for each batch size, it reports samples/s and peak GPU memory, stopping at the first batch size
that does not fit. ``--tiny`` runs the same code on CPU with tiny dims (proves the path without
a GPU).

    python -m model.gpu_check [--config configs/paper.yaml] [--batch-sizes 1,2,4,8,16] [--steps 5]
                              [--checkpointing off,on] [--decoder gemma-2-2b] [--tiny]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from transformers import Gemma2Config, Gemma2ForCausalLM, WhisperConfig
from transformers.models.whisper.modeling_whisper import WhisperEncoder

from model.audiollm import AudioLLM
from model.batch import IGNORE_INDEX, Batch
from model.config import AudioLLMConfig
from model.encoders.emotion2vec import SHAPES, Emotion2vec, Emotion2vecConfig, Emotion2vecFrames
from model.encoders.speech import WhisperFrames
from model.train.build import model_config

SR = 16_000
PAPER_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "paper.yaml"
# Dims from the public config files of the checkpoints (no download needed).
WHISPER_LARGE_V3 = dict(d_model=1280, encoder_layers=32, encoder_attention_heads=20, encoder_ffn_dim=5120,
                        num_mel_bins=128, max_source_positions=1500, vocab_size=51866, pad_token_id=50256,
                        bos_token_id=50257, eos_token_id=50257, decoder_start_token_id=50258)  # fmt: skip
EMOTION2VEC = {name: Emotion2vecConfig(**dims) for name, dims in SHAPES.items()}
GEMMA2 = {
    "gemma-2-9b": dict(vocab_size=256000, hidden_size=3584, intermediate_size=14336, num_hidden_layers=42,
                       num_attention_heads=16, num_key_value_heads=8, head_dim=256, query_pre_attn_scalar=256),
    "gemma-2-2b": dict(vocab_size=256000, hidden_size=2304, intermediate_size=9216, num_hidden_layers=26,
                       num_attention_heads=8, num_key_value_heads=4, head_dim=256, query_pre_attn_scalar=256),
}  # fmt: skip
TINY = {
    "whisper": dict(d_model=64, encoder_layers=2, encoder_attention_heads=2, encoder_ffn_dim=128, num_mel_bins=128,
                    max_source_positions=1500, vocab_size=100, pad_token_id=0, bos_token_id=1, eos_token_id=2,
                    decoder_start_token_id=1),
    "emotion2vec": Emotion2vecConfig(embed_dim=32, num_heads=2, prenet_depth=1, depth=1, num_alibi_heads=2,
                                     conv_layers=((32, 10, 5),) + ((32, 3, 2),) * 4 + ((32, 2, 2),) * 2,
                                     conv_pos_groups=2, conv_pos_depth=2, conv_pos_width=8),
    "gemma": dict(vocab_size=1000, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
                  num_key_value_heads=1, head_dim=32, query_pre_attn_scalar=32),
}  # fmt: skip
PROMPT_TOKENS = (24, 16)  # chat-template text before / after the audio (Gemma's turn markers + instruction)
ANSWER_TOKENS = 128  # a rationale of a few sentences


def emotion_shape(cfg: AudioLLMConfig) -> Emotion2vecConfig:
    """The emotion2vec shape the config's `emotion.path` names (e.g. checkpoints/emotion2vec_plus_large)."""
    if cfg.emotion.kind != "emotion2vec":
        raise ValueError(f"gpu-check builds emotion2vec encoders; the config's emotion.kind is {cfg.emotion.kind!r}")
    if cfg.emotion.init is not None:
        return Emotion2vecConfig(**cfg.emotion.init)
    for name, shape in EMOTION2VEC.items():
        if Path(cfg.emotion.path or "").name == name:
            return shape
    raise ValueError(f"emotion.path {cfg.emotion.path!r}: name one of {', '.join(EMOTION2VEC)} (its folder name)")


def build(
    cfg: AudioLLMConfig, tiny: bool = False, decoder_name: str = "gemma-2-9b", device: torch.device | str = "cpu"
) -> AudioLLM:
    """The AudioLLM of ``cfg`` with random weights of the real shapes (tiny ones with ``tiny``);
    on the meta device it allocates nothing (a shape check)."""
    whisper, emotion, gemma = (
        (TINY["whisper"], TINY["emotion2vec"], TINY["gemma"])
        if tiny
        else (WHISPER_LARGE_V3, emotion_shape(cfg), GEMMA2[decoder_name])
    )
    attn = cfg.decoder.attn_implementation or "eager"
    with torch.device(device):
        speech = WhisperFrames(WhisperEncoder(WhisperConfig(**whisper)))
        emotion_encoder = Emotion2vecFrames(Emotion2vec(emotion), cfg.sample_rate)
        previous = torch.get_default_dtype()
        torch.set_default_dtype(getattr(torch, cfg.decoder.dtype))  # initialise the 9B decoder directly in bf16
        try:
            decoder = Gemma2ForCausalLM(Gemma2Config(**gemma, attn_implementation=attn))
        finally:
            torch.set_default_dtype(previous)
        model = AudioLLM(cfg, speech_encoder=speech, emotion_encoder=emotion_encoder, decoder=decoder)
    return model


def make_batch(model: AudioLLM, batch_size: int, seconds: float, device: torch.device) -> Batch:
    n = int(seconds * SR)
    audio = model.counter(n)
    before, after = PROMPT_TOKENS
    length = before + audio + after + ANSWER_TOKENS
    vocab = model.decoder.get_input_embeddings().num_embeddings
    input_ids = torch.randint(0, vocab, (batch_size, length))
    audio_mask = torch.zeros(batch_size, length, dtype=torch.bool)
    audio_mask[:, before : before + audio] = True
    labels = torch.full_like(input_ids, IGNORE_INDEX)
    labels[:, -ANSWER_TOKENS:] = input_ids[:, -ANSWER_TOKENS:]
    return Batch(
        input_ids=input_ids,
        attention_mask=torch.ones_like(input_ids),
        audio_mask=audio_mask,
        waveforms=0.1 * torch.randn(batch_size, n),
        waveform_lengths=torch.full((batch_size,), n),
        labels=labels,
        ids=[f"random{i}" for i in range(batch_size)],
    ).to(device)


def measure(model: AudioLLM, batch_size: int, steps: int, seconds: float, device: torch.device) -> dict:
    params = [p for group in model.parameter_groups().values() for p in group]
    optimizer = torch.optim.AdamW(params, lr=5e-5)  # the paper's optimiser and learning rate
    batch = make_batch(model, batch_size, seconds, device)
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    timings = []
    for step in range(steps + 1):  # step 0 warms up (allocator, kernels)
        if cuda:
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.bfloat16):
            loss = model(batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if cuda:
            torch.cuda.synchronize(device)
        if step:
            timings.append(time.perf_counter() - start)
        if not torch.isfinite(loss):
            raise RuntimeError(f"non-finite loss {float(loss)} at batch size {batch_size}")
    return {
        "batch_size": batch_size,
        "samples_per_s": batch_size * len(timings) / sum(timings),
        "step_s": sum(timings) / len(timings),
        "peak_gib": torch.cuda.max_memory_allocated(device) / 2**30 if cuda else float("nan"),
        "tokens_per_sample": int(batch.attention_mask[0].sum()),
        "loss": float(loss.detach()),
    }


def set_checkpointing(model: AudioLLM, on: bool) -> None:
    if on:
        model.gradient_checkpointing_enable()
    else:
        model.decoder.gradient_checkpointing_disable()
        model.speech_encoder.gradient_checkpointing = False
        model.emotion_encoder.model.gradient_checkpointing = False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default=str(PAPER_CONFIG), help="its model: section (paths name the shapes)")
    parser.add_argument("--batch-sizes", default="1,2,4,8,16,32")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=4.0, help="clip length (the window is 30 s either way)")
    parser.add_argument("--decoder", choices=sorted(GEMMA2), default="gemma-2-9b")
    parser.add_argument(
        "--checkpointing", default="off,on", help="gradient checkpointing settings to measure, in order"
    )
    parser.add_argument("--tiny", action="store_true", help="tiny dims on CPU: checks the code path, no GPU needed")
    parser.add_argument("--out", default="runs/gpu_check/results.json")
    args = parser.parse_args(argv)
    settings = [s.strip() for s in args.checkpointing.split(",")]
    if not set(settings) <= {"off", "on"}:
        parser.error(f"--checkpointing: a list of off/on, got {args.checkpointing!r}")
    if not args.tiny and not torch.cuda.is_available():
        print("gpu-check needs a CUDA GPU (none found). Run `python -m model.gpu_check --tiny` to test the code path.")
        return 2
    device = torch.device("cpu" if args.tiny else "cuda")
    card = "cpu (tiny dims)" if args.tiny else torch.cuda.get_device_name(device)
    torch.manual_seed(0)
    cfg = model_config(args.config)
    model = build(cfg, args.tiny, args.decoder, device)
    model.train()
    trainable = sum(p.numel() for g in model.parameter_groups().values() for p in g)
    total = sum(p.numel() for p in model.parameters())
    print(f"{card}: {args.config}: {total / 1e9:.2f} B parameters, {trainable / 1e6:.1f} M trainable "
          f"(freeze: {cfg.freeze.model_dump()}); {model.counter(int(args.seconds * SR))} audio tokens per clip; bf16",
          flush=True)  # fmt: skip
    rows = []
    for setting in settings:
        set_checkpointing(model, setting == "on")
        for batch_size in (int(b) for b in args.batch_sizes.split(",")):
            try:
                row = measure(model, batch_size, args.steps, args.seconds, device)
            except torch.cuda.OutOfMemoryError:
                print(f"checkpointing {setting:>3}, batch {batch_size:>3}: out of memory; next setting")
                break
            finally:
                model.zero_grad(set_to_none=True)  # an out-of-memory step leaves gradients behind
                if device.type == "cuda":
                    torch.cuda.empty_cache()
            row["gradient_checkpointing"] = setting == "on"
            rows.append(row)
            print(f"checkpointing {setting:>3}, batch {row['batch_size']:>3}: {row['samples_per_s']:8.2f} samples/s  "
                  f"{row['step_s']:.3f} s/step  peak {row['peak_gib']:.1f} GiB  ({row['tokens_per_sample']} tokens/sample)",
                  flush=True)  # fmt: skip
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"device": card, "decoder": args.decoder, "args": vars(args), "rows": rows}, indent=2))
    print(f"wrote {out}")
    return 0 if rows else 1


if __name__ == "__main__":
    sys.exit(main())
