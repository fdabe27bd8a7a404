"""Our emotion2vec equals the reference implementation (funasr.models.emotion2vec, from the
`funasr` PyPI package that `make setup` installs for the tests only) on real RAVDESS clips.

The reference is built from the releases' configs (tests/fixtures/emotion2vec, shrunk in depth
and width; the full large shape runs with EMOREASON_E2V_FULL=1) with random weights, its state
dict is saved as a release's model.pt and converted by our loader; then every hidden state we
expose is compared, for clips of several lengths in one padded batch. The reference runs each
clip alone (it has no exact padded mode), which is also what our padded batch must equal.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import warnings
from pathlib import Path

import pytest
import soundfile as sf
import torch
from conftest import RAVDESS_DIR, require
from test_emotion2vec import padded

from model.encoders.emotion2vec import Emotion2vecFrames
from model.encoders.emotion2vec_convert import load_official

FIXTURES = Path(__file__).parent / "fixtures" / "emotion2vec"
TOLERANCE = 1e-4  # fp32
# Three speakers, three emotions; the second is cut to 1.2 s so the batch really is padded.
CLIPS = (
    "Actor_01/03-01-01-01-01-01-01.flac",
    "Actor_02/03-01-05-02-02-01-02.flac",
    "Actor_03/03-01-08-01-01-02-03.flac",
)
SHRINK = dict(embed_dim=64, num_heads=4, depth=2)
SHRINK_AUDIO = dict(prenet_depth=1, num_alibi_heads=4, model_depth=2, conv_pos_groups=4,
                    feature_encoder_spec="[(32, 10, 5)] + [(32, 3, 2)] * 4 + [(32,2,2)] + [(32,2,2)]")  # fmt: skip


@pytest.fixture(scope="module")
def reference():
    require(importlib.util.find_spec("funasr") is not None, "the reference package funasr (`make setup` installs it)")
    # Importing funasr imports every one of its models (~10 s); some of them add warning filters
    # and a root log handler at import time: keep those out of the rest of the test session.
    handlers, level = list(logging.root.handlers), logging.root.level
    try:
        with warnings.catch_warnings():
            from funasr.models.emotion2vec.model import Emotion2vec
            from omegaconf import OmegaConf
    finally:
        logging.root.handlers[:] = handlers
        logging.root.setLevel(level)
    return Emotion2vec, OmegaConf


@pytest.fixture(scope="module")
def ravdess_clips() -> list[torch.Tensor]:
    require(all((RAVDESS_DIR / c).is_file() for c in CLIPS), f"RAVDESS clips under {RAVDESS_DIR}")
    waves = [torch.from_numpy(sf.read(RAVDESS_DIR / c, dtype="float32")[0]) for c in CLIPS]
    waves[1] = waves[1][: int(1.2 * 16_000)]
    return waves


def build_reference(reference, release: str, directory: Path, full: bool):
    Emotion2vec, OmegaConf = reference
    conf = OmegaConf.load(FIXTURES / f"{release}.yaml")  # the loader FunASR reads config.yaml with
    if not full:
        conf.model_conf.update(SHRINK)
        conf.model_conf.modalities.audio.update(SHRINK_AUDIO)
        conf.model_conf.modalities.audio.decoder.decoder_dim = 32
    torch.manual_seed(0)
    # vocab_size: the "+" releases' 9-way classifier head (our converter drops it by name).
    model = Emotion2vec(model_conf=OmegaConf.to_container(conf.model_conf), vocab_size=9).eval()
    with torch.no_grad():  # non-trivial norms and ALiBi scales, so a wrong mapping shows
        for name, p in model.named_parameters():
            if "alibi_scale" in name:
                p.uniform_(0.2, 2.0)
            elif p.dim() == 1:
                p.add_(0.1 * torch.randn_like(p))
    directory.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(conf, directory / "config.yaml")
    torch.save(model.state_dict(), directory / "model.pt")
    return model


def reference_states(model, wave: torch.Tensor) -> list[torch.Tensor]:
    """The reference's hidden states for one clip, as the inference code calls it: the waveform
    layer-normalised, then extract_features; the states are read with hooks on its blocks."""
    blocks = [*model.modality_encoders["AUDIO"].context_encoder.blocks, *model.blocks]
    states: list[torch.Tensor] = []
    hooks = [blocks[0].register_forward_pre_hook(lambda m, args: states.append(args[0]))]
    hooks += [b.register_forward_hook(lambda m, args, out: states.append(out[0])) for b in blocks]
    try:
        source = torch.nn.functional.layer_norm(wave, wave.shape)[None]
        x = model.extract_features(source, padding_mask=None)["x"]
    finally:
        for h in hooks:
            h.remove()
    extra = model.modality_encoders["AUDIO"].modality_cfg.num_extra_tokens
    assert torch.equal(states[-1][:, extra:], x)  # the last block's output is the features
    return [s[0, extra:] for s in states]


def compare(reference, ravdess_clips, release: str, tmp_path: Path, full: bool = False) -> float:
    ref = build_reference(reference, release, tmp_path / release, full)
    ours = Emotion2vecFrames(load_official(tmp_path / release), 16_000).eval()
    batch, lengths = padded(ravdess_clips)
    worst = 0.0
    with torch.no_grad():
        encoded = ours(batch, lengths, "variable")
        assert len(encoded.hidden_states) == ours.num_hidden_states
        for i, wave in enumerate(ravdess_clips):
            expected = reference_states(ref, wave)
            n = int(encoded.lengths[i])
            assert len(expected) == len(encoded.hidden_states) and n == expected[0].shape[0]
            for layer, (got, want) in enumerate(zip(encoded.hidden_states, expected, strict=True)):
                diff = float((got[i, :n] - want).abs().max())
                assert diff <= TOLERANCE, f"{release} clip {i} layer {layer}: max abs diff {diff}"
                worst = max(worst, diff)
    return worst


@pytest.mark.parametrize("release", ["emotion2vec_plus_large", "emotion2vec_plus_base"])
def test_equal_to_the_reference_at_every_layer_in_a_padded_batch(reference, ravdess_clips, release, tmp_path):
    compare(reference, ravdess_clips, release, tmp_path)


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("EMOREASON_E2V_FULL") != "1", reason="full-shape run: EMOREASON_E2V_FULL=1")
def test_full_large_shape(reference, ravdess_clips, tmp_path):
    worst = compare(reference, ravdess_clips, "emotion2vec_plus_large", tmp_path, full=True)
    print(f"emotion2vec_plus_large full shape: max abs diff {worst:.2e} over all 25 hidden states")
