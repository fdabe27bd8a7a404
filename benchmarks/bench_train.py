"""Training: CPU throughput of the tiny config, and audio padding with and without length grouping.

    emoreason bench train [--quick]

Padding is measured on RAVDESS durations when ../shared/data holds it (else on the demo corpus's
durations): the share of padded audio in each batch, averaged over one epoch, with the trainer's
length-grouped sampler vs plain random batches of the same size.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.run import Result
from model.train.data import TaskBatches, padding_ratio

RAVDESS = Path(__file__).resolve().parents[2] / "shared" / "data" / "ravdess16k"
BATCH_SIZES = (8, 48)  # the tiny config's and the paper's global batch


def _durations() -> tuple[np.ndarray, str]:
    if (RAVDESS / "labels.csv").is_file():
        import pandas as pd

        return pd.read_csv(RAVDESS / "labels.csv")["duration"].to_numpy(), "RAVDESS (1200 clips)"
    from pipeline.datasets import load_dataset

    utts = load_dataset("demo").utterances
    return np.array([u.duration_s or 0.0 for u in utts]), f"demo corpus ({len(utts)} clips)"


def padding_results() -> list[Result]:
    durations, source = _durations()
    keys = [(float(d), 0) for d in durations]
    out = []
    for batch_size in BATCH_SIZES:
        for grouped in (False, True):
            sampler = TaskBatches(keys, batch_size, seed=0, grouped=grouped, group_batches=50)
            ratios = [padding_ratio(durations[b]) for b in sampler.epoch_batches(0)]
            out.append(
                Result(
                    "train data",
                    f"audio padding, batch {batch_size}, {'length-grouped' if grouped else 'random'}",
                    100 * float(np.mean(ratios)),
                    "% of batch audio",
                    "" if not grouped else "< 5",
                    f"{source}, one epoch",
                )
            )
    return out


def throughput_results(quick: bool) -> list[Result]:
    """Optimizer steps of the tiny config on the demo corpus, CPU (the real tiny model)."""
    import torch

    from model.train.build import build_model
    from model.train.config import load_train_config
    from model.train.data import split_by_task
    from model.train.trainer import train

    config = Path(__file__).resolve().parents[1] / "configs" / "tiny.yaml"
    examples = _demo_corpus()
    steps = 3 if quick else 10
    with tempfile.TemporaryDirectory() as tmp:
        cfg = load_train_config(
            config,
            {"out": tmp, "max_steps": steps, "save_every": 10_000, "progress": False, "tensorboard": False,
             "device": "cpu", "optim.warmup_steps": 1, "eval_split": None},  # no evaluation: time training only
        )  # fmt: skip
        by_task = split_by_task(examples, cfg.train_split)
        cfg = cfg.model_copy(update={"tasks": [t for t, exs in by_task.items() if len(exs) >= cfg.global_batch_size]})
        model, collate_fn, _ = build_model(config)
        # the first step pays for worker start-up and lazy initialisation: time the steady state
        warm = cfg.model_copy(update={"max_steps": 1, "out": str(Path(tmp) / "warm")})
        train(warm, model, collate_fn, examples)
        model, collate_fn, _ = build_model(config)
        cfg = cfg.model_copy(update={"log_every": steps})
        start = time.perf_counter()
        train(cfg, model, collate_fn, examples)
        elapsed = time.perf_counter() - start
        logged = json.loads((Path(tmp) / "train_log.jsonl").read_text().splitlines()[-1])
    note = f"configs/tiny.yaml, demo corpus, {steps} steps, {torch.get_num_threads()} threads, fp32"
    return [
        Result("train", "tiny config throughput (CPU)", steps * cfg.global_batch_size / elapsed, "samples/s", "", note),
        Result("train", "share of step time waiting for data", 100 * logged["data_wait_share"], "%", "< 5", note),
    ]


def _demo_corpus():
    from pipeline.corpora import CorpusConfig, build_corpus
    from pipeline.datasets import load_dataset
    from pipeline.records import Task

    utts = load_dataset("demo").utterances
    build = build_corpus(utts, [], CorpusConfig(tasks=[Task.emotion_recognition, Task.asr]))
    return [e for split in build.examples.values() for e in split]


def run(quick: bool) -> list[Result]:
    return padding_results() + throughput_results(quick)
