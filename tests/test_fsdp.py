"""FSDP (PyTorch's FSDP2, ``fully_shard``) over two CPU processes (gloo) trains exactly like one
process with the same global batch, trains only the current round's groups, resumes exactly,
and writes checkpoints that a single process loads.

The two-process runs are spawned once per module (process start-up dominates their cost) and
each test checks one property of their results.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from test_train_loop import Item, StandIn, collate, config, make_corpus

from model.schedule import EMOTION_GROUPS, SPEECH_GROUPS
from model.train.distributed import (
    ParamNames,
    PreflightError,
    close_distributed,
    full_tensor,
    init_distributed,
    is_sharded,
    shard_model,
)
from model.train.trainer import train

FSDP = {"strategy": "fsdp"}
RUN = dict(micro_batch_size=2, schedule={"mode": "alternating"}, eval_every=6)  # 12 steps: speech, emotion, joint
FIRST_ROUND = dict(RUN, max_steps=3, eval_split=None)  # the first (speech) round only


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _join_group(rank: int, world_size: int, port: int):
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world_size))
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    return init_distributed("cpu")


def _weights(model) -> dict[str, list]:
    return {n: full_tensor(p).numpy().tolist() for n, p in model.named_parameters()}  # collective under FSDP


def _moved(before: dict, after: dict) -> list[str]:
    return sorted({n.split(".")[0] for n in before if not np.array_equal(before[n], after[n])})


def _grads_per_round(model, names: ParamNames) -> list[dict]:
    """Sharded in bf16 (as on CUDA), a speech round then an emotion round: which groups get a
    gradient, and its dtype (FSDP keeps fp32 shards and must reduce into fp32)."""
    from test_train_loop import Batch

    rows = []
    batch = Batch(
        torch.randn(2, 3, 160), torch.randint(0, 128, (2, 5)), torch.randint(0, 128, (2, 5)), torch.ones(2, 5)
    )
    for groups in (SPEECH_GROUPS, EMOTION_GROUPS):
        names.set_trainable(model, groups)
        model(batch).loss.backward()
        resolved = names.resolve(model)
        rows.append({g: sorted({str(p.grad.dtype) for p in ps if p.grad is not None}) for g, ps in resolved.items()})
        model.zero_grad(set_to_none=True)
    return rows


def _stand_in_worker(rank: int, world_size: int, port: int, root: str) -> None:
    env = _join_group(rank, world_size, port)
    root_path = Path(root)
    corpus = make_corpus(root_path / "audio")
    report = {}
    try:
        model = StandIn(dropout=0.0)  # dropout masks would differ between ranks and one process
        before = _weights(model)
        train(
            config(root_path / "first", distributed=FSDP, **FIRST_ROUND),
            model,
            collate,
            corpus,
            env=env,
            item_type=Item,
        )
        report["sharded"] = is_sharded(model) and type(model.lora.weight).__name__ == "DTensor"
        report["first_round_moved"] = _moved(before, _weights(model))

        model = StandIn(dropout=0.0)
        full = train(
            config(root_path / "full", distributed=FSDP, **RUN), model, collate, corpus, env=env, item_type=Item
        )
        report.update(losses=full.losses, tasks=full.tasks, evals=full.evals, weights=_weights(model))

        crashing = StandIn(dropout=0.0)
        crashing.crash_after = 9  # 4 steps x 2 micro-batches, then dies inside step 5 (checkpoint after step 3)
        with contextlib.suppress(KeyboardInterrupt):
            train(config(root_path / "b", distributed=FSDP, **RUN), crashing, collate, corpus, env=env, item_type=Item)
        tail = train(
            config(root_path / "b", distributed=FSDP, **RUN), StandIn(0.0), collate, corpus, env=env, item_type=Item,
            resume=True,
        )  # fmt: skip
        report.update(resumed_losses=tail.losses, resumed_tasks=tail.tasks)

        model = StandIn(dropout=0.0)
        names = ParamNames.of(model)
        shard_model(model, env, names, param_dtype=torch.bfloat16)
        report["bf16_grads"] = _grads_per_round(model, names)
        torch.distributed.barrier()  # both ranks are done with every collective
    except BaseException:
        close_distributed()
        raise
    if rank == 0:
        (root_path / "fsdp.json").write_text(json.dumps(report))
    # Leave without gloo's teardown: in about one full-suite run in four a child aborted in it
    # ("terminate called without an active exception"), after its work was done.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> tuple[Path, dict, dict]:
    """(root, one process's run, the two-process FSDP runs)."""
    root = tmp_path_factory.mktemp("fsdp")
    (root / "audio").mkdir()
    corpus = make_corpus(root / "audio")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model = StandIn(dropout=0.0)
        result = train(config(root / "one", **RUN), model, collate, corpus, item_type=Item)  # micro 2 x accumulation 2
        one = {"losses": result.losses, "tasks": result.tasks, "evals": result.evals, "weights": _weights(model)}
        mp.spawn(_stand_in_worker, args=(2, _free_port(), str(root)), nprocs=2, join=True)  # 2 processes x micro 2
    finally:
        torch.set_num_threads(threads)
    return root, one, json.loads((root / "fsdp.json").read_text())


@pytest.mark.slow
def test_two_processes_equal_one(runs):
    _, one, two = runs
    assert two["sharded"]
    assert two["tasks"] == one["tasks"] and len(set(one["tasks"])) == 2
    np.testing.assert_allclose(two["losses"], one["losses"], rtol=1e-5, atol=1e-6)
    for name, values in one["weights"].items():
        np.testing.assert_allclose(two["weights"][name], values, rtol=1e-4, atol=1e-6, err_msg=name)
    assert [e["step"] for e in two["evals"]] == [e["step"] for e in one["evals"]]
    for e1, e2 in zip(one["evals"], two["evals"], strict=True):
        assert e2 == pytest.approx(e1, rel=1e-4)


@pytest.mark.slow
def test_rounds_train_only_their_groups(runs):
    _, _, two = runs
    assert two["first_round_moved"] == ["lora", "speech_adapter", "speech_encoder"]
    speech, emotion = two["bf16_grads"]
    assert {g for g, dtypes in speech.items() if dtypes} == SPEECH_GROUPS
    assert {g for g, dtypes in emotion.items() if dtypes} == EMOTION_GROUPS  # a unit frozen at first forward trains
    assert {d for row in (speech, emotion) for dtypes in row.values() for d in dtypes} == {"torch.float32"}


@pytest.mark.slow
def test_resume_is_exact(runs):
    _, _, two = runs
    assert two["resumed_tasks"] == two["tasks"][3:]
    np.testing.assert_allclose(two["resumed_losses"], two["losses"][3:], rtol=1e-6, atol=1e-7)


@pytest.mark.slow
def test_checkpoint_is_whole_and_sharded_optimizer_per_process(runs):
    root, _, two = runs
    from safetensors.torch import load_file

    from model.train.safe_state import load_state

    ckpt = root / "full" / "run" / "checkpoints" / "step-000012"
    state_files = [
        f"{n}.{ext}"
        for n in ("optimizer-rank0", "optimizer-rank1", "rng-rank0", "rng-rank1")
        for ext in ("json", "safetensors")
    ]
    assert sorted(p.name for p in ckpt.iterdir()) == sorted(
        [*state_files, "trainable.safetensors", "trainer_state.json", "trainer_state.safetensors"]
    )
    tensors = load_file(ckpt / "trainable.safetensors")
    for name, tensor in tensors.items():  # whole tensors, equal to the trained weights
        np.testing.assert_array_equal(tensor.numpy(), np.array(two["weights"][name], dtype=np.float32), err_msg=name)
    shards = [load_state(ckpt, f"optimizer-rank{r}") for r in (0, 1)]
    moments = [sum(s["exp_avg"].shape[0] for s in shard["state"].values()) for shard in shards]
    rows = sum(t.shape[0] for t in tensors.values())
    assert sum(moments) == rows and all(0 < m < rows for m in moments)  # each process holds a part


def test_fsdp_without_torchrun_is_refused(tmp_path, monkeypatch):
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    (tmp_path / "audio").mkdir()
    corpus = make_corpus(tmp_path / "audio")
    with pytest.raises(PreflightError, match="fsdp shards the model over processes started by torchrun"):
        train(config(tmp_path, distributed=FSDP), StandIn(), collate, corpus, item_type=Item)
