"""The CTranslate2 -> transformers converter: the converted tiny.en transcribes speech correctly
through its own decoder (so encoder, decoder and the fused-projection splits are all right)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import missing

from model.convert_whisper_ct2 import read_ct2, wheel_model_dir

DEMO = Path(__file__).resolve().parents[1] / "pipeline" / "demo_corpus"
CLIP_ID = "spk1_00"  # a neutral espeak-ng clip of the demo corpus: "The meeting moved to Thursday afternoon."


def _words(text: str) -> list[str]:
    return re.sub(r"[^a-z ]", "", text.lower()).split()


@pytest.fixture(scope="module")
def converted():
    try:
        wheel_model_dir()
    except FileNotFoundError as err:
        missing(str(err))
    from model.convert_whisper_ct2 import converted_dir

    return converted_dir()  # the shared cache: converting once per machine is the point


def test_reader_resolves_aliases_and_shapes():
    try:
        tensors = read_ct2(wheel_model_dir() / "model.bin")
    except FileNotFoundError as err:
        missing(str(err))
    assert tensors["decoder/projection/weight"] is tensors["decoder/embeddings/weight"]
    assert tensors["encoder/conv1/weight"].shape == (384, 80, 3)
    assert tensors["encoder/layer_0/self_attention/linear_0/weight"].shape == (3 * 384, 384)


def test_converted_tiny_en_transcribes_a_demo_clip(converted):
    import soundfile as sf
    from transformers import WhisperFeatureExtractor, WhisperForConditionalGeneration, WhisperTokenizerFast

    rows = {r["id"]: r for r in map(json.loads, (DEMO / "utterances.jsonl").read_text().splitlines())}
    if CLIP_ID not in rows or not (DEMO / rows[CLIP_ID]["file"]).is_file():
        missing("demo corpus clip missing")
    wave, sr = sf.read(DEMO / rows[CLIP_ID]["file"], dtype="float32")
    assert sr == 16_000
    model = WhisperForConditionalGeneration.from_pretrained(converted).eval()
    features = WhisperFeatureExtractor.from_pretrained(converted)(wave, sampling_rate=sr, return_tensors="pt")
    with torch.no_grad():
        ids = model.generate(features.input_features, max_new_tokens=30)
    text = WhisperTokenizerFast.from_pretrained(converted).batch_decode(ids, skip_special_tokens=True)[0]
    assert _words(text) == _words(rows[CLIP_ID]["transcript"]), text


def test_converted_encoder_loads_into_the_speech_encoder(converted):
    from model.encoders.speech import WhisperFrames

    frames = WhisperFrames.from_pretrained(str(converted))
    assert frames.hidden_size == 384 and frames.spec.window_samples == 30 * 16_000
    wave = torch.from_numpy(np.zeros(16_000, dtype=np.float32))[None]
    out = frames(wave, torch.tensor([16_000]), "variable")
    assert out.hidden_states[-1].shape == (1, 50, 384)
