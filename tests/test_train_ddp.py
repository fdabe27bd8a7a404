"""Two processes (DDP over gloo on CPU) train exactly like one process with the same global batch."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from test_train_loop import Item, StandIn, collate, config, make_corpus

from model.train.distributed import close_distributed, init_distributed
from model.train.trainer import train


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world_size: int, port: int, root: str, micro: int) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world_size))
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    root_path = Path(root)
    corpus = make_corpus(root_path / "audio")
    cfg = config(root_path / f"ws{world_size}", micro_batch_size=micro, schedule={"mode": "alternating"}, eval_every=6)
    env = init_distributed("cpu")
    model = StandIn(dropout=0.0)  # dropout masks would differ between ranks and one process
    try:
        result = train(cfg, model, collate, corpus, env=env, item_type=Item)
    finally:
        close_distributed()
    if rank == 0:
        weights = {n: p.detach().numpy().tolist() for n, p in model.named_parameters() if p.ndim == 1}
        out = {"losses": result.losses, "tasks": result.tasks, "weights": weights, "evals": result.evals}
        (root_path / f"result-ws{world_size}.json").write_text(json.dumps(out))


@pytest.mark.slow
def test_two_processes_equal_one(tmp_path):
    (tmp_path / "audio").mkdir()
    make_corpus(tmp_path / "audio")
    _worker(0, 1, _free_port(), str(tmp_path), micro=2)  # 1 process: micro 2 x accumulation 2
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path), 2), nprocs=2, join=True)  # 2 x micro 2 x accumulation 1
    one = json.loads((tmp_path / "result-ws1.json").read_text())
    two = json.loads((tmp_path / "result-ws2.json").read_text())
    assert one["tasks"] == two["tasks"]
    np.testing.assert_allclose(two["losses"], one["losses"], rtol=1e-5, atol=1e-6)
    for name, values in one["weights"].items():
        np.testing.assert_allclose(two["weights"][name], values, rtol=1e-4, atol=1e-6, err_msg=name)
    assert [e["step"] for e in two["evals"]] == [e["step"] for e in one["evals"]]
    for e1, e2 in zip(one["evals"], two["evals"], strict=True):
        for key in e1:
            assert e2[key] == pytest.approx(e1[key], rel=1e-4), key
