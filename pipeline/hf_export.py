"""Export the training corpora as a Hugging Face ``datasets`` DatasetDict with a dataset card.

    export_hf(run / "corpora", run / "hf", verified=run / "verified.parquet")
    export_hf(..., repo_id="me/emoreason-demo")   # also push_to_hub, only with HF_TOKEN set

The card (README.md in the export) states the sources and their licences, the teacher model,
the prompt and question-pool versions, acceptance rates and example counts per split and task.
Audio is referenced by ``audio_path``, not embedded: relative to its dataset's audio root as in
the corpora (``audio_roots.json``, copied into the export and listed in the card; see
pipeline.audio_roots), so the export, like the run folder, can move to another machine.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from pipeline.audio_roots import BUNDLED_DEMO, ROOTS_FILE, AudioRoots, read_roots, write_roots
from pipeline.splits import SPLITS

# dataset -> (licence, source). IEMOCAP's licence forbids redistribution.
LICENCES: dict[str, tuple[str, str]] = {
    "demo": ("Apache-2.0", "emoreason demo corpus, written and voiced for this project"),
    "meld": ("GPL-3.0", "MELD (Poria et al., ACL 2019), from the Friends TV series"),
    "ravdess": ("CC BY-NC-SA 4.0", "RAVDESS (Livingstone & Russo, PLoS ONE 2018)"),
    "iemocap": ("IEMOCAP licence (USC SAIL): research use, no redistribution", "IEMOCAP (Busso et al., 2008)"),
}
# The Hub's identifiers for the card's front matter; anything else is "other".
HUB_LICENCE_IDS = {"Apache-2.0": "apache-2.0", "GPL-3.0": "gpl-3.0", "CC BY-NC-SA 4.0": "cc-by-nc-sa-4.0"}
NOT_REDISTRIBUTABLE = frozenset({"iemocap"})
_VERIFIED_COLUMNS = ["dataset", "accepted", "selected", "backend", "model", "template_id", "template_hash", "style"]


class ExportError(RuntimeError):
    pass


def _examples(corpus_dir: Path) -> dict[str, pd.DataFrame]:
    frames = {}
    for split in SPLITS:
        path = corpus_dir / f"{split}.parquet"
        if not path.is_file():
            raise ExportError(f"{path} not found: build the corpora first")
        frames[split] = pq.read_table(path).to_pandas()
    return frames


def _table(header: list[str], rows: list[list[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def dataset_card(
    frames: dict[str, pd.DataFrame], verified: pd.DataFrame | None, manifest: dict, roots: AudioRoots | None = None
) -> str:
    all_examples = pd.concat(frames.values(), ignore_index=True)
    datasets = sorted(set(all_examples["dataset"]) | (set(verified["dataset"]) if verified is not None else set()))
    licences = [[d, *LICENCES.get(d, ("see the source's terms", "user-supplied data"))] for d in datasets]
    spdx = {LICENCES[d][0] for d in datasets if d in LICENCES}
    front_licence = HUB_LICENCE_IDS.get(next(iter(spdx)), "other") if len(spdx) == 1 else "other"

    counts = all_examples.groupby(["split", "task"]).size().unstack(fill_value=0)
    count_rows = [[split, *(int(counts.loc[split, t]) if split in counts.index else 0 for t in counts.columns)]
                  for split in SPLITS]  # fmt: skip
    front_matter = "\n".join(
        [
            "---",
            f"license: {front_licence}",
            "task_categories:\n- automatic-speech-recognition\n- audio-classification\n- question-answering",
            "tags:\n- speech-emotion-recognition\n- emotion-reasoning\n- emoreason",
            "---",
        ]
    )
    sections = [
        front_matter,
        "# emoreason multitask corpus",
        "Task-tagged training examples for a multitask AudioLLM (ASR, emotion recognition, emotion "
        "reasoning, sentiment, spoken QA), built by emoreason following *Beyond "
        "Classification: Towards Speech Emotion Reasoning with Multitask AudioLLMs* (Zhang et al., 2025). "
        "Reasoning targets are teacher rationales that passed stage two's checks (verified quotes, "
        "acoustic claims that agree with the measured profile, the gold label, no label leakage) and end "
        "with the line `Emotion: <label>`.",
        "## Sources and licences",
        _table(["dataset", "licence", "source"], licences),
        "Each example keeps the licence of its source. Audio is referenced by `audio_path` "
        "(with `start_s`/`end_s` for segments), not embedded.",
        "## Audio",
        _audio_section(roots or AudioRoots()),
        "## Examples per split and task",
        _table(["split", *counts.columns], count_rows),
        "## Splits",
        "\n".join(f"- {note}" for note in manifest.get("splits", [])) or "- as written by the adapters",
        "## Instructions (question pools)",
        "\n".join(f"- {task}: `{ref}`" for task, ref in manifest.get("question_pools", {}).items()),
    ]
    if verified is not None and len(verified):
        teachers = verified.groupby(["backend", "model"]).size().reset_index(name="candidates")
        prompts = verified.groupby(["template_id", "template_hash"]).size().reset_index(name="candidates")
        rates = verified.groupby("dataset")["accepted"].agg(["size", "sum"]).reset_index()
        sections += [
            "## Teacher",
            _table(["backend", "model", "candidates"], teachers.values.tolist()),
            "## Prompt versions",
            _table(["template", "hash", "candidates"], prompts.values.tolist()),
            "## Acceptance rates (stage two)",
            _table(
                ["dataset", "candidates", "accepted", "rate"],
                [[d, int(n), int(a), f"{a / n:.1%}"] for d, n, a in rates.values.tolist()]
                + [["all", len(verified), int(verified["accepted"].sum()), f"{verified['accepted'].mean():.1%}"]],
            ),
        ]
    if manifest.get("rejects"):
        sections += ["## Corpus rejects", _table(["reason", "count"], sorted(manifest["rejects"].items()))]
    return "\n\n".join(sections) + "\n"


def _audio_section(roots: AudioRoots) -> str:
    if not roots.roots:
        return "`audio_path` is an absolute path on the machine that built the corpus."
    rows = [[d, "bundled with emoreason" if r == BUNDLED_DEMO else f"`{r}`"] for d, r in sorted(roots.roots.items())]
    return (
        f"`audio_path` is relative to its dataset's audio root ({ROOTS_FILE}): join it to the folder where "
        "that dataset's audio lives on your machine (`emoreason train/eval --audio-root PATH`).\n\n"
        + _table(["dataset", "audio root when built"], rows)
    )


def export_hf(
    corpus_dir: str | Path,
    out_dir: str | Path,
    verified: str | Path | None = None,
    repo_id: str | None = None,
    private: bool = True,
) -> Path:
    """save_to_disk the corpora as a DatasetDict with README.md; push when repo_id and HF_TOKEN are set."""
    from datasets import Dataset, DatasetDict  # heavy import, only for this command

    corpus_dir, out_dir = Path(corpus_dir), Path(out_dir)
    frames = _examples(corpus_dir)
    manifest_path = corpus_dir / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    verified_df = pq.read_table(verified, columns=_VERIFIED_COLUMNS).to_pandas() if verified else None
    roots = read_roots(corpus_dir)
    card = dataset_card(frames, verified_df, manifest, roots)
    token = os.environ.get("HF_TOKEN")
    if repo_id:  # refuse before any work
        if not token:
            raise ExportError("push_to_hub needs HF_TOKEN in the environment")
        restricted = sorted(NOT_REDISTRIBUTABLE & set(pd.concat(frames.values())["dataset"]))
        if restricted:
            raise ExportError(f"refusing to publish {', '.join(restricted)}: its licence forbids redistribution")

    dd = DatasetDict({s: Dataset.from_pandas(f, preserve_index=False) for s, f in frames.items()})
    dd.save_to_disk(str(out_dir))
    (out_dir / "README.md").write_text(card)
    write_roots(roots, out_dir)
    if repo_id:
        dd.push_to_hub(repo_id, token=token, private=private)
        from huggingface_hub import HfApi

        HfApi(token=token).upload_file(
            path_or_fileobj=card.encode(), path_in_repo="README.md", repo_id=repo_id, repo_type="dataset"
        )
    return out_dir


def main(argv: list[str] | None = None) -> int:
    """``python -m pipeline.hf_export RUN [--repo-id me/name]``: export (and push) a run's corpora."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m pipeline.hf_export", description=main.__doc__)
    parser.add_argument("run", type=Path, help="run folder with corpora/ (and verified.parquet)")
    parser.add_argument("--out", type=Path, help="export folder (default: RUN/hf)")
    parser.add_argument("--repo-id", help="also push_to_hub to this dataset repo (needs HF_TOKEN)")
    parser.add_argument("--public", action="store_true", help="make the pushed repo public (default private)")
    args = parser.parse_args(argv)
    verified = args.run / "verified.parquet"
    try:
        out = export_hf(args.run / "corpora", args.out or args.run / "hf", verified if verified.is_file() else None,
                        repo_id=args.repo_id, private=not args.public)  # fmt: skip
    except ExportError as error:
        print(f"hf_export: {error}", flush=True)
        return 1
    print(f"saved {out}" + (f"; pushed to {args.repo_id}" if args.repo_id else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
