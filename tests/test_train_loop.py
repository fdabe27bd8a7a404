"""The training loop on CPU: gradients per round, exact resume, NaN guard, preflight errors.

A tiny stand-in with the AudioLLM's training contract (parameter_groups / set_trainable /
forward(batch).loss / generate) keeps these tests fast and independent of model weights.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from torch import nn

from model.schedule import EMOTION_GROUPS, SPEECH_GROUPS
from model.train.config import TrainConfig
from model.train.distributed import PreflightError
from model.train.trainer import NonFiniteLossError, train
from pipeline.records import Task, TrainingExample

FRAME = 160  # stand-in features: 10 ms frames of raw samples
WIDTH = 16
VOCAB = 128  # ASCII bytes


@dataclass
class Item:
    example: TrainingExample
    waveform: np.ndarray


@dataclass
class Batch:
    frames: torch.Tensor  # (B, T, FRAME)
    input_ids: torch.Tensor  # (B, L)
    labels: torch.Tensor  # (B, L), -100 outside the answer
    attention_mask: torch.Tensor  # (B, L)

    def to(self, device):
        return Batch(*(t.to(device) for t in (self.frames, self.input_ids, self.labels, self.attention_mask)))


def collate(items: list[Item]) -> Batch:
    n_frames = max(len(i.waveform) // FRAME for i in items)
    frames = torch.zeros(len(items), n_frames, FRAME)
    rows = []
    for b, item in enumerate(items):
        w = torch.from_numpy(item.waveform[: len(item.waveform) // FRAME * FRAME]).view(-1, FRAME)
        frames[b, : len(w)] = w
        prompt = [ord(c) % VOCAB for c in item.example.instruction[:4]]
        answer = [ord(c) % VOCAB for c in item.example.target]
        rows.append((prompt, answer))
    length = max(len(p) + len(a) for p, a in rows)
    ids = torch.zeros(len(items), length, dtype=torch.long)
    labels = torch.full((len(items), length), -100)
    mask = torch.zeros(len(items), length, dtype=torch.long)
    for b, (p, a) in enumerate(rows):
        ids[b, : len(p) + len(a)] = torch.tensor(p + a)
        labels[b, len(p) : len(p) + len(a)] = torch.tensor(a)
        mask[b, : len(p) + len(a)] = 1
    return Batch(frames, ids, labels, mask)


@dataclass
class Output:
    loss: torch.Tensor
    logits: torch.Tensor


class StandIn(nn.Module):
    def __init__(self, dropout: float = 0.1):
        super().__init__()
        torch.manual_seed(0)
        self.speech_encoder = nn.Linear(FRAME, WIDTH)
        self.emotion_encoder = nn.Linear(FRAME, WIDTH)
        self.speech_adapter = nn.Linear(WIDTH, WIDTH)
        self.emotion_adapter = nn.Linear(WIDTH, WIDTH)
        self.embed = nn.Embedding(VOCAB, WIDTH)  # frozen "decoder"
        self.lora = nn.Linear(WIDTH, WIDTH)
        self.head = nn.Linear(WIDTH, VOCAB)
        self.dropout = nn.Dropout(dropout)  # so that resume must restore the RNG
        self.embed.requires_grad_(False)
        self.head.requires_grad_(False)
        self.poison = False
        self.crash_after: int | None = None  # forward calls before a simulated crash (a killed job)

    def parameter_groups(self):
        return {name: list(getattr(self, name).parameters()) for name in sorted(SPEECH_GROUPS | EMOTION_GROUPS)}

    def set_trainable(self, groups):
        for name, params in self.parameter_groups().items():
            for p in params:
                p.requires_grad_(name in groups)

    def forward(self, batch: Batch) -> Output:
        if self.crash_after is not None:
            if self.crash_after == 0:
                raise KeyboardInterrupt("simulated crash")
            self.crash_after -= 1
        audio = batch.frames.mean(1)  # (B, FRAME)
        a = self.speech_adapter(torch.tanh(self.speech_encoder(audio))) + self.emotion_adapter(
            torch.tanh(self.emotion_encoder(audio))
        )  # (B, W)
        h = self.embed(batch.input_ids) + a[:, None, :]  # (B, L, W)
        logits = self.head(self.dropout(h + self.lora(h)))  # (B, L, V)
        loss = nn.functional.cross_entropy(logits[:, :-1].reshape(-1, VOCAB), batch.labels[:, 1:].reshape(-1))
        if self.poison:
            loss = loss * float("nan")
        return Output(loss, logits)

    def generate(self, batch: Batch, max_new_tokens: int = 8) -> list[str]:
        ids = self(batch).logits.argmax(-1)
        return ["".join(chr(int(t)) for t in row[:max_new_tokens]) for row in ids]


def make_corpus(root: Path, n_train: int = 24, n_dev: int = 8) -> list[TrainingExample]:
    rng = np.random.default_rng(0)
    examples = []
    for i in range(n_train + n_dev):
        seconds = 0.2 + 0.05 * (i % 7)
        path = root / f"clip{i}.wav"
        sf.write(path, (0.1 * rng.standard_normal(int(16000 * seconds))).astype(np.float32), 16000)
        task = Task.asr if i % 2 else Task.emotion_recognition
        target = "hello there" if task == Task.asr else ["angry", "sad"][i % 4 // 2]
        examples.append(
            TrainingExample(
                id=f"ex{i}",
                task=task,
                instruction="What?",
                target=target,
                audio_path=str(path),
                utterance_id=f"u{i}",
                dataset="synthetic",
                split="train" if i < n_train else "dev",
                speaker=f"s{i % 3}",
                emotion="angry" if target == "angry" else "sad",
                label_protocol="ravdess8",
                duration_s=seconds,
            )
        )
    return examples


def config(tmp_path: Path, **kw) -> TrainConfig:
    base = dict(
        out=str(tmp_path / "run"),
        device="cpu",
        global_batch_size=4,
        micro_batch_size=2,
        epochs=2,
        num_workers=0,
        log_every=2,
        eval_every=100,
        save_every=3,
        keep_last=2,
        tensorboard=False,
        progress=False,
        optim={"lr": 1e-2, "warmup_steps": 2},
    )
    return TrainConfig.model_validate({**base, **kw})


@pytest.fixture
def corpus(tmp_path) -> list[TrainingExample]:
    (tmp_path / "audio").mkdir()
    return make_corpus(tmp_path / "audio")


def test_only_the_rounds_groups_change(tmp_path, corpus):
    """Alternating: speech steps leave the emotion branch untouched and vice versa; LoRA always trains."""
    model = StandIn()
    start = {n: p.detach().clone() for n, p in model.named_parameters()}
    cfg = config(tmp_path, max_steps=3, schedule={"mode": "alternating", "first_round": "speech"}, eval_split=None)
    result = train(cfg, model, collate, corpus, item_type=Item)
    assert result.tasks == ["asr"] * 3  # the first round is a speech round of 3 batches
    changed = {n.split(".")[0] for n, p in model.named_parameters() if not torch.equal(p, start[n])}
    assert changed == {"speech_encoder", "speech_adapter", "lora"}


def test_loss_falls_and_logs_per_task(tmp_path, corpus):
    cfg = config(tmp_path, epochs=6, schedule={"mode": "joint"}, eval_every=12)
    result = train(cfg, StandIn(), collate, corpus, item_type=Item)
    assert result.steps == 6 * 6
    assert np.mean(result.losses[-6:]) < np.mean(result.losses[:6])
    records = [json.loads(line) for line in (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()]
    train_records = [r for r in records if "loss" in r]
    assert {"loss/asr", "loss/emotion_recognition", "grad_norm/asr", "tokens/asr", "samples_per_s"} <= set(
        train_records[-1]
    ) | set(train_records[-2])
    assert any("eval/loss/asr" in r and "eval/accuracy/emotion_recognition" in r for r in records)
    assert (tmp_path / "run" / "checkpoints").is_dir() and len(list((tmp_path / "run" / "checkpoints").iterdir())) == 2


# Losses of the first steps of an alternating run, recorded from the loop before it was split into
# named pieces (issue 18): a change to the step, the schedule or the data order moves them.
ALTERNATING_LOSSES = [5.2002163, 5.1944063, 5.0299489, 5.3293893, 4.8493729, 5.0907598, 4.9117039]


def test_losses_match_stored_values(tmp_path, corpus):
    cfg = config(tmp_path, max_steps=7, schedule={"mode": "alternating", "first_round": "speech"}, eval_split=None)
    result = train(cfg, StandIn(), collate, corpus, item_type=Item)
    assert result.tasks == ["asr"] * 3 + ["emotion_recognition"] * 4
    np.testing.assert_allclose(result.losses, ALTERNATING_LOSSES, rtol=1e-4)


def test_log_window_is_the_token_weighted_mean_of_its_steps(tmp_path, corpus):
    """A line every 4 steps holds the same numbers as four lines of one step each, pooled by tokens."""
    kw = {"max_steps": 8, "schedule": {"mode": "joint"}, "eval_split": None}

    def log(run: str, every: int) -> tuple[list[float], list[dict]]:
        result = train(config(tmp_path / run, log_every=every, **kw), StandIn(), collate, corpus, item_type=Item)
        lines = (tmp_path / run / "run" / "train_log.jsonl").read_text().splitlines()
        return result.losses, [json.loads(line) for line in lines]

    losses, steps = log("steps", 1)
    _, windows = log("windows", 4)
    assert [r["loss"] for r in steps] == pytest.approx(losses)  # a one-step window holds that step's loss
    assert [w["step"] for w in windows] == [4, 8]
    for window, group in zip(windows, (steps[:4], steps[4:]), strict=True):
        tasks = {k.removeprefix("steps/") for r in group for k in r if k.startswith("steps/")}
        assert sum(window[f"steps/{t}"] for t in tasks) == 4
        for t in tasks:
            mine = [r for r in group if f"loss/{t}" in r]
            tokens = sum(r[f"tokens/{t}"] for r in mine)
            assert window[f"tokens/{t}"] == tokens and window[f"steps/{t}"] == len(mine)
            assert window[f"loss/{t}"] == pytest.approx(sum(r[f"loss/{t}"] * r[f"tokens/{t}"] for r in mine) / tokens)
            assert window[f"grad_norm/{t}"] == pytest.approx(sum(r[f"grad_norm/{t}"] for r in mine) / len(mine))
        all_tokens = sum(r[f"tokens/{t}"] for r in group for t in tasks if f"tokens/{t}" in r)
        pooled = sum(r["loss"] * r[f"tokens/{t}"] for r in group for t in tasks if f"tokens/{t}" in r) / all_tokens
        assert window["loss"] == pytest.approx(pooled)
        assert window["audio_padding"] == pytest.approx(np.mean([r["audio_padding"] for r in group]))
        assert window["token_padding"] == pytest.approx(np.mean([r["token_padding"] for r in group]))


@pytest.mark.parametrize(("mode", "workers"), [("alternating", 0), ("weighted", 2)])
def test_resume_gives_the_same_losses(tmp_path, corpus, mode, workers):
    """Killed in step 5 (last checkpoint after step 3) and resumed == one uninterrupted run; with
    worker processes the loader runs ahead of training, and the checkpoint must not follow it."""
    kw = {"schedule": {"mode": mode}, "num_workers": workers}
    full = train(config(tmp_path / "a", **kw), StandIn(), collate, corpus, item_type=Item)
    crashing = StandIn()
    crashing.crash_after = 9  # 4 steps x 2 micro-batches, then dies inside step 5
    with pytest.raises(KeyboardInterrupt):
        train(config(tmp_path / "b", **kw), crashing, collate, corpus, item_type=Item)
    tail = train(config(tmp_path / "b", **kw), StandIn(), collate, corpus, item_type=Item, resume=True)
    assert tail.steps == full.steps and len(tail.losses) == full.steps - 3
    assert tail.tasks == full.tasks[3:]
    np.testing.assert_allclose(tail.losses, full.losses[3:], rtol=1e-6, atol=1e-7)


def test_nan_loss_stops_with_last_good_checkpoint(tmp_path, corpus):
    model = StandIn()
    cfg = config(tmp_path, max_steps=3, eval_split=None)
    train(cfg, model, collate, corpus, item_type=Item)
    model.poison = True
    with pytest.raises(NonFiniteLossError, match=r"non-finite loss at step 3 .*Last good checkpoint: .*step-000003"):
        train(config(tmp_path, eval_split=None), model, collate, corpus, item_type=Item, resume=True)
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_nan_on_first_step_saves_the_initial_state(tmp_path, corpus):
    model = StandIn()
    model.poison = True
    with pytest.raises(NonFiniteLossError, match="step-000000"):
        train(config(tmp_path, eval_split=None), model, collate, corpus, item_type=Item)


def test_preflight_errors(tmp_path, corpus):
    with pytest.raises(PreflightError, match="'sentiment' is in the schedule but has no 'train' examples"):
        train(config(tmp_path, tasks=["asr", "sentiment"]), StandIn(), collate, corpus, item_type=Item)
    with pytest.raises(PreflightError, match="fewer than one global batch"):
        train(config(tmp_path, global_batch_size=16, micro_batch_size=2), StandIn(), collate, corpus, item_type=Item)
    with pytest.raises(PreflightError, match="no examples in split 'nope'"):
        train(config(tmp_path, train_split="nope"), StandIn(), collate, corpus, item_type=Item)
    if not torch.cuda.is_available():
        with pytest.raises(PreflightError, match="asks for device: cuda but torch sees no CUDA GPU"):
            train(config(tmp_path, device="cuda"), StandIn(), collate, corpus, item_type=Item)


def test_lr_warmup_then_cosine():
    from model.train.optim import warmup_cosine

    values = [warmup_cosine(s, 100, 10, 0.1) for s in range(100)]
    assert values[0] == pytest.approx(0.1) and values[9] == pytest.approx(1.0)
    assert values[10] == pytest.approx(1.0) and values[-1] == pytest.approx(0.1, abs=1e-3)
    assert all(a >= b for a, b in zip(values[10:], values[11:], strict=False)) and not any(
        math.isnan(v) for v in values
    )


class AutocastProbe(StandIn):
    """Records whether each training forward ran under CPU bf16 autocast."""

    def __init__(self):
        super().__init__()
        self.autocast: list[bool] = []

    def forward(self, batch: Batch) -> Output:
        out = super().forward(batch)
        if self.training:
            self.autocast.append(torch.is_autocast_enabled("cpu") and out.logits.dtype == torch.bfloat16)
        return out


@pytest.mark.parametrize(("cpu_bf16", "expected"), [(True, True), (False, False)])
def test_cpu_bf16_autocast_only_when_asked(tmp_path, corpus, cpu_bf16, expected):
    model = AutocastProbe()
    cfg = config(tmp_path, max_steps=2, precision="bf16", cpu_bf16=cpu_bf16, eval_split=None)
    result = train(cfg, model, collate, corpus, item_type=Item)
    assert model.autocast and set(model.autocast) == {expected}
    assert all(np.isfinite(result.losses))
    assert all(p.dtype == torch.float32 for p in model.parameters())  # weights stay fp32
