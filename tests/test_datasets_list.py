"""`emoreason list`: counts per split x label, speakers, durations, rejects; clean errors."""

from __future__ import annotations

from pipeline.cli import main


def test_list_demo(capsys):
    assert main(["list", "demo"]) == 0
    out = capsys.readouterr().out
    assert "demo under protocol all: 144 utterances, 0 rejects" in out
    assert "speakers: 8 in all" in out and "audio: " in out
    total = next(line for line in out.splitlines() if line.startswith("total"))
    assert total.split()[1:] == ["36", "36", "72", "144"]  # dev, test, train, all


def test_list_shows_rejects_grouped_by_reason(capsys, tmp_path):
    (tmp_path / "audio").mkdir()
    (tmp_path / "utterances.jsonl").write_text(
        "".join(
            f'{{"id": "u{i}", "speaker": "a", "gender": "male", "split": "train", "transcript": "Hi.", '
            f'"emotion": "bored", "file": "audio/u{i}.flac"}}\n'
            for i in range(5)
        )
    )
    assert main(["list", "demo", "--root", str(tmp_path), "--show-rejects", "2"]) == 0
    out = capsys.readouterr().out
    assert "unknown_label: 5" in out
    assert sum("'bored'" in line for line in out.splitlines()) == 2


def test_list_options_and_errors(capsys, tmp_path):
    assert main(["list", "demo", "--split", "test", "-o", "context_turns=1"]) == 0
    assert "36 utterances" in capsys.readouterr().out
    assert main(["list", "ravdess", "--root", str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["list", "demo", "-o", "nonsense=1"]) == 2
    assert "no option nonsense" in capsys.readouterr().err
