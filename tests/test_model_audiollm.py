"""The AudioLLM on tiny random checkpoints: placement, counts, loss mask, fusion, windows,
freezing, save/load and generation."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from test_model_fixtures import tiny_config, tone

from model.audiollm import GROUPS, AudioLLM, token_counter
from model.batch import IGNORE_INDEX
from model.collator import AudioCollator, AudioExample, AudioPrompt
from pipeline.records import Task, TrainingExample


def example(i: int, seconds: float, target: str = "angry", instruction: str = "What emotion is this?") -> AudioExample:
    ex = TrainingExample(
        id=f"ex{i}", task=Task.emotion_recognition, instruction=instruction, target=target, audio_path="-",
        utterance_id=f"u{i}", dataset="test", split="train", speaker="s",
    )  # fmt: skip
    return AudioExample(example=ex, waveform=tone(seconds, freq=150 + 40 * i, seed=i))


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("tiny")


def build(root, **changes) -> tuple[AudioLLM, AudioCollator]:
    torch.manual_seed(0)
    model = AudioLLM(tiny_config(root, **changes)).eval()
    return model, AudioCollator(model.tokenizer, model.counter, model.config.audio_marker)


@pytest.fixture(scope="module")
def tiny(root):
    return build(root)


def test_placeholders_receive_the_audio_embeddings(tiny):
    model, collate = tiny
    batch = collate([example(0, 1.0), example(1, 2.6)])
    audio, totals = model.encode_audio(batch.waveforms, batch.waveform_lengths)
    assert totals.tolist() == batch.audio_mask.sum(1).tolist() == [model.counter(16_000), model.counter(41_600)]
    embeds, _ = model.embed(batch)
    assert torch.equal(embeds[batch.audio_mask], audio)  # every placeholder, in clip order
    text = model.decoder.get_input_embeddings()(batch.input_ids)
    assert torch.equal(embeds[~batch.audio_mask], text[~batch.audio_mask])  # text untouched
    # The audio sits inside the user turn, before the instruction text.
    first = int(batch.audio_mask[0].nonzero()[0])
    assert "<|im_start|>user" in model.tokenizer.decode(batch.input_ids[0, :first])


def test_variable_window_counts_scale_with_duration_and_fixed_do_not(root):
    variable = token_counter(tiny_config(root))
    fixed = token_counter(tiny_config(root, **{"speech.window": "fixed", "emotion.window": "fixed"}))
    assert variable(16_000) < variable(32_000) < variable(48_000)
    assert fixed(16_000) == fixed(48_000) == fixed(10 * 16_000)  # longer clips are cut to the window
    # The tiny Whisper's 3 s window = 150 frames -> 10 speech tokens; WavLM's 30 s = 1499 frames / 50 -> 30.
    assert fixed.stream_tokens(16_000) == (10, 30)


def test_count_mismatch_names_both_numbers(tiny):
    model, collate = tiny
    batch = collate([example(0, 1.0)])
    first = int(batch.audio_mask[0].nonzero()[0])
    batch.audio_mask[0, first] = False
    want = model.counter(16_000)
    with pytest.raises(ValueError, match=rf"{want - 1} audio placeholder tokens.*{want} audio tokens"):
        model(batch)


def test_loss_is_masked_to_the_answer(tiny):
    model, collate = tiny
    batch = collate([example(0, 1.0, target="angry"), example(1, 1.5, target="sad and tired")])
    answer = model.tokenizer.apply_chat_template(
        [{"role": "user", "content": "x"}, {"role": "assistant", "content": "sad and tired"}], tokenize=False
    ).split("<|im_start|>assistant\n")[1]
    labelled = batch.labels[1][batch.labels[1] != IGNORE_INDEX]
    assert model.tokenizer.decode(labelled) == answer  # the answer and its end-of-turn, nothing else
    assert not batch.audio_mask[batch.labels != IGNORE_INDEX].any()
    out = model(batch, all_logits=True)
    # Changing a prompt-side token's *label* target cannot matter; changing the answer does.
    logits = out.logits[:, :-1].flatten(0, 1)
    manual = torch.nn.functional.cross_entropy(logits, batch.labels[:, 1:].flatten(), ignore_index=IGNORE_INDEX)
    assert torch.allclose(out.loss, manual)
    # By default the vocabulary projection runs at the answer positions only: same loss, and the
    # same logits there.
    answer_only = model(batch)
    n_predicted = int((batch.labels[:, 1:] != IGNORE_INDEX).sum())
    assert answer_only.logits.shape == (n_predicted, logits.shape[-1])
    assert torch.allclose(answer_only.loss, out.loss, atol=1e-6)
    assert torch.allclose(answer_only.logits, logits[batch.labels[:, 1:].flatten() != IGNORE_INDEX], atol=1e-5)
    n_answer = int((batch.labels != IGNORE_INDEX).sum())
    per_token = torch.nn.functional.cross_entropy(logits, batch.labels[:, 1:].flatten(), reduction="none")
    assert torch.allclose(out.loss, per_token[batch.labels[:, 1:].flatten() != IGNORE_INDEX].sum() / n_answer)


@pytest.mark.parametrize(
    "changes",
    [
        {"fusion.mode": "feature"},
        {"fusion.mode": "sequence", "fusion.separators": True},
        {"speech.window": "fixed", "freeze.emotion_encoder": "lora", "freeze.speech_encoder": "full"},
        {"emotion.kind": "whisper", "emotion.init": {"d_model": 32, "encoder_layers": 2, "encoder_attention_heads": 2,
          "encoder_ffn_dim": 64, "max_source_positions": 150, "vocab_size": 64, "pad_token_id": 0, "bos_token_id": 1,
          "eos_token_id": 2, "decoder_start_token_id": 1}, "emotion.layer": 1, "emotion.window": "fixed",
         "emotion.grouping": "stack", "adapter.emotion_hidden": [32, 32]},
    ],
    ids=["feature", "separators", "fixed", "whisper-emotion"],
)  # fmt: skip
def test_configurations_train_end_to_end(root, changes):
    model, collate = build(root, **changes)
    model.train()
    batch = collate([example(0, 1.2), example(1, 2.0)])
    out = model(batch)
    out.loss.backward()
    for name, params in model.parameter_groups().items():
        assert params, name
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in params), f"no gradient reaches {name}"
    if changes.get("fusion.mode") == "feature":
        assert batch.audio_mask.sum(1).tolist() == [
            model.counter.stream_tokens(int(n))[0] for n in batch.waveform_lengths
        ]


def test_variable_window_output_does_not_depend_on_batch_neighbours(tiny):
    model, collate = tiny
    short, long = example(0, 1.0), example(1, 2.8)
    alone = model(collate([short]), all_logits=True).logits[0]
    together = model(collate([short, long]), all_logits=True).logits[0, : alone.shape[0]]
    assert torch.allclose(alone, together, atol=1e-5)


def test_fixed_window_matches_whisper_own_forward(root):
    model, _ = build(root, **{"speech.window": "fixed"})
    from model.features import log_mel

    wave = torch.from_numpy(tone(1.5))[None]
    lengths = torch.tensor([wave.shape[1]])
    ours = model.speech_encoder(wave, lengths, "fixed").hidden_states[-1]
    mel = log_mel(wave, lengths, 80, "fixed", num_frames=300).features
    theirs = model.speech_encoder.encoder(mel).last_hidden_state
    assert torch.allclose(ours, theirs, atol=1e-5)


def test_set_trainable_per_round(root):
    model, collate = build(root)
    model.train()
    batch = collate([example(0, 1.0)])
    groups = model.parameter_groups()
    assert set(groups) == set(GROUPS)
    for round_groups in (["speech_encoder", "speech_adapter", "lora"], ["emotion_encoder", "emotion_adapter", "lora"]):
        model.zero_grad(set_to_none=True)
        model.set_trainable(round_groups)
        model(batch).loss.backward()
        trained = {id(p) for g in round_groups for p in groups[g]}
        for p in model.parameters():
            assert (p.grad is not None) == (id(p) in trained)
    with pytest.raises(ValueError, match="unknown parameter groups"):
        model.set_trainable(["decoder"])


def test_frozen_components_never_train(root):
    model, _ = build(root, **{"freeze.speech_encoder": "frozen", "freeze.emotion_encoder": "frozen"})
    assert model.parameter_groups()["speech_encoder"] == model.parameter_groups()["emotion_encoder"] == []
    model.set_trainable(GROUPS)
    assert not any(p.requires_grad for p in model.speech_encoder.parameters())
    assert not any(p.requires_grad for p in model.emotion_encoder.parameters())
    decoder_trainable = [n for n, p in model.decoder.named_parameters() if p.requires_grad]
    assert decoder_trainable and all("lora_" in n for n in decoder_trainable)  # base weights never train


def test_save_then_load_gives_identical_outputs(root, tmp_path):
    model, collate = build(root, **{"fusion.separators": True})
    with torch.no_grad():  # make sure trained (non-initial) values are what gets saved
        for params in model.parameter_groups().values():
            for p in params:
                p.add_(0.01 * torch.randn_like(p))
    batch = collate([example(0, 1.0), example(1, 2.0)])
    before = model(batch, all_logits=True).logits
    model.save_pretrained(tmp_path / "ckpt")
    loaded = AudioLLM.from_pretrained(tmp_path / "ckpt").eval()
    assert torch.equal(before, loaded(batch, all_logits=True).logits)


def test_generate_batched_greedy_and_sampled(tiny):
    model, collate = tiny
    prompts = collate([AudioPrompt("What emotion?", tone(1.0), id="a"), AudioPrompt("<audio> Transcribe.", tone(2.0))])
    assert prompts.labels is None and bool(prompts.attention_mask[:, -1].all())  # left padded
    greedy = model.generate(prompts, max_new_tokens=4, min_new_tokens=4)
    assert len(greedy) == 2 and all(isinstance(t, str) for t in greedy)
    assert greedy == model.generate(prompts, max_new_tokens=4, min_new_tokens=4)
    sampled = model.generate(prompts, max_new_tokens=4, do_sample=True, temperature=0.9)
    assert len(sampled) == 2
    # Training rows generate from their prompt only (the answer is dropped).
    rows = collate([example(0, 1.0)])
    alone = collate([AudioPrompt("What emotion is this?", example(0, 1.0).waveform)])
    assert model.generate(rows, max_new_tokens=4) == model.generate(alone, max_new_tokens=4)


def test_collator_rejects_bad_rows(tiny):
    _, collate = tiny
    with pytest.raises(ValueError, match="2 times"):
        collate([example(0, 1.0, instruction="<audio> and <audio>")])
    with pytest.raises(ValueError, match="mono waveform"):
        collate([AudioPrompt("x", tone(1.0)[:0])])


def test_input_norm_standardises_the_valid_frames_and_is_saved(root, tmp_path):
    model, collate = build(root, **{"adapter.input_norm": True})
    batch = collate([example(0, 1.0), example(1, 2.4)])
    with pytest.raises(ValueError, match="never fitted"):
        model(batch)
    assert model.fit_input_norm([batch]) == 2
    streams = model.encoder_frames(batch.waveforms, batch.waveform_lengths)
    for adapter, (frames, valid) in zip((model.speech_adapter, model.emotion_adapter), streams, strict=True):
        real = torch.cat([frames[i, : int(n)] for i, n in enumerate(valid)])  # padding frames excluded
        assert torch.allclose(adapter.input_mean, real.mean(0), atol=1e-5)
        assert torch.allclose(adapter.input_std, real.std(0, unbiased=False).clamp(min=1e-4), atol=1e-5)
    before = model(batch, all_logits=True).logits
    model.save_pretrained(tmp_path / "ckpt")
    loaded = AudioLLM.from_pretrained(tmp_path / "ckpt").eval()
    assert torch.equal(loaded.emotion_adapter.input_std, model.emotion_adapter.input_std)
    assert torch.equal(before, loaded(batch, all_logits=True).logits)


def speaker_clips(speaker: str, gain: float, n: int, dataset: str = "test") -> list[AudioExample]:
    rows = []
    for i in range(n):
        ex = TrainingExample(
            id=f"{speaker}{i}", task=Task.emotion_recognition, instruction="What emotion is this?", target="sad",
            audio_path="-", utterance_id=f"{speaker}{i}", dataset=dataset, split="train", speaker=speaker,
        )  # fmt: skip
        wave = tone(0.5 + 0.05 * i, freq=120 + 15 * i + (80 if gain > 1 else 0), seed=i) * gain
        rows.append(AudioExample(example=ex, waveform=wave))
    return rows


def test_speaker_norm_zscores_each_speaker_on_their_own_frames_and_saves_only_the_pooled_stats(root, tmp_path):
    model, collate = build(root, **{"adapter.speaker_norm": True, "emotion.layer": "weighted"})
    quiet, loud = speaker_clips("a", 0.3, 10), speaker_clips("b", 3.0, 10)
    with pytest.raises(ValueError, match="never fitted"):
        model(collate(quiet[:2]))
    assert model.fit_speaker_norm([collate(quiet), collate(loud)], pooled=True) == 20
    assert set(model.speech_speaker_norm.table) == {"test/a", "test/b"}
    emotion_layers = model.emotion_encoder.num_hidden_states
    assert model.emotion_speaker_norm.pooled_mean.shape == (emotion_layers, model.emotion_encoder.hidden_size)
    for clips in (quiet, loud):  # each speaker: mean 0, spread 1 over their valid frames
        one = collate(clips)
        (speech, speech_valid), (emotion, emotion_valid) = model.encoder_states(one.waveforms, one.waveform_lengths)
        normed = [(x, speech_valid) for x in model.speech_speaker_norm(speech, one.speakers)]
        normed += [(x, emotion_valid) for x in model.emotion_speaker_norm(emotion, one.speakers)]
        for x, valid in normed:
            frames = torch.cat([x[i, : int(valid[i])] for i in range(len(clips))])
            assert frames.mean(0).abs().max() < 1e-3
            spread = frames.std(0, unbiased=False)
            assert ((spread - 1).abs() < 1e-3)[spread > 1e-2].all()  # features constant for a speaker stay 0
    # A speaker with too few clips, or none known, is normalised by the pooled statistics.
    few = collate(speaker_clips("c", 1.0, 3))
    model.fit_speaker_norm([few], pooled=False)
    assert "test/c" not in model.speech_speaker_norm.table
    unknown = dataclasses.replace(few, speakers=[""] * len(few))
    assert torch.equal(model.encode_audio(few.waveforms, few.waveform_lengths, few.speakers)[0],
                       model.encode_audio(unknown.waveforms, unknown.waveform_lengths, unknown.speakers)[0])  # fmt: skip
    # The table is measured, not saved: a loaded model knows the pooled statistics only.
    model.save_pretrained(tmp_path / "ckpt")
    loaded = AudioLLM.from_pretrained(tmp_path / "ckpt").eval()
    assert torch.equal(loaded.emotion_speaker_norm.pooled_std, model.emotion_speaker_norm.pooled_std)
    assert loaded.speech_speaker_norm.table == {}
    loaded.fit_speaker_norm([collate(quiet)], pooled=False)
    one = collate(quiet[:2])
    assert torch.allclose(model(one, all_logits=True).logits, loaded(one, all_logits=True).logits, atol=1e-5)


@pytest.mark.parametrize("level", ["peak", "rms"])
def test_level_makes_the_encoders_blind_to_recording_gain(root, level):
    import numpy as np

    from model.features import level_waveforms
    from pipeline.audio import normalise_level

    model, collate = build(root, level=level)
    quiet, loud = tone(0.8, seed=3) * 0.05, tone(1.3, seed=4)
    batch = collate([AudioPrompt("x", quiet), AudioPrompt("x", loud)])
    scaled = level_waveforms(batch.waveforms, batch.waveform_lengths, model.config.level)
    for row, wave in enumerate((quiet, loud)):  # each clip as normalise_level scales it alone; padding stays 0
        n = wave.size
        assert np.allclose(scaled[row, :n].numpy(), normalise_level(wave, level), rtol=1e-5, atol=1e-7)
        assert not scaled[row, n:].any()
    ten_times = collate([AudioPrompt("x", quiet * 10), AudioPrompt("x", loud * 10)])
    for (a, _), (b, _) in zip(model.encoder_frames(batch.waveforms, batch.waveform_lengths),
                              model.encoder_frames(ten_times.waveforms, ten_times.waveform_lengths), strict=True):  # fmt: skip
        assert torch.allclose(a, b, atol=1e-4)
    unlevelled, _ = build(root)
    a = unlevelled.encoder_frames(batch.waveforms, batch.waveform_lengths)[0][0]
    b = unlevelled.encoder_frames(ten_times.waveforms, ten_times.waveform_lengths)[0][0]
    assert not torch.allclose(a, b, atol=1e-4)  # without it, gain changes what the encoders see
