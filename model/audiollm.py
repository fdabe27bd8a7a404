"""The dual-encoder AudioLLM: Whisper encoder + paralinguistic encoder -> adapters -> fusion ->
placeholder positions of a causal LM's input embeddings (with LoRA).

    model = AudioLLM(config)                      # base weights by hub id / path / embedded:
    out = model(batch)                            # out.loss: mean over answer tokens
    model.set_trainable(["emotion_encoder", "emotion_adapter", "lora"])   # an emotion round
    texts = model.generate(batch, max_new_tokens=64)
    model.save_pretrained(d); AudioLLM.from_pretrained(d)
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
from peft import LoraConfig as PeftLoraConfig
from peft import inject_adapter_in_model
from pydantic import ValidationError
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import AutoModelForCausalLM, AutoTokenizer

from model.adapters import Adapter, TokenCounter, build_counter
from model.batch import IGNORE_INDEX, Batch
from model.config import AudioLLMConfig, CheckpointError, LoraConfig
from model.embedded import resolve_path
from model.encoders.base import FrameEncoder
from model.encoders.paralinguistic import LayerSelector
from model.encoders.registry import get_kind
from model.encoders.speech import WhisperFrames, whisper_spec_from_path
from model.features import level_waveforms
from model.fusion import fuse
from model.speaker_norm import UNKNOWN_SPEAKER, SpeakerMoments, SpeakerNorm

GROUPS = ("speech_encoder", "speech_adapter", "emotion_encoder", "emotion_adapter", "lora")
CONFIG_FILE, WEIGHTS_FILE = "audiollm_config.json", "audiollm.safetensors"


def _first_line(err: Exception) -> str:
    text = str(err).strip()
    if isinstance(err, ValidationError):  # "1 validation error for X\nfield\n  message": say field and message
        first = err.errors()[0]
        text = f"{'.'.join(str(p) for p in first['loc']) or 'file'}: {first['msg']}"
    return text.splitlines()[0] if text else type(err).__name__


LORA_MARKER = "lora_"  # peft names every LoRA parameter lora_A / lora_B / lora_embedding_*


@dataclass
class AudioLLMOutput:
    loss: torch.Tensor | None  # mean cross-entropy over answer tokens; None without labels
    logits: torch.Tensor  # (B, L, vocab); (answer tokens, vocab) when only the loss needs them
    audio_tokens: torch.Tensor  # (B,) audio tokens per clip


def token_counter(cfg: AudioLLMConfig) -> TokenCounter:
    """Audio tokens per clip from the config and checkpoint configs alone (no weights loaded)."""
    emotion_spec = get_kind(cfg.emotion.kind).frame_spec(cfg.emotion, cfg.sample_rate)
    return build_counter(cfg, whisper_spec_from_path(cfg.speech.path), emotion_spec)


def load_tokenizer(cfg: AudioLLMConfig):
    return AutoTokenizer.from_pretrained(resolve_path(cfg.decoder.path))


def _inject_lora(module: nn.Module, lora: LoraConfig) -> None:
    peft_cfg = PeftLoraConfig(
        r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout, target_modules=list(lora.target_modules)
    )
    inject_adapter_in_model(peft_cfg, module)


def _params(module: nn.Module, lora_only: bool = False) -> list[nn.Parameter]:
    return [p for name, p in module.named_parameters() if not lora_only or LORA_MARKER in name]


class AudioLLM(nn.Module):
    def __init__(
        self,
        config: AudioLLMConfig,
        *,
        speech_encoder: WhisperFrames | None = None,
        emotion_encoder: FrameEncoder | None = None,
        decoder: nn.Module | None = None,
        tokenizer=None,
    ):
        """Loads every component named in ``config``; pass modules to use them instead (random
        paper-sized weights in model/gpu_check.py). Without a tokenizer the model cannot generate."""
        super().__init__()
        self.config = cfg = config
        self.speech_encoder = speech_encoder or WhisperFrames.from_pretrained(cfg.speech.path)
        self.emotion_encoder = emotion_encoder or get_kind(cfg.emotion.kind).build(cfg.emotion, cfg.sample_rate)
        self.emotion_layers = LayerSelector(self.emotion_encoder.num_hidden_states, cfg.emotion.layer)
        if decoder is None:
            decoder = AutoModelForCausalLM.from_pretrained(
                resolve_path(cfg.decoder.path),
                dtype=getattr(torch, cfg.decoder.dtype),
                attn_implementation=cfg.decoder.attn_implementation,
            )
            tokenizer = tokenizer or load_tokenizer(cfg)
        self.decoder = decoder
        self.tokenizer = tokenizer
        self.counter = build_counter(cfg, self.speech_encoder.spec, self.emotion_encoder.spec)
        width = self.decoder.get_input_embeddings().embedding_dim
        emotion_width = round(width * cfg.fusion.emotion_width) if cfg.fusion.mode == "feature" else width
        speech_width = width - emotion_width if cfg.fusion.mode == "feature" else width
        self.speech_adapter = Adapter(
            self.speech_encoder.hidden_size,
            self.counter.speech.group,
            cfg.speech.grouping,
            cfg.adapter.speech_hidden,
            speech_width,
            self.counter.separators,
            cfg.adapter.input_norm,
        )
        self.emotion_adapter = Adapter(
            self.emotion_encoder.hidden_size,
            self.counter.emotion.group,
            cfg.emotion.grouping,
            cfg.adapter.emotion_hidden,
            emotion_width,
            self.counter.separators,
            cfg.adapter.input_norm,
        )
        # Per-speaker statistics of each layer a stream reads (buffers only: nothing here trains).
        self.speech_speaker_norm = self.emotion_speaker_norm = None
        if cfg.adapter.speaker_norm:
            self.speech_speaker_norm = SpeakerNorm(1, self.speech_encoder.hidden_size)
            layers = 1 if self._emotion_last_only else self.emotion_encoder.num_hidden_states
            self.emotion_speaker_norm = SpeakerNorm(layers, self.emotion_encoder.hidden_size)
        for p in self.parameters():
            p.requires_grad_(False)
        for encoder, mode, lora in (
            (self.speech_encoder, cfg.freeze.speech_encoder, cfg.speech.lora),
            (self.emotion_encoder, cfg.freeze.emotion_encoder, self._emotion_lora()),
        ):
            if mode == "lora":
                _inject_lora(encoder, lora)
        if cfg.freeze.decoder_lora:
            _inject_lora(self.decoder, cfg.decoder.lora)
        self._groups = self._build_groups()
        self.set_trainable(GROUPS)

    # ---- what trains ----

    def _emotion_lora(self) -> LoraConfig:
        cfg = self.config.emotion
        return cfg.lora or LoraConfig(target_modules=list(get_kind(cfg.kind).lora_targets))

    def _build_groups(self) -> dict[str, list[nn.Parameter]]:
        cfg = self.config.freeze

        def encoder(module: nn.Module, mode: str) -> list[nn.Parameter]:
            return [] if mode == "frozen" else _params(module, lora_only=mode == "lora")

        adapters = cfg.adapters
        return {
            "speech_encoder": encoder(self.speech_encoder, cfg.speech_encoder),
            "speech_adapter": _params(self.speech_adapter) if adapters else [],
            "emotion_encoder": encoder(self.emotion_encoder, cfg.emotion_encoder),
            # The layer weights are a learned read-out of the encoder: they train with its adapter.
            "emotion_adapter": _params(self.emotion_adapter) + _params(self.emotion_layers) if adapters else [],
            "lora": _params(self.decoder, lora_only=True) if cfg.decoder_lora else [],
        }

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """Parameters each group may train (empty where the FreezeConfig freezes it)."""
        return {name: list(params) for name, params in self._groups.items()}

    def set_trainable(self, groups: Iterable[str]) -> None:
        """Gradients for the named groups only (never for what the FreezeConfig freezes)."""
        groups = set(groups)
        unknown = groups - set(GROUPS)
        if unknown:
            raise ValueError(f"unknown parameter groups {sorted(unknown)}; known: {', '.join(GROUPS)}")
        for p in self.parameters():
            p.requires_grad_(False)
        for name in groups:
            for p in self._groups[name]:
                p.requires_grad_(True)

    def gradient_checkpointing_enable(self, gradient_checkpointing_kwargs: dict | None = None) -> None:
        """Recompute decoder layers and encoder blocks in backward (memory for time). Frozen
        encoders run without gradients and are unaffected."""
        kwargs = gradient_checkpointing_kwargs or {"use_reentrant": False}
        self.decoder.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
        for encoder in (self.speech_encoder, self.emotion_encoder):
            if hasattr(encoder, "gradient_checkpointing_enable"):
                encoder.gradient_checkpointing_enable()

    # ---- forward ----

    @staticmethod
    def _run(encoder: nn.Module, *args, **kwargs):
        # A frozen encoder keeps no activations for backward (most of the memory at 30 s windows).
        with torch.set_grad_enabled(torch.is_grad_enabled() and any(p.requires_grad for p in encoder.parameters())):
            return encoder(*args, **kwargs)

    @property
    def _emotion_last_only(self) -> bool:
        return self.config.emotion.layer in (-1, self.emotion_encoder.num_hidden_states - 1)

    def encoder_states(
        self, waveforms: torch.Tensor, lengths: torch.Tensor
    ) -> tuple[tuple[list[torch.Tensor], torch.Tensor], tuple[list[torch.Tensor], torch.Tensor]]:
        """The hidden states each stream reads (the speech stream its last layer, the emotion stream
        its last or all of them), each (B, T, D), with the valid frames per clip (B,)."""
        cfg = self.config
        waveforms = level_waveforms(waveforms, lengths, cfg.level)
        speech = self._run(self.speech_encoder, waveforms, lengths, cfg.speech.window)
        last_only = self._emotion_last_only
        emotion = self._run(self.emotion_encoder, waveforms, lengths, cfg.emotion.window, all_layers=not last_only)
        emotion_states = [emotion.hidden_states[-1]] if last_only else list(emotion.hidden_states)
        return ([speech.hidden_states[-1]], speech.lengths), (emotion_states, emotion.lengths)

    def encoder_frames(
        self, waveforms: torch.Tensor, lengths: torch.Tensor, speakers: list[str] | None = None
    ) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
        """What each adapter reads: (frames (B, T, D), valid frames (B,)) of the speech and the emotion
        stream. With ``adapter.speaker_norm`` each state is first z-scored by its clip's speaker
        (``speakers``: model.speaker_norm.speaker_key per clip; None or "" = pooled statistics)."""
        (speech, speech_valid), (emotion, emotion_valid) = self.encoder_states(waveforms, lengths)
        if self.speech_speaker_norm is not None:
            speakers = speakers if speakers else [UNKNOWN_SPEAKER] * len(lengths)
            speech = self.speech_speaker_norm(speech, speakers)
            emotion = self.emotion_speaker_norm(emotion, speakers)
        emotion_frames = emotion[0] if self._emotion_last_only else self.emotion_layers(tuple(emotion))
        return (speech[0], speech_valid), (emotion_frames, emotion_valid)

    def encode_audio(
        self, waveforms: torch.Tensor, lengths: torch.Tensor, speakers: list[str] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(sum of audio tokens, d) in clip order, and the tokens per clip (B,)."""
        cfg = self.config
        counts = [self.counter.stream_tokens(int(n)) for n in lengths.tolist()]
        speech_counts = torch.tensor([c[0] for c in counts], device=lengths.device)
        emotion_counts = torch.tensor([c[1] for c in counts], device=lengths.device)
        (speech_frames, speech_valid), (emotion_frames, emotion_valid) = self.encoder_frames(
            waveforms, lengths, speakers
        )
        speech_tokens = self.speech_adapter(speech_frames, speech_valid, speech_counts)  # (B, Ns, ds)
        emotion_tokens = self.emotion_adapter(emotion_frames, emotion_valid, emotion_counts)  # (B, Ne, de)
        audio = fuse(
            cfg.fusion.mode,
            speech_tokens,
            emotion_tokens,
            speech_counts,
            emotion_counts,
            self.speech_adapter,
            self.emotion_adapter,
        )
        totals = torch.tensor([self.counter(int(n)) for n in lengths.tolist()], device=lengths.device)
        return audio, totals

    @property
    def needs_input_norm(self) -> bool:
        return self.config.adapter.input_norm

    @property
    def needs_speaker_norm(self) -> bool:
        return self.config.adapter.speaker_norm

    @torch.no_grad()
    def fit_speaker_norm(self, batches: Iterable[Batch], pooled: bool) -> int:
        """Measure each speaker in ``batches`` (every valid frame of their clips, no labels) and add
        them to the table; ``pooled``: also set the fallback statistics from these clips (the
        trainer passes its training clips). Returns the clips seen."""
        if self.speech_speaker_norm is None:
            raise ValueError("adapter.speaker_norm is off in this model's config")
        moments = (SpeakerMoments(), SpeakerMoments())
        was_training = self.training
        self.eval()  # no dropout or SpecAugment masks in the statistics
        for batch in batches:
            for acc, (states, valid) in zip(
                moments, self.encoder_states(batch.waveforms, batch.waveform_lengths), strict=True
            ):
                acc.add(states, valid, batch.speakers or [UNKNOWN_SPEAKER] * len(batch))
        self.train(was_training)
        for norm, acc in zip((self.speech_speaker_norm, self.emotion_speaker_norm), moments, strict=True):
            table, (mean, std) = acc.stats()
            norm.table.update(table)
            if pooled:
                norm.set_pooled(mean, std)
        return moments[0].clips

    @torch.no_grad()
    def fit_input_norm(self, batches: Iterable[Batch]) -> int:
        """Each adapter's input mean and std over every valid frame of ``batches`` (the trainer
        passes a fixed sample of training clips); returns the clips seen. The emotion stream is
        read through the layer weights as they are now (uniform before training)."""
        if not self.needs_input_norm:
            raise ValueError("adapter.input_norm is off in this model's config")
        moments = (SpeakerMoments(), SpeakerMoments())  # every clip under one key: plain mean and spread
        was_training = self.training
        self.eval()  # no dropout or SpecAugment masks in the statistics
        for batch in batches:
            streams = self.encoder_frames(batch.waveforms, batch.waveform_lengths, batch.speakers)
            for acc, (frames, valid) in zip(moments, streams, strict=True):
                acc.add([frames], valid, [UNKNOWN_SPEAKER] * len(valid))
        self.train(was_training)
        if moments[0].clips == 0:
            raise ValueError("fit_input_norm: no clips")
        for adapter, acc in zip((self.speech_adapter, self.emotion_adapter), moments, strict=True):
            mean, std = acc.pooled()
            adapter.set_input_norm(mean[0], std[0])
        return moments[0].clips

    def embed(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Token embeddings with the audio scattered into the placeholder positions."""
        embeds = self.decoder.get_input_embeddings()(batch.input_ids)  # (B, L, d)
        audio, totals = self.encode_audio(batch.waveforms, batch.waveform_lengths, batch.speakers)
        placeholders = batch.audio_mask.sum(dim=1)
        for i, (have, want) in enumerate(zip(placeholders.tolist(), totals.tolist(), strict=True)):
            if have != want:
                raise ValueError(
                    f"row {i} ({batch.ids[i] if batch.ids else '?'}): {have} audio placeholder tokens in the "
                    f"input but the audio gives {want} audio tokens; build batches with this model's collator"
                )
        mask = batch.audio_mask[..., None].expand_as(embeds)
        return embeds.masked_scatter(mask, audio.to(embeds.dtype)), totals

    def forward(self, batch: Batch, all_logits: bool = False) -> AudioLLMOutput:
        """Logits and, when the batch has answers, the loss over them.

        With answers, the vocabulary projection runs only where an answer token is predicted
        (unless ``all_logits``): most positions are prompt and audio, and projecting them onto
        SmolLM2's 49k-word vocabulary was a fifth of a CPU training step's compute."""
        embeds, totals = self.embed(batch)
        positions = (batch.attention_mask.cumsum(-1) - 1).clamp(min=0)  # correct for left padding too
        has_answers = batch.labels is not None and bool((batch.labels != IGNORE_INDEX).any())
        keep = None
        if has_answers and not all_logits:
            # Token t predicts token t+1: keep t where t+1 is an answer token. A boolean mask
            # makes the decoder return the kept positions flattened, (answer tokens, vocab).
            keep = torch.zeros_like(batch.labels, dtype=torch.bool)
            keep[:, :-1] = batch.labels[:, 1:] != IGNORE_INDEX
        logits = self.decoder(
            inputs_embeds=embeds,
            attention_mask=batch.attention_mask,
            position_ids=positions,
            **({"logits_to_keep": keep} if keep is not None else {}),
        ).logits
        loss = None
        if keep is not None:
            loss = nn.functional.cross_entropy(logits.float(), batch.labels[:, 1:][keep[:, :-1]])
        elif has_answers:
            loss = nn.functional.cross_entropy(
                logits[:, :-1].flatten(0, 1).float(), batch.labels[:, 1:].flatten(), ignore_index=IGNORE_INDEX
            )
        return AudioLLMOutput(loss=loss, logits=logits, audio_tokens=totals)

    @torch.no_grad()
    def answer_logprobs(self, batch: Batch) -> torch.Tensor:
        """(B,) the summed log-probability of each row's answer tokens given its prompt and audio:
        scoring every label as the answer ranks them without generating (``emoreason eval
        --score-labels``)."""
        if batch.labels is None:
            raise ValueError("answer_logprobs needs rows with answers (training-style rows)")
        logits = self(batch).logits.float()  # (answer tokens, vocab), row-major over the batch
        predicts = batch.labels[:, 1:] != IGNORE_INDEX
        rows = predicts.nonzero()[:, 0]
        targets = batch.labels[:, 1:][predicts]
        token_logprobs = torch.log_softmax(logits, dim=-1).gather(1, targets[:, None])[:, 0]
        return torch.zeros(len(batch), device=logits.device).index_add_(0, rows, token_logprobs)

    @torch.no_grad()
    def generate(
        self,
        batch: Batch,
        max_new_tokens: int = 128,
        do_sample: bool = False,
        temperature: float = 1.0,
        top_p: float = 1.0,
        **generate_kwargs,
    ) -> list[str]:
        """Answers for a batch of prompts (or of training rows, whose answers are dropped)."""
        if self.tokenizer is None:
            raise ValueError("this AudioLLM was built without a tokenizer: it cannot decode generated text")
        embeds, _ = self.embed(batch)
        keep = batch.attention_mask.bool()
        if batch.labels is not None:
            keep &= batch.labels == IGNORE_INDEX  # the prompt: everything but the answer
        lengths = keep.sum(1)
        width = int(lengths.max())
        prompt = embeds.new_zeros(len(batch), width, embeds.shape[-1])
        mask = torch.zeros(len(batch), width, dtype=torch.long, device=embeds.device)
        for i, n in enumerate(lengths.tolist()):  # left-pad: generation appends on the right
            prompt[i, width - n :] = embeds[i, keep[i]]
            mask[i, width - n :] = 1
        sampling = {"temperature": temperature, "top_p": top_p} if do_sample else {}
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
        out = self.decoder.generate(
            inputs_embeds=prompt,
            attention_mask=mask,
            max_new_tokens=max_new_tokens,
            do_sample=do_sample,
            pad_token_id=pad,
            **sampling,
            **generate_kwargs,
        )
        return [text.strip() for text in self.tokenizer.batch_decode(out, skip_special_tokens=True)]

    # ---- save / load ----

    def _owned_state(self) -> dict[str, torch.Tensor]:
        """Weights not recoverable from the base checkpoints: trainable ones (any round), and a
        randomly initialised emotion encoder entirely."""
        trainable = {id(p) for params in self._groups.values() for p in params}
        state = {n: p for n, p in self.named_parameters() if id(p) in trainable}
        if self.config.emotion.init is not None:
            state.update({f"emotion_encoder.{n}": t for n, t in self.emotion_encoder.state_dict().items()})
        for name in ("speech_adapter", "emotion_adapter"):  # fitted input statistics (adapter.input_norm)
            state.update({f"{name}.{n}": b for n, b in getattr(self, name).named_buffers()})
        for name in ("speech_speaker_norm", "emotion_speaker_norm"):  # pooled statistics (adapter.speaker_norm)
            if getattr(self, name) is not None:
                state.update({f"{name}.{n}": b for n, b in getattr(self, name).named_buffers()})
        return {n: t.detach().cpu().contiguous() for n, t in state.items()}

    def save_pretrained(self, directory: str | Path) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        save_file(self._owned_state(), directory / WEIGHTS_FILE)
        (directory / CONFIG_FILE).write_text(json.dumps(self.config.model_dump(mode="json"), indent=2))
        return directory

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> AudioLLM:
        """Load a saved model. A folder that is not one (config not JSON or not this schema, weights
        missing or not safetensors, encoders its config names that cannot be loaded) raises
        CheckpointError with a one-line reason."""
        directory = Path(directory)
        try:
            config = AudioLLMConfig.model_validate_json((directory / CONFIG_FILE).read_text())
        except (OSError, ValidationError) as err:
            raise CheckpointError(f"{directory / CONFIG_FILE}: not an AudioLLM config: {_first_line(err)}") from err
        try:  # before building the model: a bad weights file is found without loading the encoders
            state = load_file(directory / WEIGHTS_FILE)
        except (OSError, SafetensorError) as err:
            raise CheckpointError(f"{directory / WEIGHTS_FILE}: not a safetensors file: {_first_line(err)}") from err
        try:
            model = cls(config)
        except (OSError, ValueError) as err:
            raise CheckpointError(f"{directory}: cannot build the model its config names: {_first_line(err)}") from err
        expected = set(model._owned_state())
        if set(state) != expected:
            raise CheckpointError(
                f"{directory}: checkpoint does not match its config: missing {sorted(expected - set(state))[:5]}, "
                f"unexpected {sorted(set(state) - expected)[:5]}"
            )
        model.load_state_dict(state, strict=False)
        return model
