"""Stage two from file to file: a stage-one parquet in, one parquet of every verdict out.

    stats = verify_file("generations.parquet", utterances, profiles, cfg, out_path="verified.parquet")

The checks and best-of-n are :func:`pipeline.verify.verify`; this module adds what a file needs:
the adjacency of each utterance's candidates checked before any work, the label-blind answers read
from their own rows, and an output sorted so that a filter on the verdict skips whole row groups.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from itertools import islice
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.checks.base import JudgedRelevance, ProfileLike
from pipeline.label_blind import BLIND_STYLE, label_blind_answers
from pipeline.parquet import arrow_schema, iter_records, to_table
from pipeline.records import GenerationRecord, Utterance, VerifiedRecord
from pipeline.relevance import RelevanceTable
from pipeline.verify import Adjacency, VerifyConfig, verify
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
    """Label-blind emotion per utterance from the stage-one rows of ``style`` in a parquet (pipeline.label_blind)."""
    return label_blind_answers(iter_records(path, GenerationRecord), style)


def _remove_leftovers(out_path: Path) -> None:
    """Temporary files of runs killed while writing ``out_path`` (``.<name>.<pid>.tmp``, their process gone)."""
    for leftover in out_path.parent.glob(f".{out_path.name}.*.tmp"):
        pid = leftover.name.removeprefix(f".{out_path.name}.").removesuffix(".tmp")
        if pid.isdigit() and not _alive(int(pid)) and leftover.is_file():
            leftover.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


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
    row groups. The verdicts are gathered in memory as Arrow batches (a million verdicts are a few
    hundred MB), sorted, and written to a temporary file renamed into place: a killed run leaves
    no output, and what a killed run left behind is removed by the next. The counts and the
    resolved config are written beside it as ``<out>.json``.

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
    _remove_leftovers(out_path)
    stats = VerifyStats()
    stream = verify(iter_records(in_path, GenerationRecord), utterances, profiles, cfg, blind, stats, relevance, judged)
    tables = []
    while batch := list(islice(stream, cfg.batch_size)):
        tables.append(to_table(batch, VerifiedRecord))
    table = pa.concat_tables(tables) if tables else arrow_schema(VerifiedRecord).empty_table()
    # A stable sort: within a key, records keep the input's order.
    table = table.sort_by([("accepted", "ascending"), ("dataset", "ascending"), ("emotion", "ascending")])
    tmp = out_path.with_name(f".{out_path.name}.{os.getpid()}.tmp")
    try:
        with pq.ParquetWriter(tmp, table.schema) as out:
            for start, length in _key_runs(table):
                out.write_table(table.slice(start, length), row_group_size=ROW_GROUP_ROWS)
        os.replace(tmp, out_path)
    finally:
        tmp.unlink(missing_ok=True)
    summary = {"input": str(in_path), "output": str(out_path), "config": cfg.model_dump(mode="json")}
    summary["counts"] = stats.to_dict()
    out_path.with_name(out_path.name + ".json").write_text(json.dumps(summary, indent=2))
    return stats


def _key_runs(table: pa.Table) -> list[tuple[int, int]]:
    """(start, length) of each run of equal (accepted, dataset, emotion) in a sorted table."""
    keys = list(zip(*(table.column(name).to_pylist() for name in ("accepted", "dataset", "emotion")), strict=True))
    runs: list[tuple[int, int]] = []
    for i, key in enumerate(keys):
        if i and key == keys[i - 1]:
            runs[-1] = (runs[-1][0], runs[-1][1] + 1)
        else:
            runs.append((i, 1))
    return runs
