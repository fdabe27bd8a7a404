"""A RAVDESS training corpus for the trainer's check on real speech, without a teacher LLM.

    python -m model.train.ravdess_corpus --root ../shared/data/ravdess16k --out runs/ravdess-corpus

Actors 1-16 train, 17-20 are the held-out ``dev`` split (the split of the classical reference in
DESIGN.md), 21-24 are left out. Tasks: emotion recognition and ASR, built by the corpus builder
(pipeline.corpora) from the dataset adapter; emotion reasoning needs accepted rationales from
stages one and two, so it is added only when ``--verified`` points at a verified parquet.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pipeline.audio_roots import roots_for
from pipeline.corpora import CorpusConfig, build_corpus, write_corpus
from pipeline.datasets import load_dataset
from pipeline.parquet import read_records
from pipeline.records import Task, VerifiedRecord

TRAIN_ACTORS = range(1, 17)
DEV_ACTORS = (17, 18, 19, 20)
LEFT_OUT_ACTORS = (21, 22, 23, 24)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", required=True, help="RAVDESS folder with Actor_XX/")
    parser.add_argument("--out", required=True, help="corpus folder to write (train/dev/test.parquet)")
    parser.add_argument("--verified", help="verified.parquet of stage two: adds emotion_reasoning examples")
    parser.add_argument("--tasks", nargs="+", default=["emotion_recognition", "asr"], choices=[t.value for t in Task])
    args = parser.parse_args(argv)

    loaded = load_dataset(
        "ravdess", args.root, test_actors=LEFT_OUT_ACTORS, dev_actors=DEV_ACTORS, splits=["train", "dev"]
    )
    verified = read_records(args.verified, VerifiedRecord) if args.verified else []
    tasks = [Task(t) for t in args.tasks] + ([Task.emotion_reasoning] if args.verified else [])
    build = build_corpus(loaded.utterances, verified, CorpusConfig(tasks=tasks))
    paths = write_corpus(build, Path(args.out), roots=roots_for(loaded.utterances, loaded.audio_root))
    print(
        f"{Path(args.out)}: {build.counts()}; rejects {len(build.rejects) + len(loaded.rejects)}; {paths['manifest']}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
