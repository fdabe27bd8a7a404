"""Multitask training corpora: task-tagged examples from utterances and accepted rationales.

    build = build_corpus(utterances, verified_records, CorpusConfig(test_session="Ses05"))
    write_corpus(build, out_dir / "corpora")   # train/dev/test.parquet, rejects.parquet, manifest.json
    corpora_for_run(run_dir)                   # the same from a run folder, plus the HF export

Per utterance (with audio), one example for each task the data allows:
- ``asr``: target = the transcript (utterances with a transcript);
- ``emotion_recognition``: target = the label under the utterance's protocol;
- ``emotion_reasoning``: target = the accepted, selected rationale of the chosen style, rendered
  as fluent text that ends with the line ``Emotion: <label>`` (``REASONING_FINAL_LINE``), which
  evaluation parses;
- ``sentiment``: target = positive/neutral/negative (datasets that annotate it, e.g. MELD);
- ``spoken_qa``: one deterministic question about the transcript (pipeline.spoken_qa).

Instructions come from the question pools (pipeline.questions), seeded by example id. An utterance
without audio (MELD ships CSVs only until the user extracts the clips) can make no example: it
is a reject with reason ``no_audio``, as is any selected rationale of it. Every train/dev example
passes the leakage guard (pipeline.splits) before it is kept.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from pipeline.audio_roots import AudioRoots, portable, read_roots, write_roots
from pipeline.labels import protocol
from pipeline.parquet import iter_records, read_records, write_records
from pipeline.questions import QuestionPool, load_pools
from pipeline.rationale import EvidenceKind, RationaleAnswer
from pipeline.records import Reject, Task, TrainingExample, Utterance, VerifiedRecord
from pipeline.splits import SPLITS, GuardUnit, SplitPlan, plan_splits
from pipeline.spoken_qa import distractor_vocabulary, make_question

REASONING_FINAL_LINE = "Emotion: {label}"
STAGE = "corpus"
# Styles whose target is the reasoning alone (the paper's "summarize"), or the label line alone.
_REASONING_ONLY_STYLES = frozenset({"summarize"})
_LABEL_ONLY_STYLES = frozenset({"label_only"})
# Label-blind answers serve stage two's self-consistency check; they are not training targets.
NOT_TARGET_STYLES = frozenset({"blind"})
_LEAD = {
    EvidenceKind.lexical: 'The speaker says "{cue}"',
    EvidenceKind.acoustic: "In the voice: {cue}",
    EvidenceKind.contextual: 'Earlier in the conversation: "{cue}"',
}
_VERB_STARTS = ("suggest", "indicate", "show", "signal", "impl", "convey", "reveal", "point")


class CorpusConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tasks: list[Task] = Field(default_factory=lambda: list(Task), description="tasks to write")
    target_style: str | None = Field(
        None, description="rationale style for emotion_reasoning (elaborate/summarize/...); None = every style selected"
    )
    seed: int = Field(0, description="seeds the instruction drawn for each example and the spoken-QA choices")
    question_version: int = 1
    test_session: str | None = Field(None, description="IEMOCAP leave-one-session-out: the held-out session")
    dev_session: str | None = None
    guard: GuardUnit = Field("auto", description="leakage guard unit; auto = speaker (utterance for MELD)")


@dataclass
class CorpusBuild:
    examples: dict[str, list[TrainingExample]]  # split -> examples
    rejects: list[Reject]
    plan: SplitPlan
    pools: dict[Task, QuestionPool]
    skipped: Counter = field(default_factory=Counter)  # (task, why) -> utterances that could not make it

    def reject(self, record_id: str, dataset: str, reason: str, detail: str, source: str | None = None) -> None:
        self.rejects.append(
            Reject(stage=STAGE, record_id=record_id, dataset=dataset, reason=reason, detail=detail, source=source or "")
        )

    def counts(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for split, examples in self.examples.items():
            out[split] = dict(sorted(Counter(e.task.value for e in examples).items()))
        return out


def render_rationale(answer: RationaleAnswer, label: str, style: str) -> str:
    """A rationale as the model should say it: evidence, reasoning, then the final label line."""
    final = REASONING_FINAL_LINE.format(label=label)
    if style in _LABEL_ONLY_STYLES:
        return final
    parts = []
    if style not in _REASONING_ONLY_STYLES:
        said: set[str] = set()
        for item in answer.evidence:
            cue = item.cue.strip().strip('"“”').rstrip(".")
            suggests = item.suggests.strip().rstrip(".")
            verb = "" if suggests.lower().startswith(_VERB_STARTS) else "suggests "
            sentence = f"{_LEAD[item.kind].format(cue=cue)}, which {verb}{suggests[:1].lower()}{suggests[1:]}."
            # Small teachers list one item twice; said twice in a target, it teaches the model to loop.
            key = " ".join(sentence.lower().split())
            if key not in said:
                said.add(key)
                parts.append(sentence)
    reasoning = " ".join(answer.reasoning.split())
    if reasoning:
        parts.append(reasoning if reasoning[-1] in ".!?" else reasoning + ".")
    return " ".join(parts) + "\n" + final


def _selected_rationales(records: Iterable[VerifiedRecord], style: str | None) -> dict[str, list[VerifiedRecord]]:
    chosen: dict[str, list[VerifiedRecord]] = defaultdict(list)
    for r in records:
        if r.style in NOT_TARGET_STYLES or r.answer is None or not (r.accepted and r.selected):
            continue
        if style is None or r.style == style:
            clash = [c for c in chosen[r.utterance_id] if c.style == r.style]
            if clash:
                raise ValueError(
                    f"two selected {r.style} rationales for {r.utterance_id}: {clash[0].id} and {r.id} "
                    "(stage two selects one candidate per utterance and style)"
                )
            chosen[r.utterance_id].append(r)
    return chosen


def build_corpus(
    utterances: Iterable[Utterance],
    verified: Iterable[VerifiedRecord],
    config: CorpusConfig | None = None,
    quarantine: Iterable[Reject] = (),
) -> CorpusBuild:
    """``quarantine``: rejects of earlier steps (the profile's unreadable or silent audio); their
    utterances make no example and are rejects here too, with the reason they were rejected for."""
    config = config or CorpusConfig()
    quarantined = {r.record_id: r for r in quarantine}
    utterances = list(utterances)
    by_id = {u.id: u for u in utterances}
    if len(by_id) != len(utterances):
        raise ValueError("utterance ids are not unique")
    plan = plan_splits(utterances, config.test_session, config.dev_session, config.guard)
    pools = load_pools(config.question_version)
    rationales = _selected_rationales(verified, config.target_style)
    tasks = set(config.tasks)
    distractors = distractor_vocabulary(u.transcript for u in utterances) if Task.spoken_qa in tasks else []

    build = CorpusBuild(examples={s: [] for s in SPLITS}, rejects=[], plan=plan, pools=pools)
    for uid in sorted(set(rationales) - set(by_id)):
        for r in rationales[uid]:
            build.reject(
                r.id, r.dataset, "unknown_utterance", f"rationale for {uid}, which is not among the utterances"
            )

    for u in utterances:
        if u.id in quarantined:
            why = quarantined[u.id]
            build.reject(u.id, u.dataset, why.reason, f"rejected by the {why.stage} step: {why.detail}", why.source)
            for r in rationales.get(u.id, []):
                build.reject(r.id, r.dataset, why.reason, f"rationale of {u.id}, rejected by the {why.stage} step")
            continue
        if u.audio_path is None:
            made = ", ".join(sorted(t.value for t in tasks))
            build.reject(u.id, u.dataset, "no_audio", f"no audio: cannot make speech examples ({made})", u.transcript)
            for r in rationales.get(u.id, []):
                build.reject(r.id, r.dataset, "no_audio", f"rationale of {u.id}, which has no audio")
            continue
        split = plan.split_of(u.id)
        for example in _examples(u, split, rationales.get(u.id, []), tasks, pools, distractors, config, build):
            plan.check(example, u.dialogue_id)
            build.examples[split].append(example)
    return build


def _examples(
    u: Utterance,
    split: str,
    rationales: list[VerifiedRecord],
    tasks: set[Task],
    pools: dict[Task, QuestionPool],
    distractors: list[str],
    config: CorpusConfig,
    build: CorpusBuild,
) -> Iterator[TrainingExample]:
    """Every example one utterance makes; tasks it cannot make are counted in ``build.skipped``."""
    proto = protocol(u.label_protocol)
    label = proto.apply(u.emotion)
    labels = ", ".join(proto.names)
    base = dict(
        audio_path=u.audio_path,
        start_s=u.start_s,
        end_s=u.end_s,
        utterance_id=u.id,
        dataset=u.dataset,
        split=split,
        speaker=u.speaker,
        emotion=label or u.emotion,
        label_protocol=u.label_protocol,
        transcript=u.transcript,
        duration_s=u.duration_s,
    )

    def example(task: Task, key: str, target: str, kind: str = "default", sources=(), **values: str):
        pool = pools[task]
        return TrainingExample(
            id=key,
            task=task,
            instruction=pool.draw(key, config.seed, kind, **values),
            target=target,
            source_ids=[u.id, *sources],
            instruction_template=pool.ref,
            **base,
        )

    transcript = (u.transcript or "").strip()
    if Task.asr in tasks:
        if transcript:
            yield example(Task.asr, f"{u.id}#asr", transcript)
        else:
            build.skipped[(Task.asr.value, "no_transcript")] += 1
    if label is None:
        for task in tasks & {Task.emotion_recognition, Task.emotion_reasoning}:
            build.skipped[(task.value, "label_outside_protocol")] += 1
    else:
        if Task.emotion_recognition in tasks:
            yield example(Task.emotion_recognition, f"{u.id}#emotion_recognition", label.value, labels=labels)
        if Task.emotion_reasoning in tasks:
            if not rationales:
                build.skipped[(Task.emotion_reasoning.value, "no_accepted_rationale")] += 1
            for r in rationales:
                target = render_rationale(r.answer, label.value, r.style)
                yield example(
                    Task.emotion_reasoning, f"{u.id}#emotion_reasoning#{r.style}", target, sources=[r.id], labels=labels
                )
    if Task.sentiment in tasks:
        if u.sentiment is not None:
            yield example(Task.sentiment, f"{u.id}#sentiment", u.sentiment.value)
        else:
            build.skipped[(Task.sentiment.value, "no_sentiment")] += 1
    if Task.spoken_qa in tasks:
        qa = make_question(u.id, transcript, distractors, config.seed)
        if qa is None:
            build.skipped[(Task.spoken_qa.value, "transcript_allows_no_question")] += 1
        else:
            yield example(Task.spoken_qa, f"{u.id}#spoken_qa#{qa.kind}", qa.answer, qa.kind, **qa.values)


def write_corpus(
    build: CorpusBuild, out_dir: str | Path, config: CorpusConfig | None = None, roots: AudioRoots | None = None
) -> dict[str, Path]:
    """Write one parquet per split, the rejects, and manifest.json (counts, pools, split notes).

    With ``roots`` (the adapters' audio roots), audio paths are stored relative to them and the
    roots recorded in ``audio_roots.json``, so the folder trains on another machine too.
    """
    out_dir = Path(out_dir)
    roots = roots or AudioRoots()
    paths = {
        s: write_records(portable(build.examples[s], roots), out_dir / f"{s}.parquet", TrainingExample) for s in SPLITS
    }
    paths["audio_roots"] = write_roots(roots, out_dir)
    paths["rejects"] = write_records(build.rejects, out_dir / "rejects.parquet", Reject)
    manifest = {
        "counts": build.counts(),
        "rejects": dict(Counter(r.reason for r in build.rejects)),
        "skipped": {f"{task}:{why}": n for (task, why), n in sorted(build.skipped.items())},
        "question_pools": {t.value: p.ref for t, p in build.pools.items()},
        "splits": list(build.plan.notes),
        "config": (config or CorpusConfig()).model_dump(mode="json"),
    }
    paths["manifest"] = out_dir / "manifest.json"
    paths["manifest"].write_text(json.dumps(manifest, indent=2) + "\n")
    return paths


UTTERANCES_FILE = "utterances.parquet"
VERIFIED_FILE = "verified.parquet"
PROFILE_REJECTS_FILE = "profiles/rejects.parquet"  # utterances whose audio the profile step rejected
CORPORA_DIR = "corpora"
HF_DIR = "hf"


def corpora_for_run(
    run_dir: str | Path, config: CorpusConfig | None = None, hf: bool = True, repo_id: str | None = None
) -> CorpusBuild:
    """``make data``'s last step: run_dir/utterances.parquet (+ verified.parquet) -> corpora/ and hf/.
    Utterances that profiles/rejects.parquet rejects (unreadable, NaN or silent audio) are left out."""
    run_dir = Path(run_dir)
    config = config or CorpusConfig()
    utterances_path, verified_path = run_dir / UTTERANCES_FILE, run_dir / VERIFIED_FILE
    if not utterances_path.is_file():
        raise FileNotFoundError(f"{utterances_path} not found: run the adapters first")
    verified = iter_records(verified_path, VerifiedRecord) if verified_path.is_file() else ()
    rejected_audio = run_dir / PROFILE_REJECTS_FILE
    quarantine = read_records(rejected_audio, Reject) if rejected_audio.is_file() else []
    # The table's audio paths stay as stored (relative to the run's roots): building needs no audio.
    build = build_corpus(read_records(utterances_path, Utterance), verified, config, quarantine)
    write_corpus(build, run_dir / CORPORA_DIR, config, read_roots(run_dir))
    if hf:
        from pipeline.hf_export import export_hf

        export_hf(
            run_dir / CORPORA_DIR,
            run_dir / HF_DIR,
            verified=verified_path if verified_path.is_file() else None,
            repo_id=repo_id,
        )
    return build
