"""Stage two from file to file: a stage-one parquet in, one parquet of every verdict out.

    stats = verify_file("generations.parquet", utterances, profiles, cfg, out_path="verified.parquet")

The checks and best-of-n are :func:`pipeline.verify.verify`; this module adds what a file needs:
the adjacency of each utterance's candidates checked before any work, the label-blind answers read
from their own rows, and an output sorted so that a filter on the verdict skips whole row groups.
"""

from __future__ import annotations

import json
import os
import shutil
from collections import Counter
from collections.abc import Mapping
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.checks import JudgedRelevance, ProfileLike
from pipeline.parquet import arrow_schema, iter_records, to_table
from pipeline.records import GenerationRecord, Utterance, VerifiedRecord
from pipeline.relevance import RelevanceTable
from pipeline.verify import BLIND_STYLE, Adjacency, VerifyConfig, verify
from pipeline.verify_stats import VerifyStats

ROW_GROUP_ROWS = 8192  # row groups of the verified parquet; each holds one (accepted, dataset, emotion)


def _check_adjacent(path: Path, blind_style: str) -> None:
    """Fail before any work when an utterance's candidates are not adjacent (reads two columns)."""
    adjacency = Adjacency()
    try:
        for batch in pq.ParquetFile(path).iter_batches(columns=["utterance_id", "style"], batch_size=65536):
            for key in zip(batch.column(0).to_pylist(), batch.column(1).to_pylist(), strict=True):
                if key[1] != blind_style:
                    adjacency.starts(key)
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None


def blind_answers(path: str | Path, style: str = BLIND_STYLE) -> dict[str, str]:
    """Label-blind emotion per utterance from stage-one rows of ``style``: the majority of its candidates."""
    votes: dict[str, Counter[str]] = {}
    for record in iter_records(path, GenerationRecord):
        if record.style == style and record.answer is not None:
            votes.setdefault(record.utterance_id, Counter())[record.answer.emotion.strip().lower()] += 1
    return {uid: counter.most_common(1)[0][0] for uid, counter in votes.items()}


def _bucket(record: VerifiedRecord) -> tuple[bool, str, str]:
    return (record.accepted, record.dataset, record.emotion.value)


def verify_file(
    in_path: str | Path,
    utterances: Mapping[str, Utterance],
    profiles: Mapping[str, ProfileLike] | None = None,
    cfg: VerifyConfig | None = None,
    blind: Mapping[str, str] | None = None,
    out_path: str | Path = "verified.parquet",
    relevance: RelevanceTable | None = None,
    judged: Mapping[str, JudgedRelevance] | None = None,
) -> VerifyStats:
    """Verify a stage-one parquet into one parquet of every record with its verdict.

    The output is sorted by (accepted, dataset, emotion) and every row group holds a single such
    key, so ``pandas.read_parquet(p, filters=[("accepted", "==", False)])`` and DuckDB skip whole
    row groups. Written in two streamed passes: per-key spill files, then concatenated in key
    order into a temporary file that is renamed into place (a killed run leaves no output). The
    counts and the resolved config are written beside it as ``<out>.json``.

    ``relevance``: the run's relevance table (fitted from ``utterances`` and ``profiles`` when
    None). With ``cfg.judge`` and no ``judged`` verdicts, the judge rates every parsed candidate
    first (:func:`pipeline.judge_relevance.judge_relevance`, cached in ``<out folder>/cache/judge.sqlite``).
    """
    in_path, out_path = Path(in_path), Path(out_path)
    cfg = cfg or VerifyConfig()
    _check_adjacent(in_path, cfg.blind_style)
    if cfg.judge and judged is None:
        from pipeline.judge_relevance import judge_relevance  # the LLM client only when the judge runs

        cache = out_path.parent / "cache" / "judge.sqlite"
        judged = judge_relevance(
            iter_records(in_path, GenerationRecord), cfg.judge_with, cache, skip_style=cfg.blind_style
        )
    out_path.parent.mkdir(parents=True, exist_ok=True)
    spill_dir = out_path.with_name(f".{out_path.name}.{os.getpid()}.spill")
    tmp = out_path.with_name(f".{out_path.name}.{os.getpid()}.tmp")
    schema = arrow_schema(VerifiedRecord)
    stats = VerifyStats()
    writers: dict[tuple[bool, str, str], pq.ParquetWriter] = {}
    spills: dict[tuple[bool, str, str], Path] = {}
    try:
        spill_dir.mkdir(parents=True, exist_ok=True)
        records = iter_records(in_path, GenerationRecord)
        stream = verify(records, utterances, profiles, cfg, blind, stats, relevance, judged)
        pending: dict[tuple[bool, str, str], list[VerifiedRecord]] = {}
        for i, record in enumerate(stream, 1):
            pending.setdefault(_bucket(record), []).append(record)
            if i % cfg.batch_size == 0:
                _spill(pending, writers, spills, spill_dir, schema)
        _spill(pending, writers, spills, spill_dir, schema)
        while writers:
            writers.popitem()[1].close()
        with pq.ParquetWriter(tmp, schema) as out:
            for key in sorted(spills):
                spill = pq.ParquetFile(spills[key])
                for batch in spill.iter_batches(batch_size=ROW_GROUP_ROWS):
                    out.write_batch(batch, row_group_size=ROW_GROUP_ROWS)
        os.replace(tmp, out_path)
    finally:
        for writer in writers.values():
            writer.close()
        tmp.unlink(missing_ok=True)
        shutil.rmtree(spill_dir, ignore_errors=True)
    summary = {"input": str(in_path), "output": str(out_path), "config": cfg.model_dump(mode="json")}
    summary["counts"] = stats.to_dict()
    out_path.with_name(out_path.name + ".json").write_text(json.dumps(summary, indent=2))
    return stats


def _spill(pending: dict, writers: dict, spills: dict, spill_dir: Path, schema: pa.Schema) -> None:
    """Append each key's pending records to that key's spill file."""
    for key, records in pending.items():
        if key not in writers:
            spills[key] = spill_dir / f"{len(spills)}.parquet"
            writers[key] = pq.ParquetWriter(spills[key], schema)
        writers[key].write_table(to_table(records, VerifiedRecord))
    pending.clear()
