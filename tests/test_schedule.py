"""The task scheduler: which task each step trains on, which groups train, and exact resume."""

from __future__ import annotations

from collections import Counter

import pytest

from model.schedule import ALL_GROUPS, EMOTION_GROUPS, SPEECH_GROUPS, ScheduleConfig, TaskScheduler
from pipeline.records import EMOTION_TASKS, SPEECH_TASKS, Task

SIZES = {Task.asr: 3, Task.spoken_qa: 2, Task.emotion_recognition: 4, Task.emotion_reasoning: 1, Task.sentiment: 2}


def run(cfg: ScheduleConfig, sizes=SIZES, epochs: int = 3, **kw):
    return list(TaskScheduler(cfg, sizes, epochs=epochs, **kw))


def test_alternating_per_epoch_rounds_and_groups():
    steps = run(ScheduleConfig(mode="alternating", round_length=1, final_joint_epochs=1), epochs=3)
    # 2 alternating epochs (speech, emotion, speech, emotion) then one joint epoch
    kinds = [s.round_kind for s in steps]
    assert len(steps) == 3 * sum(SIZES.values())
    runs = [k for i, k in enumerate(kinds) if i == 0 or kinds[i - 1] != k]
    assert runs == ["speech", "emotion", "speech", "emotion", "joint"]
    for s in steps:
        if s.round_kind == "speech":
            assert s.task in SPEECH_TASKS and s.trainable_groups == SPEECH_GROUPS
        elif s.round_kind == "emotion":
            assert s.task in EMOTION_TASKS and s.trainable_groups == EMOTION_GROUPS
        else:
            assert s.trainable_groups == ALL_GROUPS
    # every round covers each of its tasks exactly batches-per-epoch times
    first_speech = Counter(s.task for s in steps if s.round_index == 0)
    assert first_speech == {Task.asr: 3, Task.spoken_qa: 2}
    joint = Counter(s.task for s in steps if s.round_kind == "joint")
    assert joint == SIZES
    assert "lora" in SPEECH_GROUPS & EMOTION_GROUPS
    assert not {"emotion_encoder", "emotion_adapter"} & SPEECH_GROUPS


def test_alt_4ep_is_one_long_round_per_branch():
    steps = run(ScheduleConfig(mode="alternating", round_length=4, final_joint_epochs=1), epochs=5)
    kinds = [s.round_kind for s in steps]
    assert kinds == ["speech"] * 20 + ["emotion"] * 28 + ["joint"] * 12


def test_step_rounds_and_first_round_emotion():
    cfg = ScheduleConfig(
        mode="alternating", round_unit="step", round_length=4, first_round="emotion", final_joint_epochs=0
    )
    steps = run(cfg, epochs=1)
    assert len(steps) == 12
    assert [s.round_kind for s in steps] == ["emotion"] * 4 + ["speech"] * 4 + ["emotion"] * 4
    assert [s.round_index for s in steps[::4]] == [0, 1, 2]


def test_corpus_without_speech_tasks_has_only_emotion_rounds():
    steps = run(ScheduleConfig(final_joint_epochs=0), sizes={Task.emotion_recognition: 5}, epochs=2)
    assert {s.round_kind for s in steps} == {"emotion"} and len(steps) == 10


def test_joint_mixes_all_tasks_and_trains_everything():
    steps = run(ScheduleConfig(mode="joint"), epochs=2)
    assert Counter(s.task for s in steps) == {t: 2 * n for t, n in SIZES.items()}
    assert all(s.trainable_groups == ALL_GROUPS for s in steps)
    # mixed, not task after task
    tasks = [s.task for s in steps]
    assert sum(a != b for a, b in zip(tasks, tasks[1:], strict=False)) > len(SIZES)


def test_weighted_follows_weights_and_temperature():
    cfg = ScheduleConfig(mode="weighted", task_weights={Task.asr: 1.0, Task.emotion_recognition: 3.0})
    steps = run(cfg, epochs=200)
    share = Counter(s.task for s in steps)
    assert set(share) == {Task.asr, Task.emotion_recognition}
    assert share[Task.emotion_recognition] / len(steps) == pytest.approx(0.75, abs=0.03)
    uniform = Counter(s.task for s in run(ScheduleConfig(mode="weighted", temperature=1e6), epochs=200))
    assert max(uniform.values()) / min(uniform.values()) < 1.3


def test_resume_continues_the_same_sequence_and_refuses_other_data():
    cfg = ScheduleConfig(mode="weighted")
    full = [s.task for s in run(cfg, seed=7)]
    a = TaskScheduler(cfg, SIZES, epochs=3, seed=7)
    head = [a.next().task for _ in range(11)]
    b = TaskScheduler(cfg, SIZES, epochs=3, seed=7)
    b.load_state_dict(a.state_dict())
    assert head + [s.task for s in b] == full
    other = TaskScheduler(cfg, {**SIZES, Task.asr: 9}, epochs=3, seed=7)
    with pytest.raises(ValueError, match="different config, corpus or seed"):
        other.load_state_dict(a.state_dict())


def test_max_steps_and_seed():
    cfg = ScheduleConfig(mode="joint")
    assert len(TaskScheduler(cfg, SIZES, epochs=3, max_steps=5)) == 5
    assert run(cfg, seed=1) != run(cfg, seed=2)
    assert run(cfg, seed=1) == run(cfg, seed=1)


def test_paper_final_round_trains_adapters_and_lora_only():
    steps = run(ScheduleConfig(mode="alternating", final_joint_epochs=1, final_joint_encoders=False), epochs=2)
    joint = {s.trainable_groups for s in steps if s.round_kind == "joint"}
    assert joint == {frozenset({"speech_adapter", "emotion_adapter", "lora"})}
    assert {s.trainable_groups for s in steps if s.round_kind == "emotion"} == {
        EMOTION_GROUPS
    }  # encoders in their rounds
    # the default keeps the fingerprint of runs saved before the option existed
    default = TaskScheduler(ScheduleConfig(), SIZES, epochs=2)
    assert default.state_dict()["fingerprint"] == "1a215869b457ee88"  # computed before final_joint_encoders existed
    paper = TaskScheduler(ScheduleConfig(final_joint_encoders=False), SIZES, epochs=2)
    assert paper.state_dict()["fingerprint"] != default.state_dict()["fingerprint"]
