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

import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from model.eval.metrics import Metrics, classification_metrics, scoring_labels
from model.speaker_norm import speaker_zscores
from pipeline.acoustic import AcousticProfile, compute_profiles, load_profiles
from pipeline.acoustic.normalise import FEATURES
from pipeline.audio import Level
from pipeline.datasets import load_dataset
from pipeline.datasets.common import ALL_SPLITS
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
    test_split: str | None = Field(
        None, description=f"default: 'test' of the training source, or '{ALL_SPLITS}' of a separate test source"
    )
    test_dataset: str | None = Field(None, description="test on another source: its adapter (default: dataset)")
    test_root: str | None = Field(None, description="test on another source: its folder or manifest")
    test_protocol: str | None = Field(None, description="the test source's protocol (default: its usual one)")
    test_options: dict = Field(default_factory=dict, description="the test source's adapter options")
    profiles: str | None = Field(None, description="existing profiles parquet/folder; default: compute into <out>")
    workers: int = Field(1, ge=1, description="processes measuring profiles")
    features: Literal["profile", "encoder", "adapter"] = Field(
        "profile",
        description="acoustic profile, a Whisper encoder's states, or a trained AudioLLM's adapter output tokens "
        "(`checkpoint`): what reaches its decoder",
    )
    checkpoint: str | None = Field(None, description="features=adapter: the AudioLLM (saved model or training run)")
    encoder: str = Field("embedded:whisper-tiny.en", description="Whisper checkpoint (hub id, dir, embedded:...)")
    encoder_layer: int = Field(2, description="hidden state read (0 = after the convolutions)")
    speaker_norm: bool | None = Field(
        None,
        description="per-speaker z-scores (transductive); default: on for the profile (its own z-scores, off = raw "
        "measures), off for encoder states",
    )
    level: Level = Field(Level.none, description="waveform level normalisation before measuring or encoding")
    C: float = Field(1.0, gt=0, description="inverse L2 strength of the logistic regression")
    max_iter: int = 5000

    def resolved_protocol(self) -> str:
        return self.protocol or DEFAULT_PROTOCOL.get(self.dataset, "all")

    def resolved_options(self) -> dict:
        if not self.options and self.dataset == "ravdess":
            return dict(RAVDESS_OPTIONS)
        return dict(self.options)

    @property
    def separate_test(self) -> bool:
        return self.test_root is not None or self.test_dataset is not None

    def resolved_test_dataset(self) -> str:
        return self.test_dataset or self.dataset

    def resolved_test_split(self) -> str:
        return self.test_split or (ALL_SPLITS if self.separate_test else "test")

    def resolved_test_protocol(self) -> str:
        if not self.separate_test:
            return self.resolved_protocol()
        return self.test_protocol or DEFAULT_PROTOCOL.get(self.resolved_test_dataset(), "all")

    def resolved_speaker_norm(self) -> bool:
        return self.features == "profile" if self.speaker_norm is None else self.speaker_norm


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
    # Test gold classes the training labels lack -> utterances: kept and scored as wrong.
    outside: dict[str, int] = field(default_factory=dict)
    # A separate test source's adapter rejects by reason (unknown_label: gold with no mapping, dropped).
    dropped: dict[str, int] = field(default_factory=dict)


def _rows(
    utterances: list[Utterance], vectors: dict[str, np.ndarray], split: str, rejects: list[Reject], width: int
) -> tuple[list[Utterance], np.ndarray]:
    kept = []
    for u in utterances:
        if split != ALL_SPLITS and u.split != split:
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


RAW_COLUMNS = (*FEATURES, *(column for column, _ in AcousticProfile.MISSING_COLUMNS))


def raw_vector(p: AcousticProfile) -> list[float]:
    """The profile's raw measures (NaN where not measurable) and its indicators, in RAW_COLUMNS order:
    the features with no speaker normalisation at all, for the ablation."""
    values = [getattr(p, name) for name in FEATURES]
    out = [np.nan if v is None else float(v) for v in values]
    return out + p.vector()[len(FEATURES) :]


def encoder_features(
    utterances: list[Utterance],
    path: str,
    layer: int,
    rejects: list[Reject],
    progress: bool = False,
    level: Level = Level.none,
) -> tuple[dict[str, np.ndarray], tuple[str, ...]]:
    """Utterance id -> [mean, std] of a Whisper encoder's hidden state ``layer`` over the clip's frames
    (each waveform first scaled to ``level``)."""
    import torch
    from tqdm import tqdm

    from model.encoders.speech import WhisperFrames
    from pipeline.audio import AudioError, load_audio, normalise_level

    encoder = WhisperFrames.from_pretrained(path).eval()
    if not 0 <= layer < encoder.num_hidden_states:
        raise ValueError(f"encoder_layer={layer}: {path} has hidden states 0..{encoder.num_hidden_states - 1}")
    features: dict[str, np.ndarray] = {}
    with torch.inference_mode():
        for u in tqdm(utterances, desc="encoder features", disable=not progress):
            try:
                waveform = torch.from_numpy(normalise_level(load_audio(u.audio_path, u.start_s, u.end_s), level))[None]
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


def adapter_features(
    utterances: list[Utterance],
    checkpoint: str,
    rejects: list[Reject],
    progress: bool = False,
    level: Level = Level.none,
) -> tuple[dict[str, np.ndarray], tuple[str, ...]]:
    """Utterance id -> [mean, std] of a trained AudioLLM's emotion and speech adapter output tokens:
    what its decoder is given. Probed beside the encoder, it says what the adapters lose. A model
    with ``adapter.speaker_norm`` first measures every speaker here on their own clips (unlabelled,
    as ``emoreason eval`` does)."""
    import torch
    from tqdm import tqdm

    from model.audiollm import AudioLLM
    from model.collator import AudioCollator, AudioPrompt
    from model.eval.run import resolve_checkpoint
    from model.speaker_norm import speaker_key
    from pipeline.audio import AudioError, load_audio, normalise_level

    model = AudioLLM.from_pretrained(resolve_checkpoint(checkpoint)).eval()
    collate = AudioCollator(model.tokenizer, model.counter, model.config.audio_marker)
    prompts: dict[str, AudioPrompt] = {}
    for u in utterances:
        try:
            wave = normalise_level(load_audio(u.audio_path, u.start_s, u.end_s), level)
        except AudioError as err:
            rejects.append(
                Reject(stage="baseline", record_id=u.id, dataset=u.dataset, reason=err.reason, detail=str(err))
            )
            continue
        prompts[u.id] = AudioPrompt("", wave, id=u.id, speaker=speaker_key(u.dataset, u.speaker))
    features: dict[str, np.ndarray] = {}
    with torch.inference_mode():
        if model.needs_speaker_norm:
            model.fit_speaker_norm((collate([p]) for p in prompts.values()), pooled=False)
        for uid, prompt in tqdm(prompts.items(), desc="adapter features", disable=not progress):
            batch = collate([prompt])
            (speech, speech_valid), (emotion, emotion_valid) = model.encoder_frames(
                batch.waveforms, batch.waveform_lengths, batch.speakers
            )
            speech_n, emotion_n = model.counter.stream_tokens(int(batch.waveform_lengths[0]))
            pooled = []
            for adapter, frames, valid, n in (
                (model.emotion_adapter, emotion, emotion_valid, emotion_n),
                (model.speech_adapter, speech, speech_valid, speech_n),
            ):
                tokens = adapter(frames, valid, torch.tensor([n]))[0, :n].double()
                pooled += [tokens.mean(0), tokens.std(0, unbiased=False)]
            features[uid] = torch.cat(pooled).numpy()
    width = model.emotion_adapter.mlp[-1].out_features, model.speech_adapter.mlp[-1].out_features
    names = tuple(
        f"{stream}.{stat}{i}" for stream, w in zip(("emotion", "speech"), width, strict=True) for stat in ("mean", "std")
        for i in range(w)
    )  # fmt: skip
    return features, names


def _features(
    cfg: BaselineConfig,
    utterances: list[Utterance],
    profiles_dir: Path,
    rejects: list[Reject],
    progress: bool,
    existing_profiles: str | None = None,
) -> tuple[dict[str, np.ndarray], tuple[str, ...]]:
    """Utterance id -> feature vector of one side (train or test), and the feature names."""
    if cfg.features == "encoder":
        wanted = [u for u in utterances if u.audio_path]
        return encoder_features(wanted, cfg.encoder, cfg.encoder_layer, rejects, progress, cfg.level)
    if cfg.features == "adapter":
        if cfg.checkpoint is None:
            raise ValueError("features=adapter needs a checkpoint (--checkpoint): the AudioLLM whose adapters to probe")
        wanted = [u for u in utterances if u.audio_path]
        return adapter_features(wanted, cfg.checkpoint, rejects, progress, cfg.level)
    if existing_profiles:
        profiles = list(load_profiles(existing_profiles).values())
    else:
        run = compute_profiles(utterances, profiles_dir, workers=cfg.workers, progress=progress, level=cfg.level)
        profiles = run.profiles
        rejects += run.rejects
    if cfg.resolved_speaker_norm():
        return {p.utterance_id: p.vector() for p in profiles}, AcousticProfile.VECTOR_COLUMNS
    return {p.utterance_id: raw_vector(p) for p in profiles}, RAW_COLUMNS


def _side(
    utterances: list[Utterance], vectors: dict, split: str, rejects: list[Reject], names: tuple, speaker_norm: bool
) -> tuple[list[Utterance], np.ndarray]:
    kept, x = _rows(utterances, vectors, split, rejects, len(names))
    if speaker_norm:  # encoder states; the profile's vector is z-scored per speaker already
        x = speaker_zscores(x, [u.speaker for u in kept])
    return kept, x


def run_baseline(cfg: BaselineConfig, out_dir: str | Path, progress: bool = False) -> BaselineResult:
    """Train on ``cfg.train_split`` of the source, test on ``cfg.test_split`` of it or of a separate
    test source (``test_root`` / ``test_dataset``). Test gold labels are merged onto the training
    protocol; classes it lacks stay, scored as wrong (:func:`model.eval.metrics.scoring_labels`)."""
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    start = time.perf_counter()
    out_dir = Path(out_dir)
    proto = protocol(cfg.resolved_protocol())
    test_split = cfg.resolved_test_split()
    same = not cfg.separate_test
    if same and test_split == ALL_SPLITS:
        raise ValueError(
            f"test split {ALL_SPLITS!r} of the training source would test on training audio; "
            "give a separate test source (test_root / test_dataset)"
        )
    loaded = load_dataset(
        cfg.dataset,
        cfg.root,
        protocol=proto.name,
        splits=[cfg.train_split, *([test_split] if same else [])],
        **cfg.resolved_options(),
    )
    rejects = list(loaded.rejects)
    dropped: Counter[str] = Counter()  # of a separate test source (one source's rejects mix both splits)
    if same:
        test_loaded = loaded
    else:
        test_loaded = load_dataset(
            cfg.resolved_test_dataset(),
            cfg.test_root,
            protocol=cfg.resolved_test_protocol(),
            splits=None if test_split == ALL_SPLITS else [test_split],
            **cfg.test_options,
        )
        rejects += test_loaded.rejects
        dropped = Counter(r.reason for r in test_loaded.rejects)
    for name, source, split in (
        (cfg.dataset, loaded, cfg.train_split),
        (cfg.resolved_test_dataset(), test_loaded, test_split),
    ):
        if split != ALL_SPLITS and not any(u.split == split for u in source.utterances):
            raise ValueError(f"{name}: no utterances in split {split!r} ({len(source.rejects)} rejects)")
        if not source.utterances:
            raise ValueError(f"{name}: no utterances ({len(source.rejects)} rejects)")
    norm = cfg.resolved_speaker_norm() and cfg.features != "profile"
    if same:
        vectors, names = _features(cfg, loaded.utterances, out_dir / "profiles", rejects, progress, cfg.profiles)
        test_vectors = vectors
    else:
        train_utts = [u for u in loaded.utterances if u.split == cfg.train_split]
        vectors, names = _features(cfg, train_utts, out_dir / "profiles", rejects, progress, cfg.profiles)
        test_vectors, _ = _features(cfg, test_loaded.utterances, out_dir / "profiles-test", rejects, progress)
    train, x_train = _side(loaded.utterances, vectors, cfg.train_split, rejects, names, norm)
    test, x_test = _side(test_loaded.utterances, test_vectors, test_split, rejects, names, norm)
    for split, rows in ((cfg.train_split, train), (test_split, test)):
        if not rows:
            raise ValueError(f"{cfg.dataset}: no profiled utterances in split {split!r}")
    # By audio file, not id: another adapter (a manifest), or a folder of links, names the same clip differently.
    clip = lambda u: (os.path.realpath(u.audio_path), u.start_s, u.end_s)  # noqa: E731
    shared = {clip(u) for u in train} & {clip(u) for u in test}
    if shared:
        raise ValueError(
            f"{len(shared)} test utterances are also training utterances (e.g. {sorted(shared)[0][0]}): "
            "test on another split or on a source that does not hold the training audio"
        )
    y_train = [u.emotion.value for u in train]
    if len(set(y_train)) < 2:
        raise ValueError(f"{cfg.dataset}: the {cfg.train_split} split holds fewer than two classes")
    model = make_pipeline(
        # Raw measures hold NaN where a measure failed (no pitch, no rate): the training mean stands in.
        SimpleImputer(strategy="mean", keep_empty_features=True),
        StandardScaler(),
        LogisticRegression(C=cfg.C, class_weight="balanced", max_iter=cfg.max_iter),
    )
    model.fit(x_train, y_train)
    probabilities = model.predict_proba(x_test)
    classes = list(model.classes_)
    best = probabilities.argmax(axis=1)
    predictions = [
        BaselinePrediction(u.id, u.speaker, proto.onto(u.emotion).value, classes[b], float(probabilities[i, b]))
        for i, (u, b) in enumerate(zip(test, best, strict=True))
    ]
    gold = [p.gold for p in predictions]
    labels = scoring_labels(proto.names, gold)
    metrics = classification_metrics(gold, [p.predicted for p in predictions], labels)
    lr = model[-1]
    coefficients = {c: lr.coef_[i].tolist() for i, c in enumerate(classes)} if lr.coef_.shape[0] == len(classes) else {}
    return BaselineResult(
        metrics=metrics,
        predictions=predictions,
        n_train=len(train),
        rejects=rejects,
        feature_names=names,
        coefficients=coefficients,
        elapsed_s=time.perf_counter() - start,
        outside=dict(Counter(g for g in gold if g not in proto.names)),
        dropped=dict(dropped),
    )
