"""FSDP with the real AudioLLM (tiny random Whisper, WavLM and Llama with LoRA, written in tmp):
two CPU processes train like one, and the sharded run's checkpoints load in a single process
with ``AudioLLM.from_pretrained`` and generate."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import torch.multiprocessing as mp
from test_model_fixtures import TINY_WAVLM, tiny_config
from test_train_audiollm import config, fresh, make_corpus

from model.audiollm import AudioLLM
from model.collator import AudioExample
from model.train.distributed import close_distributed, full_tensor, init_distributed
from model.train.trainer import train

# No dropout, SpecAugment or layer drop: their random draws differ between one process and two.
NO_DROPOUT = {
    "hidden_dropout": 0.0, "attention_dropout": 0.0, "activation_dropout": 0.0, "feat_proj_dropout": 0.0,
    "final_dropout": 0.0, "layerdrop": 0.0, "mask_time_prob": 0.0,
}  # fmt: skip
# A speech round then an emotion round of two steps each (8 train clips / global batch 4),
# evaluated (loss and generated answers) at the end.
RUN = dict(
    schedule={"mode": "alternating", "final_joint_epochs": 0}, max_steps=4, save_every=2, eval_every=4,
    global_batch_size=4, micro_batch_size=2,
)  # fmt: skip


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _owned(model: AudioLLM) -> dict[str, np.ndarray]:
    return {n: t.numpy() for n, t in model._owned_state().items()}


def _worker(rank: int, world_size: int, port: int, root: str) -> None:
    """The same run with DDP and with FSDP, in the same two processes."""
    from model.config import AudioLLMConfig

    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world_size))
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    root_path = Path(root)
    model_cfg = AudioLLMConfig.model_validate_json((root_path / "model.json").read_text())
    corpus = make_corpus(root_path / "audio")
    env = init_distributed("cpu")
    report = {}
    try:
        for strategy in ("ddp", "fsdp"):
            model, collate = fresh(model_cfg)
            cfg = config(root_path / strategy, distributed={"strategy": strategy}, **RUN)
            result = train(cfg, model, collate, corpus, env=env)
            weights = {n: full_tensor(p).numpy() for n, p in model.named_parameters()}  # collective under FSDP
            report[strategy] = {"losses": result.losses, "tasks": result.tasks, "evals": result.evals}
            if rank == 0:
                np.savez(root_path / f"{strategy}-weights.npz", **weights)
    finally:
        close_distributed()
    if rank == 0:
        (root_path / "runs.json").write_text(json.dumps(report))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("fsdp_audiollm")
    model_cfg = tiny_config(root / "ckpt", **{"emotion.init": {**TINY_WAVLM, **NO_DROPOUT}})
    corpus = make_corpus(root / "audio")
    (root / "model.json").write_text(model_cfg.model_dump_json())
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model, collate = fresh(model_cfg)
        one = train(config(root / "one", **RUN), model, collate, corpus)
        mp.spawn(_worker, args=(2, _free_port(), str(root)), nprocs=2, join=True)
    finally:
        torch.set_num_threads(threads)
    return root, model, collate, corpus, one, json.loads((root / "runs.json").read_text())


@pytest.mark.slow
def test_fsdp_trains_the_audiollm_like_one_process_and_like_ddp(runs):
    root, model, _, _, one, two = runs
    assert two["fsdp"]["tasks"] == one.tasks == ["asr", "asr", "emotion_recognition", "emotion_recognition"]
    np.testing.assert_allclose(two["fsdp"]["losses"], one.losses, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(two["fsdp"]["losses"], two["ddp"]["losses"], rtol=1e-6, atol=1e-7)
    (evaluation,) = two["fsdp"]["evals"]  # every process ran every batch, generation included
    assert {"eval/loss/asr", "eval/accuracy/emotion_recognition"} <= set(evaluation)
    assert evaluation == pytest.approx(one.evals[0], rel=1e-4)
    # Weights: AdamW divides each gradient element by its running size, so where an element's
    # gradient is almost zero (the speech LoRA here) the summation order decides the sign of a
    # whole step and one process and two differ by more than float noise; DDP and FSDP, which sum
    # the same two processes' gradients, agree element by element.
    fsdp, ddp = np.load(root / "fsdp-weights.npz"), np.load(root / "ddp-weights.npz")
    start = {n: p.detach().numpy() for n, p in fresh(model.config)[0].named_parameters()}
    for name in start:
        np.testing.assert_allclose(fsdp[name], ddp[name], rtol=1e-5, atol=1e-7, err_msg=name)
    moved = {n.split(".")[0] for n in start if not np.array_equal(fsdp[n], start[n])}
    assert moved == {
        "speech_encoder",
        "speech_adapter",
        "emotion_encoder",
        "emotion_adapter",
        "emotion_layers",
        "decoder",
    }


@pytest.mark.slow
def test_sharded_checkpoint_loads_in_one_process_and_generates(runs):
    root, model, collate, corpus, _, _ = runs
    sharded = np.load(root / "fsdp-weights.npz")
    for directory in (root / "fsdp" / "final", root / "fsdp" / "checkpoints" / "step-000004" / "model"):
        loaded = AudioLLM.from_pretrained(directory)
        owned = _owned(loaded)
        assert set(owned) == set(_owned(model))  # exactly what save_pretrained writes
        for name, value in owned.items():
            np.testing.assert_array_equal(value, sharded[name], err_msg=name)
    loaded.eval()
    items = [AudioExample(example=e, waveform=sf.read(e.audio_path, dtype="float32")[0]) for e in corpus[:2]]
    texts = loaded.generate(collate(items), max_new_tokens=3)
    assert len(texts) == 2 and all(isinstance(t, str) for t in texts)
