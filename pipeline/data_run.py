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

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from pipeline.acoustic import AcousticProfile, compute_profiles, load_profiles
from pipeline.audio_roots import portable, read_roots, resolved, roots_for, write_roots
from pipeline.audit.run import AuditConfig, run_audit
from pipeline.config import AdapterOptions, adapter_options, load_config, user_settings, write_resolved
from pipeline.corpora import PROFILE_REJECTS_FILE, CorpusConfig, corpora_for_run
from pipeline.datasets import load_dataset
from pipeline.datasets.demo import BUNDLED as DEMO_CORPUS
from pipeline.generate import generate, generate_blind
from pipeline.generate_config import GenerateConfig
from pipeline.llm.base import Sampling
from pipeline.llm.config import LLMConfig
from pipeline.llm.embedded import EMBEDDED
from pipeline.parquet import read_records, write_records, write_text_atomic
from pipeline.prompts import PROMPTS_DIR
from pipeline.records import Reject, Utterance
from pipeline.rejects import reject_lines
from pipeline.relevance import RELEVANCE_FILE, RelevanceSettings, fit_relevance, load_relevance, save_relevance
from pipeline.splits import plan_splits
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
    PROFILE_REJECTS_FILE,
    "generate_rejects.parquet",
    "corpora/rejects.parquet",
)


# The embedded 135M teacher runs on a 2-core CPU at tens of tokens a second and, when it loops,
# loops until max_tokens: one candidate of at most 224 tokens keeps the demo run within minutes.
# With a real teacher stage one's general defaults apply (see load_data_config).
# top_p 1: nucleus sampling sorts the whole 49k vocabulary every step (14 % of a decode step in
# py-spy) while the grammar already narrows what may follow; temperature still shapes the rest.
# seed 0: the embedded teacher runs in-process, where a seed is safe and makes the demo repeatable.
EMBEDDED_SAMPLING = Sampling(n=1, max_tokens=224, temperature=0.7, top_p=1.0, seed=0)
# Larger batches amortise reading the weights on CPU: 8 -> 32 raised 68 -> 96 tok/s here.
EMBEDDED_BATCH = 32
# Short prompts for the small teacher: the full templates' ~550-token system prompt was ~40 % of
# the demo's generate time (prefill), and their format example is what the 135M model copied.
# Grounded decoding (GenerateConfig.grounded) supplies the format.
EMBEDDED_TEMPLATES = {"acoustic": "rationale/acoustic_compact.v2", "elaborate": "rationale/elaborate_compact.v1"}


def embedded_teacher_config() -> GenerateConfig:
    """Stage one tuned for the embedded 135M teacher on CPU: ``make data``'s default."""
    return GenerateConfig(
        sampling=EMBEDDED_SAMPLING,
        max_parse_retries=0,
        llm=LLMConfig(batch_size=EMBEDDED_BATCH),
        templates=EMBEDDED_TEMPLATES,
    )


class DataConfig(BaseModel):
    """Everything ``make data`` does, with defaults that run offline on the demo corpus."""

    model_config = ConfigDict(extra="forbid")

    dataset: str = "demo"
    root: str | None = Field(None, description="where the dataset lives; the demo corpus is bundled")
    protocol: str | None = Field(None, description="label protocol; default: the dataset's usual one")
    options: AdapterOptions = adapter_options("adapter option (e.g. -o splits=[dev] -o audio_dir=DIR), YAML value")
    out: str | None = Field(None, description="run folder; default: runs/DATASET")
    workers: int = Field(2, ge=1, description="processes for the acoustic profile")
    profiles: bool = Field(True, description="measure the voice (skipped anyway for datasets without audio)")
    relevance: RelevanceSettings = Field(
        default_factory=RelevanceSettings, description="the relevance table fitted on the training split"
    )
    generate: GenerateConfig = Field(
        default_factory=embedded_teacher_config,
        description="stage one; the defaults suit the embedded 135M teacher (see load_data_config for others)",
    )
    verify: VerifyConfig = Field(default_factory=VerifyConfig)
    corpus: CorpusConfig = Field(default_factory=CorpusConfig)
    hf_export: bool = Field(True, description="also save the corpora as a Hugging Face DatasetDict")
    audit: bool = True
    allow_partial: bool = Field(
        False,
        description="go on to stage two and the corpora when some teacher requests failed, and exit 0; "
        "by default such a run stops after stage one and exits 1 (a rerun re-asks exactly the failed requests)",
    )

    @property
    def run_folder(self) -> Path:
        return Path(self.out or f"runs/{self.dataset}")


def load_data_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> DataConfig:
    """The config of ``emoreason data``: defaults, then the YAML file, then flags.

    Stage one's defaults depend on the teacher: :func:`embedded_teacher_config` for the embedded
    135M model, :class:`GenerateConfig`'s general ones (full templates, longer answers, nucleus
    sampling, best of two, parse retries) for any other. What the user set, in the file or as a
    flag, is kept either way, even where it equals an embedded default.
    """
    teacher = user_settings(path, overrides).get("generate", {}).get("llm", {}).get("model", EMBEDDED)
    defaults = DataConfig() if teacher == EMBEDDED else DataConfig(generate=GenerateConfig())
    return load_config(DataConfig, path, overrides, defaults=defaults)


@dataclass
class StepResult:
    summary: str  # one line: what the step did
    failed: int = 0  # units of work that failed; a rerun of the step retries them
    failure: str = ""  # one line when failed: how many, why, and how to re-ask


@dataclass
class Step:
    name: str
    inputs: list[Path]
    outputs: list[Path]
    config: Any
    action: Callable[[], StepResult | str]  # does the work


def _file_stamp(path: Path) -> list[Any]:
    if path.is_dir():
        return sorted((str(p.relative_to(path)), *_file_stamp(p)) for p in path.rglob("*") if p.is_file())
    st = path.stat() if path.exists() else None
    return [st.st_size, st.st_mtime_ns] if st else ["absent"]


def fingerprint(step: Step) -> str:
    config = step.config.model_dump(mode="json") if isinstance(step.config, BaseModel) else step.config
    blob = json.dumps([step.name, config, [(str(p), _file_stamp(p)) for p in step.inputs]], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def _outputs_stamp(step: Step) -> str:
    blob = json.dumps([(str(p), _file_stamp(p)) for p in step.outputs], default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def _read_stamp(path: Path) -> dict[str, str]:
    """A step's marker; an unreadable one (cut by a kill) means "not done"."""
    try:
        stamp = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return stamp if isinstance(stamp, dict) else {}


def _write_stamp(path: Path, stamp: dict[str, str]) -> None:
    write_text_atomic(json.dumps(stamp), path)  # a kill leaves the old marker or the new one, never half of one


def run_step(step: Step, stamps: Path) -> StepResult | None:
    """Run ``step`` unless it is up to date; its result, or None when it was skipped.

    Up to date means: its inputs and configuration are those of its last complete run, and its
    outputs are still the ones that run wrote (a file rewritten by another command, e.g.
    ``emoreason generate`` into the same folder, makes the step run again). A step whose work
    partly failed writes no marker, so the next run does it again (stage one then re-asks only the
    failed requests: the rest come from the request cache).
    """
    marker = stamps / f"{step.name}.json"
    digest = fingerprint(step)
    stamp = _read_stamp(marker)
    if (
        all(p.exists() for p in step.outputs)
        and stamp.get("inputs") == digest
        and stamp.get("outputs") == _outputs_stamp(step)
    ):
        print(f"[{step.name}] up to date, skipped", flush=True)
        return None
    print(f"[{step.name}] running", flush=True)
    start = time.perf_counter()
    result = step.action()
    result = result if isinstance(result, StepResult) else StepResult(result)
    print(f"[{step.name}] {result.summary} ({time.perf_counter() - start:.1f} s)", flush=True)
    if result.failed:
        marker.unlink(missing_ok=True)
    else:
        _write_stamp(marker, {"inputs": digest, "outputs": _outputs_stamp(step)})
    return result


def _dataset_root(cfg: DataConfig) -> list[Path]:
    if cfg.root is None:
        return [DEMO_CORPUS] if cfg.dataset == "demo" else []
    return [Path(cfg.root)]


def build_steps(cfg: DataConfig) -> list[Step]:
    out = cfg.run_folder
    utterances, profiles_dir = out / UTTERANCES, out / PROFILES_DIR
    profiles_file, generations, verified = profiles_dir / "profiles.parquet", out / GENERATIONS, out / VERIFIED
    relevance_file = out / RELEVANCE_FILE

    def utts() -> list[Utterance]:
        # Missing files are the profile step's rejects, not an error here.
        return resolved(read_records(utterances, Utterance), read_roots(out), where=utterances, check=False)

    def usable() -> list[Utterance]:
        """The utterances whose audio the profile step did not reject: a rejected one (unreadable,
        NaN or silent audio) reaches no later output; the corpora's rejects say why."""
        rejected = out / PROFILE_REJECTS_FILE
        quarantined = {r.record_id for r in read_records(rejected, Reject)} if rejected.is_file() else set()
        return [u for u in utts() if u.id not in quarantined]

    def adapters() -> str:
        result = load_dataset(cfg.dataset, cfg.root, cfg.protocol, **cfg.options)
        # The corpora step cuts the splits last; a split it cannot honour must stop the run here,
        # before any audio is measured or any teacher asked.
        plan = plan_splits(result.utterances, cfg.corpus.test_session, cfg.corpus.dev_session, cfg.corpus.guard)
        plan.check_utterances(result.utterances)
        roots = roots_for(result.utterances, result.audio_root)
        write_roots(roots, out)
        write_records(portable(result.utterances, roots), utterances, Utterance)
        write_records(result.rejects, out / ADAPTER_REJECTS, Reject)
        for notice in getattr(result, "notices", []):
            print(f"  note: {notice}")
        for line in reject_lines(result.rejects, str(out / ADAPTER_REJECTS)):
            print(line)
        return f"{len(result.utterances)} utterances, {len(result.rejects)} rejects"

    def profile() -> str:
        utterances_ = utts()
        if not cfg.profiles or not any(u.audio_path for u in utterances_):
            profiles_dir.mkdir(parents=True, exist_ok=True)
            write_records([], profiles_file, AcousticProfile)
            return "no audio in this dataset: no profiles"
        run = compute_profiles(utterances_, profiles_dir, workers=cfg.workers, progress=True)
        for line in reject_lines(run.rejects, str(out / PROFILE_REJECTS_FILE)):
            print(line)
        return (
            f"{len(run.profiles)} profiles ({run.measured} measured, {run.cached} cached), {len(run.rejects)} rejects"
        )

    def profiles_or_none():
        found = load_profiles(profiles_file)
        return found or None

    def relevance() -> str:
        table = fit_relevance(usable(), profiles_or_none(), cfg.relevance)
        save_relevance(table, relevance_file)
        known = sum(c.direction is not None for c in table.cells)
        directed = sum(bool(c.direction) for c in table.cells)
        return (
            f"{len(table.cells)} cells fitted on {table.fitted_on} utterances: {directed} with a typical "
            f"deviation, {len(table.cells) - known} unknown; {len(table.sentences)} multi-emotion sentence(s)"
        )

    def stage_one() -> StepResult:
        run = generate(usable(), profiles_or_none(), cfg.generate, out, relevance=load_relevance(relevance_file))
        failed = run.failed_requests()
        if not failed:
            return StepResult(run.summary())
        why = "; ".join(f"{reason}: {count}" for reason, count in failed.most_common(3))
        total = sum(failed.values())
        return StepResult(
            run.summary(),
            failed=total,
            failure=f"stage one: {total} of {run.requests} teacher requests failed ({why}); "
            "rerun the same command to re-ask exactly those",
        )

    def stage_two() -> str:
        utterances_, profiles = usable(), profiles_or_none()
        blind = None
        if cfg.verify.blind:
            blind = generate_blind(utterances_, profiles, cfg.generate, out)
        by_id = {u.id: u for u in utterances_}
        table = load_relevance(relevance_file)
        stats = verify_file(generations, by_id, profiles, cfg.verify, blind, out_path=verified, relevance=table)
        return stats.summary()

    def corpora() -> str:
        build = corpora_for_run(out, cfg.corpus, hf=cfg.hf_export)
        counts = ", ".join(f"{split}: {sum(c.values())}" for split, c in build.counts().items())
        return f"examples per split: {counts}; {len(build.rejects)} rejects"

    def audit() -> str:
        result = run_audit(AuditConfig(path=out, profiles=profiles_file, samples=6, top=5))
        print(result.summary)
        for note in result.notes:
            print(f"  note: {note}")
        return f"report: {result.report}"

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
            [utterances, verified, out / PROFILE_REJECTS_FILE, *prompt_files],
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


@dataclass
class DataRun:
    did_work: bool
    failure: str = ""  # one line when some work failed (the run then exits non-zero unless partial is allowed)


def run_data(cfg: DataConfig) -> DataRun:
    """Run every step that is not up to date.

    A step whose work partly failed (stage one's failed requests) stops the run before the steps
    that would build on its partial output, unless ``cfg.allow_partial``: then they run on what
    there is, and the failed work is retried by the next run either way.
    """
    out = cfg.run_folder
    out.mkdir(parents=True, exist_ok=True)
    write_resolved(cfg, out / RESOLVED_CONFIG)
    did, failure = [], ""
    for step in build_steps(cfg):
        result = run_step(step, out / STAMPS_DIR)
        did.append(result is not None)
        if result is not None and result.failed:
            failure = result.failure
            if not cfg.allow_partial:
                break
    if any(did) or not (out / REJECTS).is_file():
        print(f"[rejects] {gather_rejects(out)} rejects from every stage in {out / REJECTS}")
    if not any(did):
        print(f"nothing to do: {out} is up to date")
    return DataRun(any(did), failure)
