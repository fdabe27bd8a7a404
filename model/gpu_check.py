"""`make gpu-check`: a few bf16 training steps of the paper-sized AudioLLM with random weights.

Whisper-large-v3 encoder + WavLM-large (the emotion2vec+ large stand-in) + Gemma-2-9B with LoRA,
built from config dims written here (no download), the paper's 30 s window and 100 + 10 audio
tokens. For each batch size it reports samples/s and peak GPU memory, stopping at the first that
does not fit. ``--tiny`` runs the same code on CPU with tiny dims (proves the path without a GPU).

    python -m model.gpu_check [--batch-sizes 1,2,4,8,16] [--steps 5] [--decoder gemma-2-2b] [--tiny]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from transformers import Gemma2Config, Gemma2ForCausalLM, WavLMConfig, WavLMModel, WhisperConfig
from transformers.models.whisper.modeling_whisper import WhisperEncoder

from model.audiollm import AudioLLM
from model.batch import IGNORE_INDEX, Batch
from model.config import AudioLLMConfig
from model.encoders.paralinguistic import WaveformFrames
from model.encoders.speech import WhisperFrames

SR = 16_000
# Dims from the public config.json files of the checkpoints (no download needed).
WHISPER_LARGE_V3 = dict(d_model=1280, encoder_layers=32, encoder_attention_heads=20, encoder_ffn_dim=5120,
                        num_mel_bins=128, max_source_positions=1500, vocab_size=51866)  # fmt: skip
WAVLM_LARGE = dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096,
                   conv_dim=[512] * 7, feat_extract_norm="layer", do_stable_layer_norm=True,
                   num_buckets=320, max_bucket_distance=800)  # fmt: skip
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
    "wavlm": dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, conv_dim=[32] * 7,
                  num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2, feat_extract_norm="layer",
                  do_stable_layer_norm=True, num_buckets=16, max_bucket_distance=64),
    "gemma": dict(vocab_size=1000, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
                  num_key_value_heads=1, head_dim=32, query_pre_attn_scalar=32),
}  # fmt: skip
PROMPT_TOKENS = (24, 16)  # chat-template text before / after the audio (Gemma's turn markers + instruction)
ANSWER_TOKENS = 128  # a rationale of a few sentences


def build(tiny: bool, decoder_name: str, device: torch.device) -> AudioLLM:
    cfg = AudioLLMConfig.model_validate(
        {
            "speech": {"path": "random:whisper-large-v3", "window": "fixed"},
            "emotion": {"kind": "wavlm", "path": "random:wavlm-large", "window": "fixed"},
            "decoder": {"path": f"random:{decoder_name}", "dtype": "bfloat16", "attn_implementation": "eager"},
        }
    )
    whisper = {**WHISPER_LARGE_V3, "pad_token_id": 50256, "bos_token_id": 50257, "eos_token_id": 50257,
               "decoder_start_token_id": 50258}  # fmt: skip
    whisper, wavlm, gemma = (
        (TINY["whisper"], TINY["wavlm"], TINY["gemma"]) if tiny else (whisper, WAVLM_LARGE, GEMMA2[decoder_name])
    )
    with device:
        speech = WhisperFrames(WhisperEncoder(WhisperConfig(**whisper)))
        emotion = WaveformFrames(WavLMModel(WavLMConfig(**wavlm)), SR, normalize=True)
        previous = torch.get_default_dtype()
        torch.set_default_dtype(torch.bfloat16)  # initialise the 9B decoder directly in bf16
        try:
            decoder = Gemma2ForCausalLM(Gemma2Config(**gemma, attn_implementation="eager"))
        finally:
            torch.set_default_dtype(previous)
        model = AudioLLM(cfg, speech_encoder=speech, emotion_encoder=emotion, decoder=decoder)
    return model.to(device)


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-sizes", default="1,2,4,8,16,32")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=4.0, help="clip length (the window is 30 s either way)")
    parser.add_argument("--decoder", choices=sorted(GEMMA2), default="gemma-2-9b")
    parser.add_argument("--gradient-checkpointing", action="store_true")
    parser.add_argument("--tiny", action="store_true", help="tiny dims on CPU: checks the code path, no GPU needed")
    parser.add_argument("--out", default="runs/gpu_check/results.json")
    args = parser.parse_args(argv)
    if not args.tiny and not torch.cuda.is_available():
        print("gpu-check needs a CUDA GPU (none found). Run `python -m model.gpu_check --tiny` to test the code path.")
        return 2
    device = torch.device("cpu" if args.tiny else "cuda")
    card = "cpu (tiny dims)" if args.tiny else torch.cuda.get_device_name(device)
    torch.manual_seed(0)
    model = build(args.tiny, args.decoder, device)
    model.train()
    if args.gradient_checkpointing:
        model.decoder.gradient_checkpointing_enable()
    trainable = sum(p.numel() for g in model.parameter_groups().values() for p in g)
    total = sum(p.numel() for p in model.parameters())
    print(f"{card}: {total / 1e9:.2f} B parameters, {trainable / 1e6:.1f} M trainable; "
          f"{model.counter(int(args.seconds * SR))} audio tokens per clip", flush=True)  # fmt: skip
    rows = []
    for batch_size in (int(b) for b in args.batch_sizes.split(",")):
        try:
            row = measure(model, batch_size, args.steps, args.seconds, device)
        except torch.cuda.OutOfMemoryError:
            print(f"batch {batch_size}: out of memory; stopping")
            break
        finally:
            if device.type == "cuda":
                torch.cuda.empty_cache()
        rows.append(row)
        print(f"batch {row['batch_size']:>3}: {row['samples_per_s']:8.2f} samples/s  {row['step_s']:.3f} s/step  "
              f"peak {row['peak_gib']:.1f} GiB  ({row['tokens_per_sample']} tokens/sample)", flush=True)  # fmt: skip
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"device": card, "decoder": args.decoder, "args": vars(args), "rows": rows}, indent=2))
    print(f"wrote {out}")
    return 0 if rows else 1


if __name__ == "__main__":
    sys.exit(main())
