"""``emoreason eval``: generate on a test split, score it both ways, report it beside other runs.

    emoreason eval --checkpoint runs/train-ravdess --dataset ravdess --root ../shared/data/ravdess16k \\
        --split test --out runs/eval-ravdess --compare runs/baseline-ravdess
    emoreason eval --checkpoint runs/train-tiny --corpus runs/ravdess-corpus --split dev --task emotion_recognition
    emoreason eval ... --judge-backend transformers                        # AudioBench judge, embedded model
    emoreason eval ... --judge-backend openai --judge-model Qwen/Qwen2.5-7B-Instruct --judge-url http://gpu:8000/v1

The flags are EvalConfig's fields (model/eval/config.py).

Writes into ``--out``: ``predictions/part-*.parquet`` (one per batch; a re-run resumes, skipping
answered utterances), ``predictions.parquet`` (all rows), ``judge.parquet`` (verdicts),
``confusion.png``, ``summary.json`` and ``report.html`` (this run and every ``--compare`` run).
"""

from __future__ import annotations

import sys
from pathlib import Path

from model.commands import inference_device, typed_command
from model.eval.config import EvalConfig

Args = EvalConfig


def run(args: EvalConfig) -> int:
    try:
        return _run(args)
    except (ValueError, FileNotFoundError, NotADirectoryError) as err:
        print(f"emoreason eval: {err}", file=sys.stderr)
        return 2


def _items(args: EvalConfig):
    from model.eval.run import items_from_corpus, items_from_dataset
    from pipeline.records import Task

    task = Task(args.task) if args.task else None
    if args.corpus:
        from model.train.data import load_corpus

        if args.model_labels:
            raise ValueError("--model-labels applies to --dataset; a corpus's examples carry their own protocol")
        items = items_from_corpus(load_corpus(args.corpus, args.audio_root), args.split, task)
        if not items:
            raise ValueError(f"{args.corpus}: no emotion examples with a gold label in split {args.split!r}")
        return items, [], {}
    if args.audio_root:
        raise ValueError("--audio-root applies to --corpus; a dataset adapter reads its audio from --root")
    items, rejects, utterances = items_from_dataset(
        args.dataset, args.root, args.split, args.protocol, task or Task.emotion_reasoning, args.model_labels,
        **args.options,
    )  # fmt: skip
    return items, rejects, {u.id: u for u in utterances}


def _run(args: EvalConfig) -> int:
    from collections import Counter

    from model.config import CheckpointError
    from model.eval.extract import Status
    from model.eval.metrics import classification_metrics, plot_confusion, scoring_labels
    from model.eval.reasoning import reasoning_quality
    from model.eval.report import (
        RunSummary,
        load_summary,
        per_class_table,
        scoring_notes,
        terminal_table,
        write_report,
        write_summary,
    )
    from model.eval.run import EvalRow, GenerationStats, read_predictions, rescore, resolve_checkpoint
    from pipeline.labels import protocol
    from pipeline.parquet import write_records
    from pipeline.records import Reject

    checkpoint = resolve_checkpoint(args.checkpoint)
    compare = [load_summary(p) for p in args.compare]  # fail before generating, not after
    items, adapter_rejects, utterances = _items(args)
    if args.limit:
        items = items[: args.limit]
    source = "corpus" if args.corpus else args.dataset
    out = Path(args.out or f"runs/eval-{source}-{args.split}")
    parts = out / "predictions"

    try:
        stats = GenerationStats(skipped=len(items)) if args.score_only else _generate(args, checkpoint, items, parts)
    except CheckpointError as err:
        print(f"emoreason evaluate: refusing checkpoint: {err}", file=sys.stderr)
        return 2
    wanted = {i.utterance_id for i in items}
    rows, rejects = read_predictions(parts)
    rows = [rescore(r) for r in rows if r.utterance_id in wanted]
    rejects = [r for r in rejects if r.record_id in wanted]
    if not rows:
        raise ValueError(
            f"no answers among {len(items)} utterances ({Counter(r.reason for r in rejects)} rejected); "
            "run without --score-only to generate them"
        )
    unanswered = len(wanted) - len(rows) - len(rejects)
    if unanswered:
        print(
            f"emoreason eval: {unanswered} utterances not answered yet; scoring the {len(rows)} answered",
            file=sys.stderr,
        )
    write_records(rows, out / "predictions.parquet", EvalRow)
    write_records([*adapter_rejects, *rejects], out / "rejects.parquet", Reject)
    proto_name = rows[0].label_protocol
    proto = protocol(proto_name)
    gold = [r.gold for r in rows]
    metrics = classification_metrics(gold, [r.label for r in rows], scoring_labels(proto.names, gold))
    plot_confusion(metrics, out / "confusion.png")

    profiles = None
    if args.profiles:
        from pipeline.acoustic import load_profiles

        profiles = load_profiles(args.profiles)
    # Label-only answers have no evidence to verify: no reasoning-quality rows of zeros for them.
    label_only = args.task == "emotion_recognition"
    quality = None if label_only else reasoning_quality(rows, utterances, profiles)

    judge_score = judged = None
    if args.judge_backend:
        judge_score, judged = _judge(args, rows, out)

    statuses = Counter(r.status for r in rows)
    generate_s = sum(r.latency_s for r in rows)
    summary = RunSummary(
        name=args.name or _run_name(checkpoint),
        kind="audiollm",
        dataset=rows[0].dataset,
        split=args.split,
        protocol=proto_name,
        checkpoint=str(checkpoint),
        n_items=len(items),
        n_rejects=len(rejects) + len(adapter_rejects),
        metrics=metrics,
        statuses={s.value: statuses.get(s.value, 0) for s in Status},
        judge=judge_score,
        quality=quality,
        judged_quality=judged,
        timing={  # over every answer, this invocation's and resumed ones
            "generate_s": round(generate_s, 2),
            "clips_per_s": round(len(rows) / generate_s, 3) if generate_s else 0.0,
            "answered_now": stats.answered,
            "resumed": stats.skipped,
        },
        command=typed_command("eval"),
    )
    write_summary(summary, out)
    report = write_report([summary, *compare], out / "report.html", title=f"{summary.name} on {source} ({args.split})")
    print(terminal_table([summary, *compare]))
    print("\n" + per_class_table([summary, *compare]))
    outside = Counter(g for g in gold if g not in proto.names)
    for note in scoring_notes(dict(outside), dict(Counter(r.reason for r in adapter_rejects))):
        print(note)
    print(f"\n{len(rows)} answers ({stats.answered} generated now), {len(rejects)} rejects; {report}")
    return 0


def _generate(args: EvalConfig, checkpoint: Path, items, parts: Path):
    from model.audiollm import AudioLLM
    from model.collator import AudioCollator
    from model.eval.run import generate_predictions

    device = inference_device(args.device)
    print(f"loading {checkpoint} on {device}", file=sys.stderr)
    model = AudioLLM.from_pretrained(checkpoint).to(device)
    collator = AudioCollator(model.tokenizer, model.counter, model.config.audio_marker)
    return generate_predictions(
        model, collator, items, parts, batch_size=args.batch_size, max_new_tokens=args.max_new_tokens,
        device=device, progress=sys.stderr.isatty(), score_labels=args.score_labels,
    )  # fmt: skip


def _run_name(checkpoint: Path) -> str:
    if checkpoint.name == "final":  # <run>/final
        return checkpoint.parent.name
    if checkpoint.name == "model" and len(checkpoint.parents) > 2:  # <run>/checkpoints/step-N/model
        return f"{checkpoint.parents[2].name}@{checkpoint.parent.name}"
    return checkpoint.name


def _judge(args: EvalConfig, rows, out: Path):
    from model.eval.reasoning import judged_quality
    from pipeline.judge import Judge, JudgeConfig, JudgeItem, JudgeVerdict, judge_score
    from pipeline.llm.config import LLMConfig, make_client
    from pipeline.parquet import write_records
    from pipeline.request_cache import RequestCache

    llm = LLMConfig(
        backend=args.judge_backend, model=args.judge_model, **({"base_urls": args.judge_url} if args.judge_url else {})
    )
    client = make_client(llm)
    items = [JudgeItem(r.utterance_id, r.prompt, r.gold, r.generated, r.transcript) for r in rows]
    try:
        with RequestCache(out / "cache" / "judge.sqlite") as cache:
            judge = Judge(client, cache, JudgeConfig(llm=llm))
            verdicts = judge.rate(items)
            reasoning = judge.rate_reasoning([i for i in items if i.transcript])
    finally:
        client.close()
    write_records(verdicts, out / "judge.parquet", JudgeVerdict)
    write_records(reasoning, out / "judge_reasoning.parquet", JudgeVerdict)
    print(f"judge: {judge.requests_sent} requests sent, the rest from the cache", file=sys.stderr)
    return judge_score(verdicts), judged_quality(reasoning) if reasoning else None
