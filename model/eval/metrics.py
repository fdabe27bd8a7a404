"""Classification metrics in EmoBox's conventions, with bootstrap intervals and fold aggregates.

- **WA** (weighted accuracy) = accuracy: share of utterances whose prediction equals the gold label.
- **UA** (unweighted accuracy) = balanced accuracy: mean recall over the gold classes present.
- **macro-F1**: mean F1 over the classes present in gold or predicted (sklearn's default set).
- **weighted F1**: F1 averaged with gold support as weights (the usual MELD metric).

An answer with no extracted label (ambiguous, refusal, none) is a wrong prediction: it counts in
every denominator, is never a class of its own in the F1 averages, and is reported as
``n_unlabelled`` and as the last column of the confusion matrix. Everything is computed from the
confusion matrix, so the bootstrap (resampling utterances with a fixed seed, ``BOOTSTRAP_SAMPLES``
replicates, percentile 95 % interval) costs one ``bincount`` per replicate; the tests check each
number against scikit-learn.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict

BOOTSTRAP_SAMPLES = 1000  # percentile intervals stabilise to ~0.5 point at a thousand replicates
BOOTSTRAP_SEED = 0
CONFIDENCE = 0.95
HEADLINE = ("wa", "ua", "macro_f1", "weighted_f1")
UNLABELLED = "(none)"  # the confusion matrix column of answers with no extracted label


class ClassMetrics(BaseModel):
    model_config = ConfigDict(frozen=True)

    label: str
    precision: float
    recall: float
    f1: float
    support: int  # gold utterances of this class
    predicted: int  # utterances predicted as this class


class Metrics(BaseModel):
    """Metrics of one run on one test set. Rates are fractions in [0, 1]."""

    model_config = ConfigDict(frozen=True)

    n: int
    n_unlabelled: int
    wa: float
    ua: float
    macro_f1: float
    weighted_f1: float
    labels: list[str]  # row / column order of the confusion matrix (its last column: UNLABELLED)
    confusion: list[list[int]]  # gold rows x predicted columns (+ UNLABELLED)
    per_class: list[ClassMetrics]
    ci: dict[str, tuple[float, float]] = {}  # metric -> (low, high), CONFIDENCE interval

    def headline(self) -> dict[str, float]:
        return {name: getattr(self, name) for name in HEADLINE}


def _confusion(gold: np.ndarray, pred: np.ndarray, k: int) -> np.ndarray:
    """(k, k + 1) counts; pred == k is 'no label'."""
    return np.bincount(gold * (k + 1) + pred, minlength=k * (k + 1)).reshape(k, k + 1)


def _scores(cm: np.ndarray) -> tuple[float, float, float, float, np.ndarray, np.ndarray, np.ndarray]:
    """(wa, ua, macro_f1, weighted_f1, precision, recall, f1) of a (k, k + 1) confusion matrix."""
    k = cm.shape[0]
    tp = np.diag(cm[:, :k]).astype(float)
    support = cm.sum(axis=1).astype(float)
    predicted = cm[:, :k].sum(axis=0).astype(float)
    n = support.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        recall = np.where(support > 0, tp / support, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    present = support > 0
    used = present | (predicted > 0)  # sklearn's label set: gold or predicted
    wa = tp.sum() / n if n else 0.0
    ua = recall[present].mean() if present.any() else 0.0
    macro = f1[used].mean() if used.any() else 0.0
    weighted = (f1 * support).sum() / n if n else 0.0
    return float(wa), float(ua), float(macro), float(weighted), precision, recall, f1


def _indices(gold: Sequence[str], pred: Sequence[str | None], labels: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    index = {label: i for i, label in enumerate(labels)}
    unknown = sorted({g for g in gold if g not in index})
    if unknown:
        raise ValueError(f"gold labels {unknown} are not in the label set {list(labels)}")
    stray = sorted({p for p in pred if p is not None and p not in index})
    if stray:
        raise ValueError(f"predicted labels {stray} are not in the label set {list(labels)} (map them to None)")
    k = len(labels)
    g = np.array([index[x] for x in gold], dtype=np.int64)
    p = np.array([k if x is None else index[x] for x in pred], dtype=np.int64)
    return g, p


def scoring_labels(labels: Sequence[str], gold: Sequence[str]) -> list[str]:
    """The label set to score over: the model's ``labels``, then every gold class it lacks (in order
    of first appearance). Those extra classes are never predicted, so their recall is 0 and they
    pull UA down, as they should when a test set holds classes the model was never taught."""
    return list(dict.fromkeys([*labels, *gold]))


def classification_metrics(
    gold: Sequence[str],
    pred: Sequence[str | None],
    labels: Sequence[str],
    bootstrap: int = BOOTSTRAP_SAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> Metrics:
    """Metrics of ``pred`` against ``gold`` over ``labels`` (the protocol's, in its order)."""
    if len(gold) != len(pred):
        raise ValueError(f"{len(gold)} gold labels but {len(pred)} predictions")
    if not gold:
        raise ValueError("no utterances to score")
    labels = list(labels)
    g, p = _indices(gold, pred, labels)
    k = len(labels)
    cm = _confusion(g, p, k)
    wa, ua, macro, weighted, precision, recall, f1 = _scores(cm)
    per_class = [
        ClassMetrics(
            label=label,
            precision=float(precision[i]),
            recall=float(recall[i]),
            f1=float(f1[i]),
            support=int(cm[i].sum()),
            predicted=int(cm[:, i].sum()),
        )
        for i, label in enumerate(labels)
    ]
    return Metrics(
        n=len(gold),
        n_unlabelled=int((p == k).sum()),
        wa=wa,
        ua=ua,
        macro_f1=macro,
        weighted_f1=weighted,
        labels=labels,
        confusion=cm.tolist(),
        per_class=per_class,
        ci=bootstrap_ci(g, p, k, bootstrap, seed) if bootstrap else {},
    )


def bootstrap_ci(
    gold: np.ndarray, pred: np.ndarray, k: int, samples: int = BOOTSTRAP_SAMPLES, seed: int = BOOTSTRAP_SEED
) -> dict[str, tuple[float, float]]:
    """Percentile intervals of the headline metrics over ``samples`` resamples of the utterances."""
    rng = np.random.default_rng(seed)
    n = gold.size
    values = np.empty((samples, len(HEADLINE)))
    for s in range(samples):
        pick = rng.integers(0, n, n)
        values[s] = _scores(_confusion(gold[pick], pred[pick], k))[:4]
    tail = (1 - CONFIDENCE) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail], axis=0)
    return {name: (float(lo), float(hi)) for name, lo, hi in zip(HEADLINE, low, high, strict=True)}


class FoldSummary(BaseModel):
    """Mean and sample standard deviation of each headline metric across folds (IEMOCAP's five)."""

    model_config = ConfigDict(frozen=True)

    folds: int
    mean: dict[str, float]
    std: dict[str, float]


def across_folds(per_fold: Sequence[Metrics]) -> FoldSummary:
    if not per_fold:
        raise ValueError("no folds to aggregate")
    values = np.array([[getattr(m, name) for name in HEADLINE] for m in per_fold])
    # ddof=1: the folds are a sample of possible held-out sessions; one fold has no spread.
    std = values.std(axis=0, ddof=1) if len(per_fold) > 1 else np.zeros(len(HEADLINE))
    return FoldSummary(
        folds=len(per_fold),
        mean=dict(zip(HEADLINE, values.mean(axis=0).tolist(), strict=True)),
        std=dict(zip(HEADLINE, std.tolist(), strict=True)),
    )


def plot_confusion(metrics: Metrics, path: str | Path, title: str = "") -> Path:
    """Row-normalised confusion matrix (counts written in the cells) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = np.array(metrics.confusion, dtype=float)
    rows = cm.sum(axis=1, keepdims=True)
    share = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
    columns = [*metrics.labels, UNLABELLED]
    size = 1.0 + 0.55 * len(columns)
    fig, ax = plt.subplots(figsize=(size + 1.2, size))
    image = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(columns)), columns, rotation=45, ha="right")
    ax.set_yticks(range(len(metrics.labels)), metrics.labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("gold")
    for (i, j), count in np.ndenumerate(cm):
        if count:
            ax.text(j, i, int(count), ha="center", va="center", color="white" if share[i, j] > 0.5 else "black")
    fig.colorbar(image, ax=ax, fraction=0.046, label="share of gold row")
    ax.set_title(title or f"UA {100 * metrics.ua:.1f}  WA {100 * metrics.wa:.1f}  (n={metrics.n})")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
