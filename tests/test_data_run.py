"""`make data` orchestration: every step runs once, writes its outputs, and is skipped when up to date."""

from __future__ import annotations

import pandas as pd
from scripted_server import ScriptedServer

from pipeline.config import load_config
from pipeline.data_run import REJECTS, DataConfig, run_data


def _config(url: str, out, **extra) -> DataConfig:
    return load_config(
        DataConfig,
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
        assert run_data(cfg) is True
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
        assert run_data(cfg) is False  # second run: nothing to do, no request sent
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
    from pipeline.config import load_config
    from pipeline.data_run import EMBEDDED_SAMPLING, EMBEDDED_TEMPLATES, DataConfig
    from pipeline.generate import STYLE_TEMPLATES, GenerateConfig

    embedded = load_config(DataConfig, None, {})
    assert embedded.generate.templates == {**STYLE_TEMPLATES, **EMBEDDED_TEMPLATES}
    assert embedded.generate.sampling == EMBEDDED_SAMPLING
    general = GenerateConfig()
    other = load_config(
        DataConfig, None, {"generate.llm.backend": "openai", "generate.llm.model": "Qwen/Qwen2.5-7B-Instruct"}
    )
    assert other.generate.templates == STYLE_TEMPLATES
    assert other.generate.sampling == general.sampling and other.generate.max_parse_retries == general.max_parse_retries
    chosen = load_config(DataConfig, None, {"generate.llm.model": "Qwen/Qwen2.5-7B-Instruct", "generate.sampling.n": 3})
    assert chosen.generate.sampling.n == 3  # set by the user: kept
    assert chosen.generate.sampling.max_tokens == general.sampling.max_tokens
