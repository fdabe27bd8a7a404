"""Dataset adapters: each turns a dataset on disk into validated Utterance records plus rejects.

    from pipeline.datasets import load_dataset
    result = load_dataset("iemocap", "/data/IEMOCAP_full_release", protocol="iemocap7")
    result.utterances, result.rejects

Every adapter module exposes ``load(root, proto, **options) -> AdapterResult`` and accepts the
options ``splits`` (a name or a list: load only those) and ``context_turns``. The registry names
modules by string so that ``import pipeline.datasets`` stays light (the ``hf`` adapter imports
``datasets``). Rows an adapter cannot use become :class:`~pipeline.records.Reject` records with a
reason (``unknown_label``, ``out_of_protocol``, ``missing_audio``, ``corrupt_audio``, ...).
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass
from pathlib import Path

from pipeline.datasets.common import DEFAULT_CONTEXT_TURNS, AdapterResult
from pipeline.labels import DEFAULT_PROTOCOL
from pipeline.labels import protocol as get_protocol

__all__ = ["DATASETS", "DEFAULT_CONTEXT_TURNS", "AdapterResult", "DatasetInfo", "load_dataset"]


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    module: str
    root: str  # what the root argument points at
    summary: str


DATASETS: dict[str, DatasetInfo] = {
    d.name: d
    for d in (
        DatasetInfo("demo", "pipeline.datasets.demo", "optional (bundled)", "144 utterances voiced for this project"),
        DatasetInfo(
            "iemocap", "pipeline.datasets.iemocap", "release folder with Session1..5", "IEMOCAP, official layout"
        ),
        DatasetInfo("meld", "pipeline.datasets.meld", "folder with *_sent_emo.csv", "MELD CSVs (+ audio_dir)"),
        DatasetInfo("ravdess", "pipeline.datasets.ravdess", "folder with Actor_XX/", "RAVDESS speech, split by actor"),
        DatasetInfo("manifest", "pipeline.datasets.manifest", "a .csv/.jsonl/.parquet file", "generic manifest"),
        DatasetInfo("hf", "pipeline.datasets.hf", "a save_to_disk folder", "Hugging Face datasets dataset"),
    )
}


def load_dataset(name: str, /, root: str | Path | None = None, protocol: str | None = None, **options) -> AdapterResult:
    """Load ``name`` from ``root`` under a label protocol (default: the dataset's usual one).

    ``name`` is positional-only: adapters have options of their own called ``name`` (the
    manifest's dataset name), which must reach ``options``, not collide with it.

    Raises on problems with the whole dataset (unknown name, missing root, bad option); problems
    with single rows come back as ``result.rejects``.
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    proto = get_protocol(protocol or DEFAULT_PROTOCOL.get(name, "all"))
    module = importlib.import_module(DATASETS[name].module)
    accepted = [p.name for p in inspect.signature(module.load).parameters.values() if p.kind is p.KEYWORD_ONLY]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ValueError(f"dataset {name!r} has no option {', '.join(unknown)}; its options: {', '.join(accepted)}")
    return module.load(root, proto, **options)
