"""The emotion2vec port: padding, the release converter and its errors, the registry kind, and
the AudioLLM around it (predict, train) with a tiny random config. Equality with the reference
implementation is in test_emotion2vec_reference.py."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch
import yaml
from test_model_fixtures import SR, tone

from model.encoders import emotion2vec_convert as conv
from model.encoders.emotion2vec import Emotion2vec, Emotion2vecConfig, Emotion2vecFrames, save_converted
from model.encoders.registry import get_kind

FIXTURES = Path(__file__).parent / "fixtures" / "emotion2vec"
# A few thousand parameters: every structural piece of the release (conv stack, 2 prenet + 1
# shared blocks, extra tokens, ALiBi) at toy width.
TINY = dict(
    embed_dim=32, num_heads=4, prenet_depth=2, depth=1, num_alibi_heads=4, conv_pos_groups=4,
    conv_pos_depth=2, conv_pos_width=8, num_extra_tokens=3,
    conv_layers=[[16, 10, 5], [16, 3, 2], [16, 3, 2], [16, 3, 2], [16, 3, 2], [16, 2, 2], [16, 2, 2]],
)  # fmt: skip


def tiny_model(seed: int = 0, **changes) -> Emotion2vec:
    torch.manual_seed(seed)
    model = Emotion2vec(Emotion2vecConfig(**{**TINY, **changes})).eval()
    with torch.no_grad():  # non-trivial norms and ALiBi scales, so a wrong mapping shows
        for name, p in model.named_parameters():
            if name == "alibi_scale":
                p.uniform_(0.2, 2.0)
            elif p.dim() == 1:
                p.add_(0.1 * torch.randn_like(p))
    return model


def padded(waves: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    lengths = torch.tensor([len(w) for w in waves])
    batch = torch.zeros(len(waves), int(lengths.max()))
    for i, w in enumerate(waves):
        batch[i, : len(w)] = w
    return batch, lengths


def official_state(model: Emotion2vec) -> dict[str, torch.Tensor]:
    """The release's layout of ``model``'s weights (the key map inverted), plus training-only parts."""
    ours = model.state_dict()
    state = {theirs: ours[name].clone() for name, theirs in conv.key_map(model.cfg).items()}
    state[conv.AUDIO + "alibi_scale"] = ours["alibi_scale"].reshape(1, 1, -1, 1, 1)
    state[conv.AUDIO + "decoder.proj.weight"] = torch.zeros(2, 2)  # data2vec decoder: dropped
    state["proj.weight"] = torch.zeros(9, model.cfg.embed_dim)  # emotion2vec+ classifier head: dropped
    return state


def official_release(model: Emotion2vec, directory: Path, state: dict | None = None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    conf = yaml.safe_load((FIXTURES / "emotion2vec_plus_base.yaml").read_text())
    mc, audio = conf["model_conf"], conf["model_conf"]["modalities"]["audio"]
    c = model.cfg
    mc.update(embed_dim=c.embed_dim, num_heads=c.num_heads, depth=c.depth)
    audio.update(prenet_depth=c.prenet_depth, num_alibi_heads=c.num_alibi_heads, conv_pos_groups=c.conv_pos_groups,
                 conv_pos_depth=c.conv_pos_depth, conv_pos_width=c.conv_pos_width, num_extra_tokens=c.num_extra_tokens,
                 feature_encoder_spec=repr([tuple(t) for t in c.conv_layers]))  # fmt: skip
    (directory / "config.yaml").write_text(yaml.safe_dump(conf))
    torch.save({"model": state if state is not None else official_state(model)}, directory / "model.pt")
    return directory


@pytest.fixture(scope="module")
def clips() -> list[torch.Tensor]:
    return [
        torch.from_numpy(tone(s, freq=f, seed=i))
        for i, (s, f) in enumerate([(0.9, 200.0), (0.41, 310.0), (1.3, 150.0)])
    ]


def test_padded_batch_equals_each_clip_alone_at_every_layer(clips):
    encoder = Emotion2vecFrames(tiny_model(), SR).eval()
    batch, lengths = padded(clips)
    with torch.no_grad():
        together = encoder(batch, lengths, "variable")
        assert len(together.hidden_states) == encoder.num_hidden_states == 4  # input + 2 prenet + 1 shared
        for i, wave in enumerate(clips):
            alone = encoder(wave[None], lengths[i : i + 1], "variable")
            n = int(alone.lengths[0])
            assert n == int(together.lengths[i]) == encoder.spec.frames(len(wave))
            for a, b in zip(together.hidden_states, alone.hidden_states, strict=True):
                assert (a[i, :n] - b[0]).abs().max() <= 1e-5


def test_fixed_window_gives_1500_frames_and_only_the_last_layer_on_request(clips):
    encoder = Emotion2vecFrames(tiny_model(), SR).eval()
    batch, lengths = padded(clips[:2])
    with torch.no_grad():
        out = encoder(batch, lengths, "fixed", all_layers=False)
        full = encoder(batch, lengths, "fixed")
    assert len(out.hidden_states) == 1 and out.hidden_states[0].shape == (2, 1499, 32)
    assert out.lengths.tolist() == [1499, 1499] == [encoder.spec.frames(30 * SR)] * 2
    assert torch.equal(out.hidden_states[0], full.hidden_states[-1])


def test_non_power_of_two_heads_alibi_and_pre_ln_variants_run(clips):
    for changes in ({"num_heads": 6, "num_alibi_heads": 6, "embed_dim": 36, "conv_pos_groups": 6},
                    {"layer_norm_first": True, "conv_pos_pre_ln": True, "alibi_scale_per_layer": True}):  # fmt: skip
        model = tiny_model(**changes)
        states, valid = model(clips[0][None], torch.tensor([len(clips[0])]))
        assert all(torch.isfinite(s).all() for s in states) and int(valid[0]) == states[-1].shape[1]


def test_gradient_checkpointing_gives_the_same_gradients(clips):
    grads = []
    for checkpointing in (False, True):
        encoder = Emotion2vecFrames(tiny_model(), SR).train()
        if checkpointing:
            encoder.gradient_checkpointing_enable()
        torch.manual_seed(1)  # the same dropout masks
        batch, lengths = padded(clips)
        encoder(batch, lengths, "variable").hidden_states[-1].square().mean().backward()
        grads.append(torch.cat([p.grad.flatten() for p in encoder.parameters()]))
    assert torch.allclose(grads[0], grads[1], atol=1e-6)


def test_converter_maps_every_key_and_round_trips_through_safetensors(tmp_path, clips):
    model = tiny_model()
    release = official_release(model, tmp_path / "release")
    assert conv.main([str(release), str(tmp_path / "converted")]) == 0
    assert sorted(p.name for p in (tmp_path / "converted").iterdir()) == ["config.json", "model.safetensors"]
    loaded = Emotion2vecFrames.from_pretrained(tmp_path / "converted", SR).eval()
    assert loaded.model.cfg == model.cfg
    batch, lengths = padded(clips)
    with torch.no_grad():
        a = Emotion2vecFrames(model, SR)(batch, lengths, "variable").hidden_states
        b = loaded(batch, lengths, "variable").hidden_states
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


def test_converter_names_every_missing_and_unexpected_key(tmp_path, capsys):
    model = tiny_model()
    state = official_state(model)
    del state["blocks.0.attn.qkv.weight"], state[conv.AUDIO + "extra_tokens"]
    state["blocks.0.attn.q_norm.weight"] = torch.zeros(3)
    state["encoder.layers.0.weight"] = torch.zeros(3)
    release = official_release(model, tmp_path / "release", state)
    assert conv.main([str(release), str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "2 missing keys" in err and "blocks.0.attn.qkv.weight" in err and conv.AUDIO + "extra_tokens" in err
    assert "2 unexpected keys" in err and "blocks.0.attn.q_norm.weight" in err and "encoder.layers.0.weight" in err
    assert not (tmp_path / "out").exists()
    # a tensor whose shape disagrees with config.yaml
    state = official_state(model)
    state["blocks.0.mlp.fc1.weight"] = torch.zeros(5, 5)
    with pytest.raises(conv.ConversionError, match=r"size mismatch for blocks\.2\.ffn\.fc1\.weight"):
        conv.load_official(official_release(model, tmp_path / "shape", state))


class Payload:
    """Anything but tensors and plain containers: torch.load(weights_only=True) must refuse it."""

    def __reduce__(self):
        return (print, ("unpickling ran code",))


def test_loading_a_release_never_runs_code(tmp_path, capsys):
    model = tiny_model()
    release = official_release(model, tmp_path / "release")
    with (release / "model.pt").open("wb") as f:
        pickle.dump({"model": official_state(model), "extra": Payload()}, f)
    with pytest.raises(conv.ConversionError, match="refused to unpickle"):
        conv.load_official(release)
    assert "unpickling ran code" not in capsys.readouterr().out


def test_conv_spec_is_parsed_without_eval():
    assert conv.parse_conv_spec("[(512, 10, 5)] + [(512, 3, 2)] * 4 + [(512,2,2)] + [(512,2,2)]") == (
        ((512, 10, 5),) + ((512, 3, 2),) * 4 + ((512, 2, 2),) * 2
    )
    for bad in ("__import__('os').system('true')", "[(1, 2)]", "[x] * 2"):
        with pytest.raises(conv.ConversionError):
            conv.parse_conv_spec(bad)


def test_release_configs_give_the_published_shapes():
    for name, params, blocks in (("emotion2vec_plus_large", 3.1e8, 24), ("emotion2vec_plus_base", 9.0e7, 12)):
        conf = yaml.safe_load((FIXTURES / f"{name}.yaml").read_text())
        cfg = conv.config_from_official(conf["model_conf"])
        assert cfg.num_blocks == blocks
        with torch.device("meta"):
            count = sum(p.numel() for p in Emotion2vec(cfg).parameters())
        assert abs(count - params) / params < 0.05, count  # model cards: ~300M (large), ~90M (base)


def test_registry_kind_from_a_random_config_and_from_a_converted_folder(tmp_path):
    from model.config import ParalinguisticEncoderConfig

    kind = get_kind("emotion2vec")
    random_cfg = ParalinguisticEncoderConfig(kind="emotion2vec", path=None, init=TINY)
    encoder = kind.build(random_cfg, SR)
    assert isinstance(encoder, Emotion2vecFrames) and encoder.num_hidden_states == 4
    assert kind.frame_spec(random_cfg, SR).frames_per_30s == 1500
    save_converted(tiny_model(), tmp_path / "e2v")
    path_cfg = ParalinguisticEncoderConfig(kind="emotion2vec", path=str(tmp_path / "e2v"))
    assert kind.frame_spec(path_cfg, SR) == encoder.spec
    assert kind.build(path_cfg, SR).hidden_size == 32
    with pytest.raises(FileNotFoundError, match="emotion2vec_convert"):
        kind.frame_spec(ParalinguisticEncoderConfig(kind="emotion2vec", path=str(tmp_path)), SR)


def test_train_command_and_predict_with_an_emotion2vec_encoder(tmp_path, capsys):
    """`make train-tiny`'s command, then `emoreason predict`, with a tiny random emotion2vec
    trained fully (freeze.emotion_encoder: full) and gradient checkpointing on."""
    from test_model_fixtures import tiny_config
    from test_train_audiollm import config, make_corpus

    from model.audiollm import AudioLLM
    from model.commands import train as train_command
    from pipeline.cli import main
    from pipeline.parquet import write_records
    from pipeline.records import TrainingExample

    model_cfg = tiny_config(tmp_path / "ckpt", **{"emotion.kind": "emotion2vec", "emotion.init": TINY})
    model = AudioLLM(model_cfg)
    model.gradient_checkpointing_enable()  # what the trainer calls for `gradient_checkpointing: true`
    assert model.emotion_encoder.model.gradient_checkpointing and model.speech_encoder.gradient_checkpointing
    write_records(make_corpus(tmp_path / "audio"), tmp_path / "corpus" / "train.parquet", TrainingExample)
    train_section = config(tmp_path / "run", schedule={"mode": "alternating", "round_unit": "step"}).model_dump(
        mode="json"
    )
    train_section.update(max_steps=2, eval_every=2, save_every=2, gradient_checkpointing=True)
    yaml_path = tmp_path / "tiny.yaml"
    yaml_path.write_text(yaml.safe_dump({"model": model_cfg.model_dump(mode="json"), "train": train_section}))
    argv = ["--config", str(yaml_path), "--corpus", str(tmp_path / "corpus"), "--out", str(tmp_path / "run")]
    assert train_command.main(argv) == 0
    reloaded = AudioLLM.from_pretrained(tmp_path / "run" / "final")
    assert isinstance(reloaded.emotion_encoder, Emotion2vecFrames)
    clip = tmp_path / "audio" / "clip0.wav"
    code = main(["predict", str(clip), "--checkpoint", str(tmp_path / "run"), "--max-new-tokens", "4", "--json"])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert '"error": null' in out.out
