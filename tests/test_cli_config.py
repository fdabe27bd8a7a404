"""Every command's flags are generated from its typed config: a flag's name is its field."""

from __future__ import annotations

import importlib

import pytest
import yaml

from pipeline.cli import SUBCOMMANDS, build_parser, main
from pipeline.commands import parse_config


def _parse(command: str, argv: list[str]):
    parser, source = build_parser(command)
    module = importlib.import_module(SUBCOMMANDS[command][0])
    return parse_config(module.Args, source, parser.parse_args([command, *argv]))


@pytest.mark.parametrize("command", sorted(SUBCOMMANDS))
def test_every_command_has_a_typed_config_and_its_fields_are_the_flags(command, capsys):
    module = importlib.import_module(SUBCOMMANDS[command][0])
    _, source = build_parser(command)
    assert source is not None and hasattr(module, "Args"), f"{command}: flags not generated from a config"
    with pytest.raises(SystemExit):
        main([command, "--help"])
    help_text = capsys.readouterr().out
    for name, field in module.Args.model_fields.items():
        shown = name.upper() if "CliPositionalArg" in repr(field.metadata) else f"-{name.replace('_', '-')}"
        assert shown in help_text or (field.validation_alias is not None), f"{command}: no flag for {name}"


def test_nested_fields_are_dotted_flags_and_only_set_values_override_the_file(tmp_path):
    settings = tmp_path / "data.yaml"
    settings.write_text(yaml.safe_dump({"generate": {"llm": {"concurrency": 5}, "sampling": {"n": 4}}}))
    args = _parse(
        "data",
        ["--config", str(settings), "--generate.llm.model", "Qwen/Q", "--generate.llm.base-urls", "http://a/v1",
         "--generate.llm.base-urls", "http://b/v1", "--generate.sampling.n", "2", "--no-hf-export", "-o",
         "splits=[dev]"],
    )  # fmt: skip
    from pipeline.commands.data import load_data_config

    cfg = load_data_config(args.config, args.model_dump(exclude={"config"}, exclude_unset=True))
    assert cfg.generate.llm.model == "Qwen/Q" and cfg.generate.llm.base_urls == ["http://a/v1", "http://b/v1"]
    assert cfg.generate.sampling.n == 2  # the flag beats the file
    assert cfg.generate.llm.concurrency == 5  # the file's value stays where no flag was given
    assert cfg.hf_export is False and cfg.options == {"splits": ["dev"]}  # -o values are YAML
    assert cfg.run_folder.as_posix() == "runs/demo"


def test_generate_flags_are_generate_config_fields():
    args = _parse("generate", ["demo", "--llm.timeout-s", "7", "--styles", "elaborate", "--styles", "acoustic"])
    assert args.llm.timeout_s == 7 and args.styles == ["elaborate", "acoustic"]
    assert args.model_dump(exclude_unset=True) == {
        "dataset": "demo",
        "llm": {"timeout_s": 7.0},
        "styles": ["elaborate", "acoustic"],
    }


def test_train_null_and_a_half_config_on_the_command_line():
    args = _parse("train", ["--config", "x.yaml", "--eval-split", "null", "--micro-batch-size", "5"])
    # 48 is not a multiple of 5, but the file may set global_batch_size: load_train_config checks.
    assert args.eval_split is None and args.micro_batch_size == 5


def test_eval_config_keeps_its_flags():
    args = _parse(
        "eval",
        ["--checkpoint", "ck", "--compare", "a", "b", "--judge-url", "u1", "--judge-url", "u2", "--score-only",
         "--task", "emotion_recognition", "-o", "test_actors=[17]"],
    )  # fmt: skip
    assert args.compare == ["a", "b"] and args.judge_url == ["u1", "u2"] and args.score_only
    assert args.options == {"test_actors": [17]} and args.task == "emotion_recognition"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["eval", "--checkpoint", "ck", "--task", "poetry"], "--task: Input should be"),
        (["generate", "demo", "--sampling.n", "0"], "--sampling.n: Input should be greater than or equal to 1"),
        (["verify", "g.parquet", "--dataset", "demo", "--skip", "nosuch"], "--skip: Value error, no check named"),
    ],
)
def test_a_refused_value_is_one_line_naming_the_flag(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
