"""The classical reference row: acoustic profile + logistic regression, on the evaluation's splits.

    result = run_baseline(BaselineConfig(dataset="ravdess", root="../shared/data/ravdess16k"), out_dir)
    result.metrics.ua

Features are :meth:`AcousticProfile.vector` (13 speaker-normalised z-scores of pitch, loudness,
rate, pauses and voice quality, plus three "not measurable" indicators); the classifier is
scikit-learn's logistic regression with balanced class weights (UA is the headline metric, and
balancing is what optimises it on skewed corpora). Profiles are computed once into
``<out>/profiles`` (resumable, see pipeline.acoustic.compute) or read from ``profiles``.

``features="encoder"`` replaces the profile with a pretrained speech encoder's hidden states at one
layer, mean- and std-pooled over the clip (default: Whisper tiny.en layer 2, the encoder of
``configs/tiny.yaml``): a linear probe of what the AudioLLM's audio stream carries, so a table
can say whether a gap lies in the audio or in the decoder's use of it.

An AudioLLM that cannot beat this row has not learned the voice (DESIGN.md: eGeMAPS + LR reaches
UA ~0.50 on RAVDESS actors 17-20). Utterances whose audio could not be profiled are rejects with
their reason; they are neither trained on nor scored.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from model.eval.metrics import Metrics, classification_metrics
from pipeline.acoustic import AcousticProfile, compute_profiles, load_profiles
from pipeline.datasets import load_dataset
from pipeline.labels import DEFAULT_PROTOCOL, protocol
from pipeline.records import Reject, Utterance

# RAVDESS: the split of DESIGN.md's reference (train on actors 1-16, test on 17-20); 21-24 stay out.
RAVDESS_OPTIONS = {"test_actors": [17, 18, 19, 20], "dev_actors": [21, 22, 23, 24]}


class BaselineConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dataset: str = "ravdess"
    root: str | None = None
    protocol: str | None = Field(None, description="label protocol; default: the dataset's usual one")
    options: dict = Field(default_factory=dict, description="dataset adapter options; RAVDESS default: actors split")
    train_split: str = "train"
    test_split: str = "test"
    profiles: str | None = Field(None, description="existing profiles parquet/folder; default: compute into <out>")
    workers: int = Field(1, ge=1, description="processes measuring profiles")
    features: Literal["profile", "encoder"] = Field("profile", description="acoustic profile or encoder states")
    encoder: str = Field("embedded:whisper-tiny.en", description="Whisper checkpoint (hub id, dir, embedded:...)")
    encoder_layer: int = Field(2, description="hidden state read (0 = after the convolutions)")
    C: float = Field(1.0, gt=0, description="inverse L2 strength of the logistic regression")
    max_iter: int = 5000

    def resolved_protocol(self) -> str:
        return self.protocol or DEFAULT_PROTOCOL.get(self.dataset, "all")

    def resolved_options(self) -> dict:
        if not self.options and self.dataset == "ravdess":
            return dict(RAVDESS_OPTIONS)
        return dict(self.options)


@dataclass
class BaselinePrediction:
    utterance_id: str
    speaker: str
    gold: str
    predicted: str
    probability: float  # of the predicted class


@dataclass
class BaselineResult:
    metrics: Metrics
    predictions: list[BaselinePrediction]
    n_train: int
    rejects: list[Reject] = field(default_factory=list)
    feature_names: tuple[str, ...] = AcousticProfile.VECTOR_COLUMNS
    coefficients: dict[str, list[float]] = field(default_factory=dict)  # class -> one weight per feature
    elapsed_s: float = 0.0


def _split(
    utterances: list[Utterance], vectors: dict[str, np.ndarray], split: str, rejects: list[Reject], width: int
) -> tuple[list[Utterance], np.ndarray]:
    kept = []
    for u in utterances:
        if u.split != split:
            continue
        if u.id not in vectors:
            if u.audio_path is None:  # rejects of measuring the features are already listed
                rejects.append(
                    Reject(stage="baseline", record_id=u.id, dataset=u.dataset, reason="no_audio", source=u.id)
                )
            continue
        kept.append(u)
    features = np.array([vectors[u.id] for u in kept], dtype=np.float64).reshape(len(kept), width)
    return kept, features


def encoder_features(
    utterances: list[Utterance], path: str, layer: int, rejects: list[Reject], progress: bool = False
) -> tuple[dict[str, np.ndarray], tuple[str, ...]]:
    """Utterance id -> [mean, std] of a Whisper encoder's hidden state ``layer`` over the clip's frames."""
    import torch
    from tqdm import tqdm

    from model.encoders.speech import WhisperFrames
    from pipeline.audio import AudioError, load_audio

    encoder = WhisperFrames.from_pretrained(path).eval()
    if not 0 <= layer < encoder.num_hidden_states:
        raise ValueError(f"encoder_layer={layer}: {path} has hidden states 0..{encoder.num_hidden_states - 1}")
    features: dict[str, np.ndarray] = {}
    with torch.inference_mode():
        for u in tqdm(utterances, desc="encoder features", disable=not progress):
            try:
                waveform = torch.from_numpy(load_audio(u.audio_path, u.start_s, u.end_s))[None]
            except AudioError as err:
                rejects.append(
                    Reject(stage="baseline", record_id=u.id, dataset=u.dataset, reason=err.reason, detail=str(err))
                )
                continue
            waveform = waveform[:, : encoder.spec.window_samples]  # Whisper sees at most its window
            out = encoder(waveform, torch.tensor([waveform.shape[1]]), "variable", all_layers=True)
            frames = out.hidden_states[layer][0, : int(out.lengths[0])].double()
            features[u.id] = torch.cat([frames.mean(0), frames.std(0, unbiased=False)]).numpy()
    width = encoder.hidden_size
    names = tuple(f"layer{layer}.mean{i}" for i in range(width)) + tuple(f"layer{layer}.std{i}" for i in range(width))
    return features, names


def run_baseline(cfg: BaselineConfig, out_dir: str | Path, progress: bool = False) -> BaselineResult:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    start = time.perf_counter()
    out_dir = Path(out_dir)
    proto = protocol(cfg.resolved_protocol())
    loaded = load_dataset(
        cfg.dataset,
        cfg.root,
        protocol=proto.name,
        splits=[cfg.train_split, cfg.test_split],
        **cfg.resolved_options(),
    )
    rejects = list(loaded.rejects)
    for split in (cfg.train_split, cfg.test_split):
        if not any(u.split == split for u in loaded.utterances):
            raise ValueError(f"{cfg.dataset}: no utterances in split {split!r} ({len(loaded.rejects)} rejects)")
    feature_names = AcousticProfile.VECTOR_COLUMNS
    if cfg.features == "encoder":
        wanted = [u for u in loaded.utterances if u.split in (cfg.train_split, cfg.test_split) and u.audio_path]
        vectors, feature_names = encoder_features(wanted, cfg.encoder, cfg.encoder_layer, rejects, progress)
    elif cfg.profiles:
        vectors = {i: p.vector() for i, p in load_profiles(cfg.profiles).items()}
    else:
        run = compute_profiles(loaded.utterances, out_dir / "profiles", workers=cfg.workers, progress=progress)
        vectors = {p.utterance_id: p.vector() for p in run.profiles}
        rejects += run.rejects
    train, x_train = _split(loaded.utterances, vectors, cfg.train_split, rejects, len(feature_names))
    test, x_test = _split(loaded.utterances, vectors, cfg.test_split, rejects, len(feature_names))
    for split, rows in ((cfg.train_split, train), (cfg.test_split, test)):
        if not rows:
            raise ValueError(f"{cfg.dataset}: no profiled utterances in split {split!r}")
    y_train = [u.emotion.value for u in train]
    if len(set(y_train)) < 2:
        raise ValueError(f"{cfg.dataset}: the {cfg.train_split} split holds fewer than two classes")
    model = make_pipeline(
        StandardScaler(),
        LogisticRegression(C=cfg.C, class_weight="balanced", max_iter=cfg.max_iter),
    )
    model.fit(x_train, y_train)
    probabilities = model.predict_proba(x_test)
    classes = list(model.classes_)
    best = probabilities.argmax(axis=1)
    predictions = [
        BaselinePrediction(u.id, u.speaker, u.emotion.value, classes[b], float(probabilities[i, b]))
        for i, (u, b) in enumerate(zip(test, best, strict=True))
    ]
    metrics = classification_metrics([p.gold for p in predictions], [p.predicted for p in predictions], proto.names)
    lr = model[-1]
    coefficients = {c: lr.coef_[i].tolist() for i, c in enumerate(classes)} if lr.coef_.shape[0] == len(classes) else {}
    return BaselineResult(
        metrics=metrics,
        predictions=predictions,
        n_train=len(train),
        rejects=rejects,
        feature_names=feature_names,
        coefficients=coefficients,
        elapsed_s=time.perf_counter() - start,
    )
