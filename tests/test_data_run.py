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
        },
    )


def test_demo_run_writes_every_output_then_does_nothing(tmp_path, capsys):
    out = tmp_path / "run"
    with ScriptedServer() as server:
        cfg = _config(server.url, out)
        assert run_data(cfg) is True
        sent = len(server.requests_seen)
        assert sent == 6  # one request per utterance: the default asks one candidate

        for name in ("utterances.parquet", "profiles/profiles.parquet", "generations.parquet", "verified.parquet"):
            assert (out / name).is_file(), name
        assert (out / "audit.html").is_file() and (out / "data.config.yaml").is_file()
        assert (out / "hf" / "README.md").is_file()
        verified = pd.read_parquet(out / "verified.parquet")
        assert len(verified) == 6 and {"accepted", "reasons", "template_hash", "model"} <= set(verified.columns)
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
