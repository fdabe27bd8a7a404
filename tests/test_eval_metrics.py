"""Metrics against hand-computed values and against scikit-learn on random labels."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, balanced_accuracy_score, confusion_matrix, f1_score, recall_score

from model.eval.metrics import across_folds, classification_metrics, plot_confusion

LABELS = ["angry", "happy", "sad"]


def test_hand_computed_example():
    gold = ["angry", "angry", "angry", "happy", "happy", "sad"]
    pred = ["angry", "angry", "sad", "happy", None, "sad"]
    m = classification_metrics(gold, pred, LABELS, bootstrap=0)
    assert m.wa == pytest.approx(4 / 6)
    assert m.ua == pytest.approx((2 / 3 + 1 / 2 + 1) / 3)
    # angry: P 1, R 2/3 -> F1 0.8; happy: P 1, R 1/2 -> 2/3; sad: P 1/2, R 1 -> 2/3
    assert [c.f1 for c in m.per_class] == pytest.approx([0.8, 2 / 3, 2 / 3])
    assert m.macro_f1 == pytest.approx((0.8 + 2 / 3 + 2 / 3) / 3)
    assert m.weighted_f1 == pytest.approx((3 * 0.8 + 2 * 2 / 3 + 1 * 2 / 3) / 6)
    assert m.n_unlabelled == 1
    assert m.confusion == [[2, 0, 1, 0], [0, 1, 0, 1], [0, 0, 1, 0]]  # last column: no label
    assert [c.support for c in m.per_class] == [3, 2, 1]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_agrees_with_sklearn_on_random_labels(seed):
    rng = np.random.default_rng(seed)
    labels = [f"c{i}" for i in range(6)]
    gold = list(rng.choice(labels, 300, p=[0.4, 0.2, 0.15, 0.1, 0.1, 0.05]))
    pred = list(rng.choice(labels[:5], 300))  # one class never predicted
    m = classification_metrics(gold, pred, labels, bootstrap=0)
    assert m.wa == pytest.approx(accuracy_score(gold, pred))
    assert m.ua == pytest.approx(balanced_accuracy_score(gold, pred))
    assert m.macro_f1 == pytest.approx(f1_score(gold, pred, average="macro", zero_division=0))
    assert m.weighted_f1 == pytest.approx(f1_score(gold, pred, average="weighted", zero_division=0))
    assert [c.recall for c in m.per_class] == pytest.approx(
        recall_score(gold, pred, labels=labels, average=None, zero_division=0)
    )
    assert np.array(m.confusion)[:, :-1].tolist() == confusion_matrix(gold, pred, labels=labels).tolist()


def test_unlabelled_answers_are_wrong_not_a_class():
    rng = np.random.default_rng(3)
    gold = list(rng.choice(LABELS, 200))
    pred = [None if i % 5 == 0 else g for i, g in enumerate(gold)]
    m = classification_metrics(gold, pred, LABELS, bootstrap=0)
    assert m.wa == pytest.approx(0.8) and m.n_unlabelled == 40
    # sklearn with an explicit "none" class restricted to the real labels gives the same F1s
    filled = [p or "none" for p in pred]
    assert m.macro_f1 == pytest.approx(f1_score(gold, filled, labels=LABELS, average="macro"))
    assert m.ua == pytest.approx(recall_score(gold, filled, labels=LABELS, average="macro"))


def test_bootstrap_interval_is_seeded_and_contains_the_estimate():
    rng = np.random.default_rng(4)
    gold = list(rng.choice(LABELS, 120))
    pred = [g if rng.random() < 0.6 else rng.choice(LABELS) for g in gold]
    a = classification_metrics(gold, pred, LABELS, bootstrap=300, seed=7)
    b = classification_metrics(gold, pred, LABELS, bootstrap=300, seed=7)
    assert a.ci == b.ci
    for name in ("wa", "ua", "macro_f1", "weighted_f1"):
        low, high = a.ci[name]
        assert low <= getattr(a, name) <= high and 0.05 < high - low < 0.4


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="not in the label set"):
        classification_metrics(["angry"], ["calm"], LABELS)
    with pytest.raises(ValueError, match="1 gold labels but 2"):
        classification_metrics(["angry"], ["angry", "sad"], LABELS)


def test_fold_mean_and_std_and_confusion_png(tmp_path):
    folds = [
        classification_metrics(["angry", "sad"], ["angry", "sad"], LABELS, bootstrap=0),
        classification_metrics(["angry", "sad"], ["sad", "sad"], LABELS, bootstrap=0),
    ]
    summary = across_folds(folds)
    assert summary.mean["wa"] == pytest.approx(0.75)
    assert summary.std["wa"] == pytest.approx(np.std([1.0, 0.5], ddof=1))
    png = plot_confusion(folds[1], tmp_path / "cm.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.filterwarnings("ignore:y_pred contains classes not in y_true")
def test_gold_classes_outside_the_model_labels_count_as_wrong():
    from model.eval.metrics import scoring_labels

    gold = ["angry", "frustrated", "angry", "sad", "frustrated"]
    pred = ["angry", "angry", "sad", "sad", None]
    labels = scoring_labels(["angry", "sad"], gold)
    assert labels == ["angry", "sad", "frustrated"]
    m = classification_metrics(gold, pred, labels, bootstrap=0)
    recall = {c.label: c.recall for c in m.per_class}
    assert recall == {"angry": 0.5, "sad": 1.0, "frustrated": 0.0}
    assert m.ua == pytest.approx(0.5) and m.wa == pytest.approx(2 / 5)
    assert m.ua == pytest.approx(balanced_accuracy_score(gold, [p or "(none)" for p in pred]))
