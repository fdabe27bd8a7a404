"""Multitask corpora: targets per task, seeded instructions, splits, leakage guard, rejects, HF export."""

from __future__ import annotations

import json
import shutil

import pyarrow.parquet as pq
import pytest
from factories_verified import corpus_records, utterance, verified

from pipeline.corpora import CorpusConfig, build_corpus, render_rationale, write_corpus
from pipeline.hf_export import ExportError, export_hf
from pipeline.labels import PROTOCOLS
from pipeline.parquet import read_records, write_records
from pipeline.questions import QUESTIONS_DIR, QuestionPoolError, load_pool
from pipeline.records import Reject, Task, TrainingExample, Utterance, VerifiedRecord
from pipeline.splits import LeakageError, SplitError, plan_splits
from pipeline.spoken_qa import make_question


def meld_utterances(records: list[VerifiedRecord]):
    return [
        utterance(r.utterance_id, r.transcript, r.emotion.value, split=r.split, speaker=r.speaker, sentiment="negative")
        for r in records
    ]


def by_task(build, split="train") -> dict[tuple[str, Task], TrainingExample]:
    return {(e.utterance_id, e.task): e for e in build.examples[split]}


def test_targets_per_task():
    records = corpus_records()
    build = build_corpus(meld_utterances(records), records)
    train = by_task(build)
    uid = "meld/train/dia1_utt0"
    assert train[(uid, Task.asr)].target == "Oh my God, you did not just say that to me!"
    assert train[(uid, Task.emotion_recognition)].target == "angry"
    assert train[(uid, Task.sentiment)].target == "negative"
    reasoning = train[(uid, Task.emotion_reasoning)]
    assert reasoning.target.endswith("\nEmotion: angry")
    assert '"you did not just say that to me"' in reasoning.target and "louder than usual" in reasoning.target
    assert reasoning.source_ids == [uid, f"{uid}#elaborate#0"]
    # Rejected rationales make no reasoning example; their utterances still make the other tasks.
    assert (("meld/train/dia2_utt0", Task.emotion_reasoning)) not in train
    assert ("meld/train/dia2_utt0", Task.emotion_recognition) in train
    assert build.skipped[("emotion_reasoning", "no_accepted_rationale")] == 6
    # Every instruction of a label task lists the protocol's labels; templates are recorded.
    labels = ", ".join(PROTOCOLS["meld7"].names)
    for e in build.examples["train"]:
        assert e.instruction_template.startswith(f"{e.task.value}.v1@")
        if e.task in (Task.emotion_recognition, Task.emotion_reasoning):
            assert labels in e.instruction
    assert {e.split for e in build.examples["test"]} == {"test"}


def test_reasoning_target_styles():
    answer = corpus_records()[0].answer
    summary = render_rationale(answer, "angry", "summarize")
    assert (
        summary
        == "He repeats the insult back in disbelief and raises his voice: this is anger, not surprise.\nEmotion: angry"
    )
    assert render_rationale(answer, "angry", "label_only") == "Emotion: angry"
    elaborate = render_rationale(answer, "angry", "elaborate")
    assert elaborate.startswith('The speaker says "you did not just say that to me", which suggests indignation')
    assert elaborate.count("Emotion:") == 1


def test_repeated_evidence_is_said_once():
    # The 135M teacher often lists one item twice; a target that says it twice teaches looping.
    answer = corpus_records()[0].answer
    first = answer.evidence[0]
    twice = answer.model_copy(
        update={"evidence": [first, first.model_copy(update={"cue": f"  {first.cue.upper()} "}), *answer.evidence[1:]]}
    )
    assert render_rationale(twice, "angry", "elaborate") == render_rationale(answer, "angry", "elaborate")
    # Different items that share a cue but not what they suggest both stay.
    other = answer.model_copy(
        update={"evidence": [first, first.model_copy(update={"suggests": "a raised voice"}), *answer.evidence[1:]]}
    )
    rendered = render_rationale(other, "angry", "elaborate")
    assert rendered.count(first.cue) == 2 and "a raised voice" in rendered


def test_instructions_are_seeded_and_order_independent():
    records = corpus_records()
    utts = meld_utterances(records)

    def instructions(build):
        return {e.id: e.instruction for s in build.examples.values() for e in s}

    first = instructions(build_corpus(utts, records, CorpusConfig(seed=7)))
    assert first == instructions(build_corpus(list(reversed(utts)), list(reversed(records)), CorpusConfig(seed=7)))
    other = instructions(build_corpus(utts, records, CorpusConfig(seed=8)))
    # Another seed draws other wordings (and, for spoken QA, possibly other questions).
    assert {k: v for k, v in other.items() if k in first} != {k: v for k, v in first.items() if k in other}


def test_no_audio_rejects_are_counted_and_written(tmp_path):
    records = corpus_records()[:2]
    utts = [
        utterance(r.utterance_id, r.transcript, r.emotion.value, speaker=r.speaker, audio=False) for r in records
    ] + [utterance("meld/train/dia9_utt0", "Hi there Ross.", "neutral", speaker="Monica")]
    build = build_corpus(utts, records)
    reasons = [(r.record_id, r.reason) for r in build.rejects]
    assert reasons.count(("meld/train/dia1_utt0", "no_audio")) == 1
    assert ("meld/train/dia1_utt0#elaborate#0", "no_audio") in reasons  # its rationale too
    assert len(reasons) == 4 and {e.utterance_id for e in build.examples["train"]} == {"meld/train/dia9_utt0"}
    paths = write_corpus(build, tmp_path / "corpora")
    assert [r.reason for r in read_records(paths["rejects"], Reject)] == ["no_audio"] * 4
    manifest = json.loads(paths["manifest"].read_text())
    assert manifest["rejects"] == {"no_audio": 4} and manifest["counts"]["train"]["asr"] == 1
    assert len(read_records(paths["train"], TrainingExample)) == sum(manifest["counts"]["train"].values())


def test_leakage_guard_refuses_a_test_speaker_in_train():
    utts = [
        utterance(
            "demo/a1", "I lost my keys again.", "sad", dataset="demo", speaker="anna", split="train", protocol="all"
        ),
        utterance(
            "demo/b1", "That is wonderful news!", "happy", dataset="demo", speaker="ben", split="test", protocol="all"
        ),
        utterance("demo/a2", "Not again, please.", "sad", dataset="demo", speaker="anna", split="test", protocol="all"),
    ]
    with pytest.raises(LeakageError, match="speaker 'anna' of demo has utterances in the test split"):
        build_corpus(utts, [])
    plan = plan_splits(utts[:2])
    assert plan.split_of("demo/a1") == "train"
    leaked = TrainingExample(
        id="x", task=Task.asr, instruction="Transcribe.", target="That is wonderful news!", audio_path="/b1.flac",
        utterance_id="demo/b1", dataset="demo", split="train", speaker="ben",
    )  # fmt: skip
    with pytest.raises(LeakageError, match="utterance 'demo/b1' belongs to the test split"):
        plan.check(leaked)
    with pytest.raises(LeakageError, match="speaker 'ben'"):
        plan.check(leaked.model_copy(update={"utterance_id": "demo/b9", "id": "y"}))


def test_iemocap_leave_one_session_out():
    utts = [
        utterance(f"iemocap/Ses0{s}{g}_x", "Okay.", "neutral", dataset="iemocap", speaker=f"Ses0{s}{g}",
                  split=f"Session{s}", session=f"Session{s}", protocol="iemocap4")
        for s in (1, 2, 3) for g in "FM"
    ]  # fmt: skip
    build = build_corpus(utts, [], CorpusConfig(test_session="Session2", dev_session="Session1"))
    assert {e.speaker for e in build.examples["test"]} == {"Ses02F", "Ses02M"}
    assert {e.speaker for e in build.examples["dev"]} == {"Ses01F", "Ses01M"}
    assert {e.speaker for e in build.examples["train"]} == {"Ses03F", "Ses03M"}
    assert "test session Session3" in plan_splits(utts).notes[0]  # default: the last session
    with pytest.raises(SplitError, match="session 'Session9' not found"):
        build_corpus(utts, [], CorpusConfig(test_session="Session9"))


def test_two_selected_candidates_of_one_style_are_an_error():
    a = verified("meld/train/dia1_utt0", "Oh no.", "sad", candidate=0)
    b = verified("meld/train/dia1_utt0", "Oh no.", "sad", candidate=1)
    with pytest.raises(ValueError, match="two selected elaborate rationales"):
        build_corpus(meld_utterances([a]), [a, b])


def test_target_style_filter():
    records = corpus_records()[:1]
    extra = verified(records[0].utterance_id, records[0].transcript, "angry", style="summarize")
    blind = verified(records[0].utterance_id, records[0].transcript, "angry", style="blind")
    build = build_corpus(meld_utterances(records), [*records, extra, blind], CorpusConfig(target_style="summarize"))
    (example,) = [e for e in build.examples["train"] if e.task == Task.emotion_reasoning]
    assert example.id.endswith("#summarize") and not example.target.startswith("The speaker says")
    # Without a chosen style every selected style makes an example, except label-blind answers.
    build = build_corpus(meld_utterances(records), [*records, extra, blind])
    styles = sorted(e.id.rsplit("#", 1)[1] for e in build.examples["train"] if e.task == Task.emotion_reasoning)
    assert styles == ["elaborate", "summarize"]


@pytest.mark.parametrize("seed", range(5))
def test_spoken_qa_answers_come_from_the_transcript(seed):
    text = "Ross, I told you, we were on a break and you know it."
    qa = make_question("meld/x", text, ["sandwich", "apartment"], seed)
    assert qa is not None
    if qa.kind == "continuation":
        words = " ".join(w.strip(",.") for w in text.split())
        assert f"{qa.values['phrase']} {qa.answer}" in words
    elif qa.kind == "mention":
        assert (qa.values["word"] in text.lower()) == qa.answer.startswith("Yes")
    elif qa.kind == "name":
        assert qa.answer == "The speaker mentions Ross."  # "Ross" opens the sentence: not a name here
    assert make_question("meld/y", "", [], seed) is None


def test_question_pools_are_versioned_and_validated(tmp_path):
    pool = load_pool(Task.emotion_recognition)
    assert "labels" in pool.placeholders and pool.ref.startswith("emotion_recognition.v1@")
    assert "{labels}" not in pool.draw("k", 0, labels="angry, sad")
    shutil.copy(QUESTIONS_DIR / "asr.v1.yaml", tmp_path / "asr.v1.yaml")
    before = load_pool(Task.asr, directory=tmp_path).ref
    (tmp_path / "asr.v1.yaml").write_text(
        (tmp_path / "asr.v1.yaml").read_text() + '  - "Say it back, word for word."\n'
    )
    assert load_pool(Task.asr, directory=tmp_path).ref != before
    (tmp_path / "asr.v1.yaml").write_text('id: asr\nversion: 1\nquestions:\n  - "Transcribe {speaker}."\n')
    with pytest.raises(QuestionPoolError, match="undeclared"):
        load_pool(Task.asr, directory=tmp_path)


def test_hf_export_round_trip_and_card(tmp_path, monkeypatch):
    from datasets import load_from_disk

    records = corpus_records()
    build = build_corpus(meld_utterances(records), records)
    write_corpus(build, tmp_path / "corpora")
    write_records(records, tmp_path / "verified.parquet", VerifiedRecord)
    out = export_hf(tmp_path / "corpora", tmp_path / "hf", verified=tmp_path / "verified.parquet")
    dd = load_from_disk(str(out))
    assert set(dd) == {"train", "dev", "test"}
    assert dd["train"].num_rows == len(build.examples["train"])
    row = dd["train"][0]
    assert row["id"] == build.examples["train"][0].id and row["task"] == build.examples["train"][0].task.value
    card = (out / "README.md").read_text()
    assert "license: gpl-3.0" in card and "MELD (Poria et al." in card
    assert "HuggingFaceTB/SmolLM2-135M-Instruct" in card and "a1b2c3d4e5f6" in card
    assert "| meld | 8 | 2 | 25.0% |" in card  # 2 of 8 candidates accepted
    assert f"| train | {build.counts()['train']['asr']} |" in card
    assert "emotion_reasoning.v1@" in card
    monkeypatch.delenv("HF_TOKEN", raising=False)
    with pytest.raises(ExportError, match="HF_TOKEN"):
        export_hf(tmp_path / "corpora", tmp_path / "hf2", repo_id="someone/corpus")
    assert not (tmp_path / "hf2").exists()  # refused before any work


def test_hf_push_refuses_iemocap(tmp_path, monkeypatch):
    utts = [
        utterance(f"iemocap/Ses0{s}F_x", "Okay.", "neutral", dataset="iemocap", speaker=f"Ses0{s}F",
                  split=f"Session{s}", session=f"Session{s}", protocol="iemocap4")
        for s in (1, 2)
    ]  # fmt: skip
    write_corpus(build_corpus(utts, []), tmp_path / "corpora")
    monkeypatch.setenv("HF_TOKEN", "not-a-real-token")  # never used: the refusal comes first
    with pytest.raises(ExportError, match="refusing to publish iemocap"):
        export_hf(tmp_path / "corpora", tmp_path / "hf", repo_id="someone/corpus")


def test_written_parquet_columns(tmp_path):
    records = corpus_records()
    paths = write_corpus(build_corpus(meld_utterances(records), records), tmp_path)
    names = pq.read_schema(paths["train"]).names
    assert names[:4] == ["id", "task", "instruction", "target"] and "instruction_template" in names


def test_corpora_for_run_on_the_demo_corpus(tmp_path):
    from datasets import load_from_disk

    from pipeline.corpora import corpora_for_run
    from pipeline.datasets import load_dataset

    utterances = load_dataset("demo").utterances
    write_records(utterances, tmp_path / "utterances.parquet", Utterance)
    first = utterances[0]
    rationale = verified(first.id, first.transcript, first.emotion.value, dataset="demo", speaker=first.speaker,
                         split=first.split)  # fmt: skip
    write_records([rationale], tmp_path / "verified.parquet", VerifiedRecord)
    build = corpora_for_run(tmp_path)
    speakers = {s: {e.speaker for e in build.examples[s]} for s in ("train", "dev", "test")}
    assert not (speakers["train"] | speakers["dev"]) & speakers["test"]
    counts = build.counts()
    assert counts["train"]["emotion_reasoning"] == 1 and counts["train"]["asr"] == sum(
        u.split == "train" for u in utterances
    )
    assert set(load_from_disk(str(tmp_path / "hf"))) == {"train", "dev", "test"}
    assert (tmp_path / "hf" / "README.md").read_text().count("Apache-2.0") >= 1


def test_meld_without_audio_is_all_rejects(meld_dir):
    from pipeline.datasets import load_dataset

    utterances = load_dataset("meld", meld_dir).utterances
    build = build_corpus(utterances, [])
    assert sum(len(v) for v in build.examples.values()) == 0
    assert len(build.rejects) == len(utterances) and {r.reason for r in build.rejects} == {"no_audio"}
