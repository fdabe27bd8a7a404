"""``make data``: adapters -> acoustic profiles -> stage one -> stage two -> corpora -> audit.

Each step is skipped when its outputs exist and its *fingerprint* is unchanged: a hash of the
step's configuration and of the size and mtime of every input file. A skipped step does not
touch its outputs, so the steps after it are skipped too, and a second ``make data`` does no
work and says so. Within a step, work is resumable on its own: profiles are cached per
utterance and every LLM request per key, so a killed run resumes where it stopped.

Layout of a run folder (see docs/corpora.md):

    utterances.parquet        adapters' output          rejects.parquet   every stage's rejects
    profiles/                 acoustic profiles         generations.parquet  stage one
    relevance.json            which way each cue points (pipeline.relevance), read by stages one and two
    verified.parquet          stage two verdicts        corpora/, hf/     training corpora
    audit.html                the audit report          data.config.yaml  the resolved config
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from pipeline.acoustic import AcousticProfile, compute_profiles, load_profiles
from pipeline.config import write_resolved
from pipeline.corpora import CorpusConfig, corpora_for_run
from pipeline.datasets import load_dataset
from pipeline.datasets.demo import BUNDLED as DEMO_CORPUS
from pipeline.generate import STYLE_TEMPLATES, GenerateConfig, generate, generate_blind
from pipeline.llm.base import Sampling
from pipeline.llm.config import LLMConfig
from pipeline.parquet import read_records, write_records
from pipeline.prompts import PROMPTS_DIR
from pipeline.records import Reject, Utterance
from pipeline.relevance import RELEVANCE_FILE, RelevanceSettings, fit_relevance, load_relevance, save_relevance
from pipeline.verify import VerifyConfig
from pipeline.verify_file import verify_file

UTTERANCES = "utterances.parquet"
ADAPTER_REJECTS = "adapter_rejects.parquet"
PROFILES_DIR = "profiles"
GENERATIONS = "generations.parquet"
VERIFIED = "verified.parquet"
REJECTS = "rejects.parquet"
RESOLVED_CONFIG = "data.config.yaml"
STAMPS_DIR = ".stamps"
# Every stage's rejects, gathered into one table at the end of the run.
STAGE_REJECTS = (
    ADAPTER_REJECTS,
    f"{PROFILES_DIR}/rejects.parquet",
    "generate_rejects.parquet",
    "corpora/rejects.parquet",
)


# The embedded 135M teacher runs on a 2-core CPU at tens of tokens a second and, when it loops,
# loops until max_tokens: one candidate of at most 256 tokens keeps the demo run within minutes.
# With a real teacher, ask for more (e.g. --n 3 and sampling.max_tokens 768 in a config file).
# top_p 1: nucleus sampling sorts the whole 49k vocabulary every step (14 % of a decode step in
# py-spy) while the grammar already narrows what may follow; temperature still shapes the rest.
EMBEDDED_SAMPLING = Sampling(n=1, max_tokens=224, temperature=0.7, top_p=1.0)
# Larger batches amortise reading the weights on CPU: 8 -> 32 raised 68 -> 96 tok/s here.
EMBEDDED_BATCH = 32
# Short prompts for the small teacher: the full templates' ~550-token system prompt was ~40 % of
# the demo's generate time (prefill), and their format example is what the 135M model copied.
# Grounded decoding (GenerateConfig.grounded, on for the embedded model) supplies the format.
EMBEDDED_TEMPLATES = {"acoustic": "rationale/acoustic_compact.v2", "elaborate": "rationale/elaborate_compact.v1"}


class DataConfig(BaseModel):
    """Everything ``make data`` does, with defaults that run offline on the demo corpus."""

    model_config = ConfigDict(extra="forbid")

    dataset: str = "demo"
    root: str | None = Field(None, description="where the dataset lives; the demo corpus is bundled")
    protocol: str | None = Field(None, description="label protocol; default: the dataset's usual one")
    options: dict[str, Any] = Field(default_factory=dict, description="adapter options (e.g. splits, audio_dir)")
    out: str = "runs/demo"
    workers: int = Field(2, ge=1, description="processes for the acoustic profile")
    profiles: bool = Field(True, description="measure the voice (skipped anyway for datasets without audio)")
    relevance: RelevanceSettings = Field(
        default_factory=RelevanceSettings, description="the relevance table fitted on the training split"
    )
    generate: GenerateConfig = Field(
        default_factory=lambda: GenerateConfig(
            sampling=EMBEDDED_SAMPLING,
            max_parse_retries=0,
            llm=LLMConfig(batch_size=EMBEDDED_BATCH),
            templates=EMBEDDED_TEMPLATES,
        ),
        description="stage one; the defaults suit the embedded 135M teacher (EMBEDDED_SAMPLING, EMBEDDED_TEMPLATES)",
    )
    verify: VerifyConfig = Field(default_factory=VerifyConfig)
    corpus: CorpusConfig = Field(default_factory=CorpusConfig)
    hf_export: bool = Field(True, description="also save the corpora as a Hugging Face DatasetDict")
    audit: bool = True

    @model_validator(mode="after")
    def _teacher_defaults(self) -> DataConfig:
        """The defaults above are tuned for the embedded 135M teacher. For any other teacher, what
        still equals an embedded default goes back to stage one's general default (full templates,
        longer answers, nucleus sampling, best of DEFAULT_CANDIDATES, parse retries); values set to
        anything else are kept. The resolved config written beside the outputs shows the result."""
        if self.generate.llm.model == "embedded":
            return self
        general, generate_cfg = GenerateConfig(), self.generate
        generate_cfg.templates = {
            style: STYLE_TEMPLATES[style] if EMBEDDED_TEMPLATES.get(style) == template else template
            for style, template in generate_cfg.templates.items()
        }
        if generate_cfg.max_parse_retries == 0:
            generate_cfg.max_parse_retries = general.max_parse_retries
        sampling = {
            name: getattr(general.sampling, name)
            for name in type(EMBEDDED_SAMPLING).model_fields
            if getattr(generate_cfg.sampling, name) == getattr(EMBEDDED_SAMPLING, name)
        }
        generate_cfg.sampling = generate_cfg.sampling.model_copy(update=sampling)
        if generate_cfg.llm.batch_size == EMBEDDED_BATCH:
            generate_cfg.llm.batch_size = LLMConfig().batch_size
        return self


@dataclass
class Step:
    name: str
    inputs: list[Path]
    outputs: list[Path]
    config: Any
    action: Callable[[], str]  # does the work, returns a one-line summary


def _file_stamp(path: Path) -> list[Any]:
    if path.is_dir():
        return sorted((str(p.relative_to(path)), *_file_stamp(p)) for p in path.rglob("*") if p.is_file())
    st = path.stat() if path.exists() else None
    return [st.st_size, st.st_mtime_ns] if st else ["absent"]


def fingerprint(step: Step) -> str:
    config = step.config.model_dump(mode="json") if isinstance(step.config, BaseModel) else step.config
    blob = json.dumps([step.name, config, [(str(p), _file_stamp(p)) for p in step.inputs]], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def run_step(step: Step, stamps: Path) -> bool:
    """Run ``step`` unless it is up to date; True when it did work."""
    stamp = stamps / f"{step.name}.json"
    digest = fingerprint(step)
    if all(p.exists() for p in step.outputs) and stamp.is_file() and json.loads(stamp.read_text()) == digest:
        print(f"[{step.name}] up to date, skipped", flush=True)
        return False
    print(f"[{step.name}] running", flush=True)
    start = time.perf_counter()
    summary = step.action()
    print(f"[{step.name}] {summary} ({time.perf_counter() - start:.1f} s)", flush=True)
    stamps.mkdir(parents=True, exist_ok=True)
    stamp.write_text(json.dumps(digest))
    return True


def _dataset_root(cfg: DataConfig) -> list[Path]:
    if cfg.root is None:
        return [DEMO_CORPUS] if cfg.dataset == "demo" else []
    return [Path(cfg.root)]


def build_steps(cfg: DataConfig) -> list[Step]:
    out = Path(cfg.out)
    utterances, profiles_dir = out / UTTERANCES, out / PROFILES_DIR
    profiles_file, generations, verified = profiles_dir / "profiles.parquet", out / GENERATIONS, out / VERIFIED
    relevance_file = out / RELEVANCE_FILE

    def utts() -> list[Utterance]:
        return read_records(utterances, Utterance)

    def adapters() -> str:
        result = load_dataset(cfg.dataset, cfg.root, cfg.protocol, **cfg.options)
        write_records(result.utterances, utterances, Utterance)
        write_records(result.rejects, out / ADAPTER_REJECTS, Reject)
        for notice in getattr(result, "notices", []):
            print(f"  note: {notice}")
        return f"{len(result.utterances)} utterances, {len(result.rejects)} rejects"

    def profile() -> str:
        utterances_ = utts()
        if not cfg.profiles or not any(u.audio_path for u in utterances_):
            profiles_dir.mkdir(parents=True, exist_ok=True)
            write_records([], profiles_file, AcousticProfile)
            return "no audio in this dataset: no profiles"
        run = compute_profiles(utterances_, profiles_dir, workers=cfg.workers, progress=True)
        return (
            f"{len(run.profiles)} profiles ({run.measured} measured, {run.cached} cached), {len(run.rejects)} rejects"
        )

    def profiles_or_none():
        found = load_profiles(profiles_file)
        return found or None

    def relevance() -> str:
        table = fit_relevance(utts(), profiles_or_none(), cfg.relevance)
        save_relevance(table, relevance_file)
        known = sum(c.direction is not None for c in table.cells)
        directed = sum(bool(c.direction) for c in table.cells)
        return (
            f"{len(table.cells)} cells fitted on {table.fitted_on} utterances: {directed} with a typical "
            f"deviation, {len(table.cells) - known} unknown; {len(table.sentences)} multi-emotion sentence(s)"
        )

    def stage_one() -> str:
        run = generate(utts(), profiles_or_none(), cfg.generate, out, relevance=load_relevance(relevance_file))
        return run.summary()

    def stage_two() -> str:
        utterances_, profiles = utts(), profiles_or_none()
        blind = None
        if cfg.verify.blind:
            answers = generate_blind(utterances_, profiles, cfg.generate, out)
            blind = {uid: answer.emotion for uid, answer in answers.items()}
        by_id = {u.id: u for u in utterances_}
        table = load_relevance(relevance_file)
        stats = verify_file(generations, by_id, profiles, cfg.verify, blind, out_path=verified, relevance=table)
        return stats.summary()

    def corpora() -> str:
        build = corpora_for_run(out, cfg.corpus, hf=cfg.hf_export)
        counts = ", ".join(f"{split}: {sum(c.values())}" for split, c in build.counts().items())
        return f"examples per split: {counts}; {len(build.rejects)} rejects"

    def audit() -> str:
        from pipeline.commands import audit as audit_command

        args = argparse.Namespace(path=out, profiles=profiles_file, out=None, samples=6, top=5, seed=0, no_html=False)
        if audit_command.run(args) != 0:
            raise RuntimeError("the audit failed")
        return f"report: {out / 'audit.html'}"

    prompt_files = [PROMPTS_DIR]
    steps = [
        Step(
            "adapters",
            _dataset_root(cfg),
            [utterances],
            cfg.model_dump(include={"dataset", "root", "protocol", "options"}),
            adapters,
        ),
        Step("profile", [utterances], [profiles_file], {"profiles": cfg.profiles}, profile),
        Step("relevance", [utterances, profiles_file], [relevance_file], cfg.relevance, relevance),
        Step(
            "generate",
            [utterances, profiles_file, relevance_file, *prompt_files],
            [generations],
            cfg.generate,
            stage_one,
        ),
        Step("verify", [utterances, profiles_file, relevance_file, generations], [verified], cfg.verify, stage_two),
        Step(
            "corpora",
            [utterances, verified, *prompt_files],
            [out / "corpora"],
            cfg.corpus.model_dump(mode="json") | {"hf": cfg.hf_export},
            corpora,
        ),
    ]
    if cfg.audit:
        steps.append(
            Step("audit", [verified, profiles_file, relevance_file, out / "corpora"], [out / "audit.html"], {}, audit)
        )
    return steps


def gather_rejects(out: Path) -> int:
    """One table of every stage's rejects, so an audit finds them in one place."""
    rejects: list[Reject] = []
    for name in STAGE_REJECTS:
        path = out / name
        if path.is_file():
            rejects += read_records(path, Reject)
    write_records(rejects, out / REJECTS, Reject)
    return len(rejects)


def run_data(cfg: DataConfig) -> bool:
    """Run every step that is not up to date; True when any did work."""
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    write_resolved(cfg, out / RESOLVED_CONFIG)
    did = [run_step(step, out / STAMPS_DIR) for step in build_steps(cfg)]
    if any(did) or not (out / REJECTS).is_file():
        print(f"[rejects] {gather_rejects(out)} rejects from every stage in {out / REJECTS}")
    if not any(did):
        print(f"nothing to do: {out} is up to date")
    return any(did)
