"""`make data` orchestration: every step runs once, writes its outputs, and is skipped when up to date."""

from __future__ import annotations

import pandas as pd
from scripted_server import ScriptedServer

from pipeline.data_run import REJECTS, DataConfig, load_data_config, run_data


def _config(url: str, out, **extra) -> DataConfig:
    return load_data_config(
        overrides=extra
        | {
            "out": str(out),
            "workers": 1,
            "generate.limit": 6,
            "generate.progress": False,
            "generate.llm.backend": "openai",
            "generate.llm.base_urls": [url],
            "generate.llm.model": "scripted",
            "generate.sampling.n": 2,  # a non-embedded teacher's default: best of two
        },
    )


def test_demo_run_writes_every_output_then_does_nothing(tmp_path, capsys):
    out = tmp_path / "run"
    with ScriptedServer() as server:
        cfg = _config(server.url, out)
        assert run_data(cfg).did_work
        sent = len(server.requests_seen)
        # One request per utterance (the default asks one candidate), except where the evidence plan
        # finds nothing that supports the label: those are rows with a reason, not requests.
        generations = pd.read_parquet(out / "generations.parquet")
        unsupported = generations["error"].fillna("").str.startswith("no_supporting_evidence").sum()
        assert 0 < sent == 6 - unsupported // 2  # two rows (candidates) per utterance
        assert (out / "relevance.json").is_file()

        for name in ("utterances.parquet", "profiles/profiles.parquet", "generations.parquet", "verified.parquet"):
            assert (out / name).is_file(), name
        assert (out / "audit.html").is_file() and (out / "data.config.yaml").is_file()
        assert (out / "hf" / "README.md").is_file()
        verified = pd.read_parquet(out / "verified.parquet")
        assert len(verified) == 12 and {"accepted", "reasons", "template_hash", "model"} <= set(verified.columns)
        assert set(verified["model"]) == {"scripted"}
        corpora = pd.read_parquet(out / "corpora" / "train.parquet")
        assert {"asr", "emotion_recognition"} <= set(corpora["task"])
        assert (out / REJECTS).is_file()

        capsys.readouterr()
        assert not run_data(cfg).did_work  # second run: nothing to do, no request sent
        assert len(server.requests_seen) == sent
        assert "nothing to do" in capsys.readouterr().out


def test_a_changed_step_config_reruns_that_step_and_those_after(tmp_path, capsys):
    out = tmp_path / "run"
    with ScriptedServer() as server:
        run_data(_config(server.url, out))
        capsys.readouterr()
        run_data(_config(server.url, out, **{"verify.batch_size": 7}))
        printed = capsys.readouterr().out
    assert "[generate] up to date, skipped" in printed
    assert "[verify] running" in printed and "[corpora] running" in printed


def test_embedded_tuning_is_not_applied_to_another_teacher():
    from pipeline.data_run import EMBEDDED_SAMPLING, EMBEDDED_TEMPLATES
    from pipeline.generate_config import STYLE_TEMPLATES, GenerateConfig

    embedded = load_data_config()
    assert embedded.generate.templates == {**STYLE_TEMPLATES, **EMBEDDED_TEMPLATES}
    assert embedded.generate.sampling == EMBEDDED_SAMPLING
    general = GenerateConfig()
    other = load_data_config(overrides={"generate.llm.backend": "openai", "generate.llm.model": "Qwen/Qwen2.5-7B"})
    assert other.generate.templates == STYLE_TEMPLATES
    assert other.generate.sampling == general.sampling and other.generate.max_parse_retries == general.max_parse_retries
    assert other.generate.sampling.seed is None  # a served teacher gets no seed unless asked (docs/vllm-cpu.md)
    chosen = load_data_config(overrides={"generate.llm.model": "Qwen/Qwen2.5-7B", "generate.sampling.n": 3})
    assert chosen.generate.sampling.n == 3  # set by the user: kept
    assert chosen.generate.sampling.max_tokens == general.sampling.max_tokens


def test_user_settings_equal_to_an_embedded_default_are_kept(tmp_path):
    # n=1 and max_parse_retries=0 are the embedded defaults; a user who asks for them gets them.
    settings = tmp_path / "teacher.yaml"
    settings.write_text("generate:\n  llm: {model: Qwen/Qwen2.5-7B}\n  max_parse_retries: 0\n")
    cfg = load_data_config(settings, {"generate.sampling.n": 1, "generate.llm.batch_size": 32})
    assert cfg.generate.sampling.n == 1 and cfg.generate.max_parse_retries == 0 and cfg.generate.llm.batch_size == 32
    assert cfg.generate.sampling.max_tokens == 512  # not set: the general default, not the embedded 224


def _argv(url: str, out) -> list[str]:
    # Every utterance asked, whatever its cues: these tests are about requests, not evidence plans
    # (the plan sends nothing for an utterance with no cue that supports its label).
    settings = out.parent / "every-utterance.yaml"
    settings.write_text("generate: {evidence_plan: 'off'}\n")
    argv = [
        "data",
        "--out",
        str(out),
        "--generate.llm.backend",
        "openai",
        "--generate.llm.model",
        "scripted",
        "--generate.llm.base-urls",
        url,
    ]
    return argv + ["--generate.limit", "6", "--workers", "1", "--no-hf-export", "--config", str(settings)]


def test_failed_requests_stop_the_run_with_exit_1_and_the_rerun_reasks_exactly_them(tmp_path, capsys):
    from pipeline.cli import main

    out = tmp_path / "run"
    # Two utterances' requests fail for good (400 is not retried); the other four are answered.
    plan = {"Thursday afternoon": ["400"], "kitchen table": ["400"]}
    with ScriptedServer(plan=plan) as server:
        assert main(_argv(server.url, out)) == 1
        printed = capsys.readouterr()
        assert "stage one: 2 of 6 teacher requests failed (http 400 after 1 attempt: 2)" in printed.err
        assert "rerun the same command" in printed.err and "--allow-partial" in printed.err
        assert "[verify]" not in printed.out and not (out / "verified.parquet").exists()
        sent = len(server.requests_seen)

        server.plan = {}  # the outage is over
        assert main(_argv(server.url, out)) == 0
        asked = [s.match for s in server.requests_seen[sent:]]
        assert len(asked) == 2 and all("Thursday afternoon" in m or "kitchen table" in m for m in asked)
        verified = pd.read_parquet(out / "verified.parquet")
        assert len(verified) == 12 and verified["error"].isna().all()


def test_data_takes_the_clients_timeout_concurrency_and_seed_as_flags(tmp_path):
    import yaml

    from pipeline.cli import main

    out = tmp_path / "run"
    with ScriptedServer() as server:
        argv = [
            *_argv(server.url, out),
            "--generate.limit",
            "2",
            "--generate.llm.concurrency",
            "3",
            "--generate.llm.timeout-s",
            "600",
            "--generate.sampling.seed",
            "7",
        ]
        assert main(argv) == 0
    resolved = yaml.safe_load((out / "data.config.yaml").read_text())["generate"]
    assert resolved["llm"]["concurrency"] == 3 and resolved["llm"]["timeout_s"] == 600
    assert resolved["sampling"]["seed"] == 7 and server.requests_seen[0].body["seed"] == 7


def test_allow_partial_goes_on_and_exits_0_and_the_next_run_still_reasks(tmp_path, capsys):
    from pipeline.cli import main

    out = tmp_path / "run"
    with ScriptedServer(plan={"Thursday afternoon": ["400"]}) as server:
        assert main([*_argv(server.url, out), "--allow-partial"]) == 0
        assert "partial results" in capsys.readouterr().err
        verified = pd.read_parquet(out / "verified.parquet")
        assert verified["error"].str.startswith("request_failed").sum() == 2 and not verified["accepted"].all()
        sent = len(server.requests_seen)
        server.plan = {}
        assert main(_argv(server.url, out)) == 0
        assert len(server.requests_seen) == sent + 1


def test_a_generations_file_rewritten_by_another_command_reruns_its_step(tmp_path, capsys):
    out = tmp_path / "run"
    with ScriptedServer() as server:
        cfg = _config(server.url, out)
        run_data(cfg)
        (out / "generations.parquet").write_bytes((out / "generations.parquet").read_bytes())  # new mtime
        capsys.readouterr()
        run_data(cfg)
        printed = capsys.readouterr().out
    assert "[generate] running" in printed and "[verify] running" in printed


def test_a_cut_step_marker_means_not_done(tmp_path, capsys):
    out = tmp_path / "run"
    with ScriptedServer() as server:
        cfg = _config(server.url, out)
        run_data(cfg)
        marker = out / ".stamps" / "verify.json"
        marker.write_text(marker.read_text()[:7])  # a kill in the middle of writing it
        capsys.readouterr()
        run_data(cfg)
    assert "[verify] running" in capsys.readouterr().out
