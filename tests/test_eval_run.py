"""Batched, resumable generation and `emoreason eval` end to end, with a tiny random AudioLLM."""

from __future__ import annotations

import dataclasses

import pandas as pd
import pytest
import torch
from test_model_fixtures import tiny_config

from model.audiollm import AudioLLM
from model.collator import AudioCollator
from model.eval.metrics import classification_metrics
from model.eval.report import RunSummary, load_summary, render_html, terminal_table, write_summary
from model.eval.run import generate_predictions, items_from_dataset, read_predictions, resolve_checkpoint
from pipeline.cli import main


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("evaltiny")
    torch.manual_seed(0)
    model = AudioLLM(tiny_config(root)).eval()
    checkpoint = model.save_pretrained(root / "run" / "checkpoints" / "step-000010" / "model")
    return model, AudioCollator(model.tokenizer, model.counter, model.config.audio_marker), checkpoint


@pytest.fixture(scope="module")
def items():
    items, rejects, _ = items_from_dataset("demo", None, split="test")
    assert not rejects and len(items) == 36
    return items[:5]


def test_generation_is_resumable_and_rejects_unreadable_audio(tiny, items, tmp_path):
    model, collate, _ = tiny
    broken = dataclasses.replace(items[0], utterance_id="demo/broken", audio_path=str(tmp_path / "none.flac"))
    todo = [*items, broken]
    parts = tmp_path / "predictions"
    stats = generate_predictions(model, collate, todo, parts, batch_size=2, max_new_tokens=4)
    assert (stats.answered, stats.rejected, stats.skipped) == (5, 1, 0)
    rows, rejects = read_predictions(parts)
    assert sorted(r.utterance_id for r in rows) == sorted(i.utterance_id for i in items)
    assert [(r.record_id, r.reason, r.stage) for r in rejects] == [("demo/broken", "missing_audio", "eval")]
    row = rows[0]
    assert row.prompt and row.gold and row.status in {"final_line", "synonym", "ambiguous", "none", "refusal"}
    assert row.correct == (row.label == row.gold) and row.latency_s > 0
    # a re-run asks nothing; a lost part (a run killed mid-way) is asked again, and only it
    again = generate_predictions(model, collate, todo, parts, batch_size=2, max_new_tokens=4)
    assert (again.answered, again.skipped) == (0, 6)
    lost = sorted(parts.glob("part-*.parquet"))[0]
    lost_ids = set(pd.read_parquet(lost).utterance_id)
    lost.unlink()
    resumed = generate_predictions(model, collate, todo, parts, batch_size=2, max_new_tokens=4)
    assert resumed.answered == len(lost_ids)
    assert len(read_predictions(parts)[0]) == 5


def test_greedy_answers_do_not_depend_on_batching(tiny, items, tmp_path):
    model, collate, _ = tiny
    generate_predictions(model, collate, items[:3], tmp_path / "a", batch_size=1, max_new_tokens=4)
    generate_predictions(model, collate, items[:3], tmp_path / "b", batch_size=3, max_new_tokens=4)
    one = {r.utterance_id: r.generated for r in read_predictions(tmp_path / "a")[0]}
    five = {r.utterance_id: r.generated for r in read_predictions(tmp_path / "b")[0]}
    assert one == five


def test_checkpoint_resolution(tiny, tmp_path):
    _, _, checkpoint = tiny
    run_dir = checkpoint.parents[2]
    assert resolve_checkpoint(run_dir) == checkpoint  # latest checkpoints/step-*/model
    assert resolve_checkpoint(checkpoint) == checkpoint
    with pytest.raises(FileNotFoundError, match="holds no AudioLLM checkpoint"):
        resolve_checkpoint(tmp_path)


def test_eval_command_end_to_end_with_compare(tiny, tmp_path, capsys):
    _, _, checkpoint = tiny
    other = tmp_path / "other"
    metrics = classification_metrics(["angry", "sad"], ["angry", "angry"], ["angry", "sad"], bootstrap=50)
    write_summary(
        RunSummary(
            name="reference", kind="baseline", dataset="demo", split="test", protocol="all", n_items=2, metrics=metrics
        ),
        other,
    )
    out = tmp_path / "eval"
    argv = ["eval", "--checkpoint", str(checkpoint.parents[2]), "--dataset", "demo", "--split", "test", "--limit", "3"]
    argv += ["--max-new-tokens", "4", "--batch-size", "3", "--out", str(out), "--compare", str(other)]
    assert main(argv) == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    assert "run@step-000010" in printed and "reference" in printed
    summary = load_summary(out)
    assert summary.n_items == 3 and summary.metrics.n == 3 and sum(summary.statuses.values()) == 3
    assert summary.quality is not None and summary.quality.n == 3
    # label-only instructions: nothing to verify, so no reasoning-quality rows of zeros
    assert main([*argv, "--score-only", "--task", "emotion_recognition"]) == 0, capsys.readouterr().err
    assert load_summary(out).quality is None
    table = pd.read_parquet(out / "predictions.parquet")
    assert len(table) == 3 and {"utterance_id", "prompt", "generated", "label", "status", "gold", "latency_s"} <= set(
        table.columns
    )
    assert pd.read_parquet(out / "rejects.parquet").empty  # every demo clip is readable
    page = (out / "report.html").read_text()
    assert page.count("data:image/png;base64,") >= 4 and "reference" in page and "Label extraction" in page
    # resumed: a second run generates nothing and gives the same numbers
    assert main(argv) == 0
    assert load_summary(out).metrics == summary.metrics
    assert load_summary(out).timing["answered_now"] == 0
    # score-only: no model loaded; of 5 utterances asked, the 3 answered are scored
    capsys.readouterr()
    score_only = [*argv[:7], "--limit", "5", "--out", str(out), "--score-only"]
    assert main(score_only) == 0
    assert "2 utterances not answered yet; scoring the 3 answered" in capsys.readouterr().err
    assert load_summary(out).metrics == summary.metrics


def test_eval_command_errors_are_clear(tmp_path, capsys):
    assert main(["eval", "--checkpoint", str(tmp_path / "none"), "--dataset", "demo"]) == 2
    assert "checkpoint not found" in capsys.readouterr().err


def test_report_renders_runs_side_by_side():
    gold = ["angry", "sad", "happy", "sad"]
    a = classification_metrics(gold, ["angry", "sad", None, "sad"], ["angry", "happy", "sad"], bootstrap=20)
    b = classification_metrics(gold, ["sad", "sad", "happy", "angry"], ["angry", "happy", "sad"], bootstrap=20)
    runs = [
        RunSummary(name="model A", kind="audiollm", dataset="demo", split="test", protocol="p", n_items=4, metrics=a,
                   statuses={"final_line": 3, "none": 1}),
        RunSummary(name="baseline", kind="baseline", dataset="demo", split="test", protocol="p", n_items=4, metrics=b),
    ]  # fmt: skip
    text = terminal_table(runs)
    assert "model A" in text and "75.0 [" in text and "25.0 %" in text  # WA with its interval; 1 of 4 unlabelled
    page = render_html(runs)
    assert page.startswith("<!doctype html>") and page.count("<img") == 4  # headline, recall, 2 confusions


def test_report_escapes_names_labels_and_commands():
    """A run name, a label, a path or a command holding markup shows as text in the page."""
    script = "<script>alert(1)</script>"
    gold = ["angry", script, script]
    a = classification_metrics(gold, ["angry", script, None], ["angry", script], bootstrap=5)
    b = classification_metrics(["angry", "sad"], ["angry", "sad"], ["angry", "sad"], bootstrap=5)
    runs = [
        RunSummary(name=script, kind="audiollm", dataset=script, split=script, protocol=script, n_items=3,
                   metrics=a, checkpoint=script, command=f"emoreason eval --title '{script}'"),
        RunSummary(name=f"other {script}", kind="baseline", dataset="demo", split="test", protocol="p", n_items=2,
                   metrics=b),
    ]  # fmt: skip
    page = render_html(runs, title=script)
    assert "<script" not in page.lower()
    assert "runs other &lt;script&gt;alert(1)&lt;/script&gt; use another label set" in page
    assert "(angry, &lt;script&gt;alert(1)&lt;/script&gt;)" in page


def test_report_module_aggregates_folds(tmp_path, capsys):
    from model.eval.report import main as report_main

    labels = ["angry", "sad"]
    for i, pred in enumerate((["angry", "sad"], ["sad", "sad"])):
        m = classification_metrics(["angry", "sad"], pred, labels, bootstrap=10)
        run = RunSummary(name=f"Ses0{i + 1}", kind="audiollm", dataset="iemocap", split="test", protocol="p",
                         n_items=2, metrics=m)  # fmt: skip
        write_summary(run, tmp_path / f"fold{i}")
    out = tmp_path / "folds.html"
    assert report_main([str(tmp_path / "fold0"), str(tmp_path / "fold1"), "--folds", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "mean ± std (2 folds)" in printed and "75.0 ± 35.4" in printed  # WA 1.0 and 0.5: sample std
    assert "mean ± std (2 folds)" in out.read_text()


def test_label_scoring_ranks_every_label_by_its_log_probability(tiny, items, tmp_path):
    from model.collator import AudioExample
    from pipeline.audio import load_audio
    from pipeline.labels import protocol
    from pipeline.records import Task, TrainingExample

    model, collate, _ = tiny
    generate_predictions(model, collate, items[:2], tmp_path / "s", batch_size=2, score_labels=True)
    rows = {r.utterance_id: r for r in read_predictions(tmp_path / "s")[0]}
    item = items[0]
    row = rows[item.utterance_id]
    names = protocol(item.label_protocol).names
    assert row.status == "scored" and row.label == row.generated == row.candidates[0] and len(row.candidates) == 3
    # the ranking is the model's: each label's summed token log-probability, computed one at a time
    wave = load_audio(item.audio_path, item.start_s, item.end_s)
    scores = {}
    for label in names:
        example = TrainingExample(
            id="x", task=Task.emotion_recognition, instruction=item.instruction, target=label,
            audio_path=item.audio_path, utterance_id="x", dataset="demo", split="test", speaker="s",
        )  # fmt: skip
        batch = collate([AudioExample(example=example, waveform=wave)])
        out = model(batch)
        n = int((batch.labels[:, 1:] != -100).sum())
        scores[label] = -float(out.loss.detach()) * n  # mean token NLL x tokens = minus the summed log-probability
        assert float(model.answer_logprobs(batch)[0]) == pytest.approx(scores[label], abs=1e-3)
    assert row.candidates == sorted(names, key=lambda name: -scores[name])[:3]


def _tone(path, seconds=0.6, hz=220.0):
    import numpy as np
    import soundfile as sf

    t = np.arange(int(16000 * seconds)) / 16000
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, (0.3 * np.sin(2 * np.pi * hz * t)).astype("float32"), 16000)


def test_eval_takes_every_actor_of_a_ravdess_folder(tiny, tmp_path, capsys):
    _, _, checkpoint = tiny
    root = tmp_path / "ravdess"
    for name in ["03-01-05-01-01-01-21.wav", "03-01-04-01-01-01-21.wav", "03-01-01-01-02-01-22.wav"]:
        # 2 s: RAVDESS's sentences ("Kids are talking by the door") over 0.6 s read as 12 syllables/s,
        # which the adapter rejects as transcript_too_long (pipeline/plausible.py).
        _tone(root / f"Actor_{name[-6:-4]}" / name, seconds=2.0)
    argv = ["eval", "--checkpoint", str(checkpoint), "--dataset", "ravdess", "--root", str(root)]
    argv += ["--max-new-tokens", "3", "--out", str(tmp_path / "out")]
    # actors 21-22 fall in no test split of the usual protocol: the error says where they are
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "no utterances in split 'test'" in err and "['train']" in err and "--split all" in err
    assert main([*argv, "--split", "all"]) == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    summary = load_summary(tmp_path / "out")
    assert summary.split == "all" and summary.metrics.n == 3 and summary.protocol == "ravdess8"
    assert set(pd.read_parquet(tmp_path / "out" / "predictions.parquet").speaker) == {"Actor_21", "Actor_22"}
    # per-class recall beside the headline, one row per class of the protocol
    assert "per-class recall (%)" in printed and "angry" in printed.split("per-class recall")[1]


def test_eval_scores_a_manifest_against_the_model_labels(tiny, tmp_path, capsys):
    _, _, checkpoint = tiny
    rows = [("a.wav", "ANG"), ("b.wav", "TRI"), ("c.wav", "FRU"), ("d.wav", "BORED")]
    for name, _ in rows:
        _tone(tmp_path / name)
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,label,speaker\n" + "".join(f"{p},{label},s1\n" for p, label in rows))
    label_map = tmp_path / "map.yaml"
    label_map.write_text("ANG: angry\nTRI: sad\nFRU: frustrated\n")  # BORED: no mapping
    out = tmp_path / "out"
    argv = ["eval", "--checkpoint", str(checkpoint), "--dataset", "manifest", "--root", str(manifest)]
    argv += ["-o", f"label_map={label_map}", "--split", "all", "--model-labels", "ravdess8"]
    argv += ["--task", "emotion_recognition", "--max-new-tokens", "3", "--out", str(out)]
    assert main(argv) == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    summary = load_summary(out)
    m = summary.metrics
    # the unmapped gold label is dropped; frustrated, which ravdess8 lacks, stays and counts as wrong
    assert m.n == 3 and summary.n_rejects == 1 and summary.protocol == "ravdess8"
    assert m.labels == [*protocol_names("ravdess8"), "frustrated"]
    frustrated = next(c for c in m.per_class if c.label == "frustrated")
    assert (frustrated.support, frustrated.recall) == (1, 0.0)
    assert m.ua == pytest.approx(sum(c.recall for c in m.per_class if c.support) / 3)
    assert "1 test utterances have a gold class outside the model's labels, scored as wrong: frustrated 1" in printed
    assert "1 test utterances dropped before scoring (unknown_label 1" in printed
    table = pd.read_parquet(out / "predictions.parquet")
    # asked in the model's labels, never the manifest's
    assert all("calm" in p and "frustrated" not in p for p in table.prompt), table.prompt.tolist()
    assert sorted(table.gold) == ["angry", "frustrated", "sad"]
    assert main([*argv[:3], "--corpus", str(tmp_path), "--model-labels", "ravdess8"]) == 2
    assert "--model-labels applies to --dataset" in capsys.readouterr().err


def protocol_names(name):
    from pipeline.labels import protocol

    return protocol(name).names


def test_a_speaker_normalised_model_is_evaluated_on_its_test_speakers_own_statistics(tmp_path_factory, tmp_path):
    """Transductive, as in training: every test speaker with enough clips is measured on all of
    them (labels unread) before any is answered; the others fall back to the pooled statistics."""
    from collections import Counter

    from model.speaker_norm import MIN_SPEAKER_UTTERANCES, speaker_key

    root = tmp_path_factory.mktemp("spk")
    torch.manual_seed(0)
    model = AudioLLM(tiny_config(root, **{"adapter.speaker_norm": True})).eval()
    collate = AudioCollator(model.tokenizer, model.counter, model.config.audio_marker)
    items, _, _ = items_from_dataset("demo", None, split="test")
    with pytest.raises(ValueError, match="never fitted"):  # no pooled statistics: not a trained model
        generate_predictions(model, collate, items[:2], tmp_path / "none", batch_size=4, max_new_tokens=2)
    train, _, _ = items_from_dataset("demo", None, split="train")  # what training measures the pooled statistics on
    model.fit_speaker_norm(_prompt_batches(collate, train[:12]), pooled=True)
    model.speech_speaker_norm.table.clear()
    model.emotion_speaker_norm.table.clear()
    generate_predictions(model, collate, items, tmp_path / "a", batch_size=6, max_new_tokens=2)
    clips = Counter(speaker_key(i.dataset, i.speaker) for i in items)
    assert set(model.speech_speaker_norm.table) == {s for s, n in clips.items() if n >= MIN_SPEAKER_UTTERANCES}
    assert len(read_predictions(tmp_path / "a")[0]) == len(items)


def _prompt_batches(collate, items):
    from model.collator import AudioPrompt
    from model.speaker_norm import speaker_key
    from pipeline.audio import load_audio

    for item in items:
        wave = load_audio(item.audio_path, item.start_s, item.end_s)
        yield collate([AudioPrompt("x", wave, speaker=speaker_key(item.dataset, item.speaker))])
