"""The trainer with the real AudioLLM (tiny random checkpoints written in tmp, loaded by path)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml
from test_model_fixtures import SR, tiny_config, tone

from model.audiollm import AudioLLM
from model.commands import train as train_command
from model.train.build import build_model
from model.train.config import TrainConfig
from model.train.distributed import PreflightError
from model.train.trainer import train
from pipeline.parquet import write_records
from pipeline.records import Task, TrainingExample

EMOTIONS = ("angry", "sad")


def make_corpus(root: Path, n_train: int = 8, n_dev: int = 2) -> list[TrainingExample]:
    root.mkdir(parents=True, exist_ok=True)
    examples = []
    for i in range(n_train + n_dev):
        emotion = EMOTIONS[i % 2]
        seconds = 0.6 + 0.1 * (i % 4)
        path = root / f"clip{i}.wav"
        sf.write(path, tone(seconds, freq=330.0 if emotion == "angry" else 150.0, seed=i), SR)
        for task, instruction, target in (
            (Task.emotion_recognition, "Which emotion do you hear?", emotion),
            (Task.asr, "Transcribe the audio.", "the keys are on the table"),
        ):
            examples.append(
                TrainingExample(
                    id=f"u{i}#{task.value}", task=task, instruction=instruction, target=target, audio_path=str(path),
                    utterance_id=f"u{i}", dataset="synthetic", split="train" if i < n_train else "dev",
                    speaker=f"s{i % 4}", emotion=emotion, label_protocol="ravdess8", duration_s=seconds,
                )
            )  # fmt: skip
    return examples


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("audiollm")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: threads only add contention
    yield tiny_config(root / "ckpt"), make_corpus(root / "audio")
    torch.set_num_threads(threads)


def fresh(model_cfg):
    """Model and collator, initialised from a fixed seed (a run and its resumption share the init)."""
    torch.manual_seed(0)
    return build_model(model_cfg)[:2]


def config(out: Path, **kw) -> TrainConfig:
    base = dict(
        out=str(out), device="cpu", global_batch_size=4, micro_batch_size=2, epochs=1, num_workers=0,
        log_every=2, eval_every=100, save_every=2, keep_last=2, tensorboard=False, progress=False,
        eval_max_new_tokens=4, optim={"lr": 1e-3, "warmup_steps": 1},
    )  # fmt: skip
    return TrainConfig.model_validate({**base, **kw})


def kill_after_forwards(model: AudioLLM, n: int) -> None:
    """Make the model's forward raise KeyboardInterrupt (a simulated kill) after ``n`` calls."""
    calls, forward = {"n": 0}, model.forward

    def crashing(batch):
        calls["n"] += 1
        if calls["n"] > n:
            raise KeyboardInterrupt("simulated kill")
        return forward(batch)

    model.forward = crashing


def snapshot(model: AudioLLM) -> dict[str, dict[str, torch.Tensor]]:
    return {g: {str(i): p.detach().clone() for i, p in enumerate(ps)} for g, ps in model.parameter_groups().items()}


def test_alternating_rounds_update_only_their_branch(setup, tmp_path):
    model_cfg, corpus = setup
    model, collate = fresh(model_cfg)
    before = snapshot(model)
    cfg = config(tmp_path, max_steps=2, eval_split=None, schedule={"mode": "alternating", "final_joint_epochs": 0})
    result = train(cfg, model, collate, corpus)
    assert result.tasks == ["asr"] * 2  # a speech round of one epoch (8 examples / 4)
    after = snapshot(model)
    moved = {g for g in before if any(not torch.equal(before[g][k], after[g][k]) for k in before[g])}
    assert moved == {"speech_encoder", "speech_adapter", "lora"}  # the emotion branch is frozen

    cfg = config(
        tmp_path / "b", max_steps=3, eval_split=None, schedule={"mode": "alternating", "final_joint_epochs": 0}
    )
    model, collate = fresh(model_cfg)
    result = train(cfg, model, collate, corpus)
    assert result.tasks == ["asr", "asr", "emotion_recognition"]
    mid = snapshot(model)
    assert any(not torch.equal(before["emotion_adapter"][k], mid["emotion_adapter"][k]) for k in mid["emotion_adapter"])


def test_resume_exact_with_the_real_model(setup, tmp_path):
    model_cfg, corpus = setup
    kw = dict(schedule={"mode": "joint"}, eval_every=3, epochs=2)
    full = train(config(tmp_path / "a", **kw), *fresh(model_cfg), corpus)
    model, collate = fresh(model_cfg)
    kill_after_forwards(model, 5)  # dies in step 3; the last checkpoint is after step 2
    with pytest.raises(KeyboardInterrupt):
        train(config(tmp_path / "b", **kw), model, collate, corpus)
    tail = train(config(tmp_path / "b", **kw), *fresh(model_cfg), corpus, resume=True)
    assert tail.tasks == full.tasks[2:]
    np.testing.assert_allclose(tail.losses, full.losses[2:], rtol=1e-5, atol=1e-6)
    assert [e["step"] for e in tail.evals] == [e["step"] for e in full.evals if e["step"] > 2]
    for mine, theirs in zip(tail.evals, [e for e in full.evals if e["step"] > 2], strict=True):
        assert mine == pytest.approx(theirs, rel=1e-5)


def test_context_preflight(setup, tmp_path):
    model_cfg, corpus = setup
    long = [e.model_copy(update={"target": "word " * 600}) if e.task == Task.asr else e for e in corpus]
    with pytest.raises(PreflightError, match=r"more than the decoder's context of 512"):
        train(config(tmp_path, eval_split=None), *fresh(model_cfg), long)


def test_command_trains_and_the_final_model_reloads(setup, tmp_path, capsys):
    model_cfg, corpus = setup
    write_records(corpus, tmp_path / "corpus" / "train.parquet", TrainingExample)
    train_section = config(tmp_path / "run", schedule={"mode": "weighted"}).model_dump(mode="json")
    train_section.update(max_steps=3, eval_every=3, global_batch_size=2, micro_batch_size=2)
    yaml_path = tmp_path / "tiny.yaml"
    yaml_path.write_text(yaml.safe_dump({"model": model_cfg.model_dump(mode="json"), "train": train_section}))

    argv = ["--config", str(yaml_path), "--corpus", str(tmp_path / "corpus"), "--out", str(tmp_path / "run")]
    assert train_command.main(argv) == 0
    run = tmp_path / "run"
    assert (run / "train.config.yaml").is_file() and (run / "model.config.yaml").is_file()
    log = [json.loads(line) for line in (run / "train_log.jsonl").read_text().splitlines()]
    assert any("eval/accuracy/emotion_recognition" in r for r in log)
    reloaded = AudioLLM.from_pretrained(run / "final")
    assert sorted(d.name for d in (run / "checkpoints").iterdir()) == ["step-000002", "step-000003"]
    assert (run / "checkpoints" / "step-000003" / "model").is_dir() and reloaded is not None

    assert train_command.main([*argv, "--device", "cuda"]) == (0 if torch.cuda.is_available() else 2)
    assert train_command.main([*argv, "--corpus", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert "corpus not found" in err


def test_input_norm_is_fitted_from_training_clips_and_resume_stays_exact(setup, tmp_path):
    model_cfg, corpus = setup
    model_cfg = model_cfg.model_copy(update={"adapter": model_cfg.adapter.model_copy(update={"input_norm": True})})
    kw = dict(schedule={"mode": "joint"}, eval_split=None, max_steps=4, input_norm_clips=6)
    model, collate = fresh(model_cfg)
    full = train(config(tmp_path / "a", **kw), model, collate, corpus)
    assert bool(model.emotion_adapter.input_norm_fitted) and model.speech_adapter.input_mean.abs().sum() > 0
    saved = AudioLLM.from_pretrained(tmp_path / "a" / "final")
    assert torch.equal(saved.speech_adapter.input_std, model.speech_adapter.input_std)
    # killed after step 2 and resumed: the statistics are fitted again from the same clips
    model, collate = fresh(model_cfg)
    kill_after_forwards(model, 5)
    with pytest.raises(KeyboardInterrupt):
        train(config(tmp_path / "b", **kw), model, collate, corpus)
    tail = train(config(tmp_path / "b", **kw), *fresh(model_cfg), corpus, resume=True)
    np.testing.assert_allclose(tail.losses, full.losses[2:], rtol=1e-5, atol=1e-6)
