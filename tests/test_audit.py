"""The audit: summary numbers, the command, and a self-contained, escaped, renderable HTML report."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from factories_verified import corpus_records, verified

from pipeline.audit import format_summary, summarise
from pipeline.audit.report import render_report
from pipeline.audit.run import load_verified
from pipeline.cli import main
from pipeline.parquet import write_records
from pipeline.records import VerifiedRecord
from pipeline.verdict import CheckName, Reason

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def test_summary_numbers():
    summary = summarise(corpus_records(), top=3)
    assert summary.n == 8 and int(summary.frame["accepted"].sum()) == 2
    assert summary.by_label.loc["angry"].tolist() == [3, 1, pytest.approx(1 / 3)]
    assert summary.by_dataset.loc["meld", "rate"] == pytest.approx(0.25)
    assert summary.by_check.loc["quote_grounding", "failures"] == 2
    assert summary.by_check.loc["label", "share_of_rejected"] == pytest.approx(2 / 6)
    assert summary.evidence.loc["acoustic", "answers_citing"] == 3
    assert summary.evidence.loc["lexical", "items"] == 8
    assert summary.lengths.loc["accepted", "count"] == 2
    # Worst first: the two candidates that fail two checks each.
    assert summary.top_failing["id"].tolist()[:2] == [
        "meld/dev/dia0_utt0#elaborate#0",
        "meld/train/dia4_utt0#elaborate#0",
    ]
    text = format_summary(summary)
    for heading in ("Acceptance by label", "Failed checks", "Evidence kinds", "Reasoning length", "Reasoning quality"):
        assert heading in text
    assert "leakage: mentions the annotation: 'the label is'" in text
    with pytest.raises(ValueError, match="no verified records"):
        summarise([])


def test_failed_rules_trainable_share_and_relevance_table():
    import json as _json
    from pathlib import Path

    from factories_verified import verified

    from pipeline.audit.summary import rule_of
    from pipeline.relevance import RelevanceTable

    # Rules, not only checks: a failed check's reason code, so one rule counts once whatever the detail.
    reason = Reason(check=CheckName.duplicate, code="near_copy", detail="near-copy of ravdess/03-01-05#acoustic#0")
    assert rule_of(reason) == "duplicate · near_copy"
    cut = [
        verified(
            f"meld/t{i}", "Fine.", "angry", failed={"degeneracy": ("cut_at_word_cap", f"truncated: all {50 + i} words")}
        )
        for i in range(3)
    ]
    loop = [
        verified(
            "meld/l",
            "Fine.",
            "angry",
            failed={"degeneracy": ("repeated_ngrams", "repetition loop: 40% of 3-grams repeat")},
        )
    ]
    # Accepted but never judged relevant (the relevance check was n/a): not trainable.
    unjudged = verified("meld/u", "Fine.", "angry", not_applicable=("context_grounding", "relevance", "judge"))
    good = verified("meld/g", "I hate you!", "angry", [("lexical", "I hate you", "anger")], selected=True)
    table = RelevanceTable.model_validate(
        _json.loads((Path(__file__).parent / "data" / "ravdess_relevance.json").read_text())
    )
    summary = summarise([*cut, *loop, unjudged, good], relevance=table)
    assert summary.by_rule.loc["degeneracy · cut_at_word_cap", "failures"] == 3
    assert summary.by_rule.loc["degeneracy · repeated_ngrams", "failures"] == 1
    assert summary.frame["trainable"].tolist() == [False] * 5 + [True]
    assert summary.trainable_utterances == 1
    text = format_summary(summary)
    assert "trainable (accepted, evidence verified to support the label): 1 candidates, 1 of 6 utterances" in text
    assert "Failed rules" in text and "Relevance table" in text
    assert "sentence spoken with 8 emotions: 'kids are talking by the door'" in text


def test_html_is_self_contained_and_escaped():
    records = corpus_records()
    html = render_report(
        summarise(records), records, "runs/<demo>", cues={records[0].utterance_id: ["louder & faster"]}
    )
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", html, re.IGNORECASE)
    assert "<script" not in html.lower()  # the injected transcript shows as text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "runs/&lt;demo&gt;" in html and "louder &amp; faster" in html
    assert html.count("data:image/png;base64,") == 5  # four charts and the relevance heat map
    for label in ("angry", "happy", "neutral", "sad", "surprised"):
        assert f"<summary>{label} —" in html


SCRIPT = "<script>alert(1)</script>"


def test_every_text_from_the_data_is_escaped():
    """Markup in any field a rationale, a transcript or the command line brings shows as text."""
    parsed = verified(f"meld/train/{SCRIPT}", f"{SCRIPT} you said", "angry",
                      [("lexical", SCRIPT, SCRIPT), ("acoustic", SCRIPT, SCRIPT)], reasoning=SCRIPT,
                      concluded=SCRIPT, failed={"quote_grounding": ("not_in_transcript", SCRIPT)}, speaker=SCRIPT)  # fmt: skip
    unparsed = verified("meld/train/x", SCRIPT, "angry", parsed=False).model_copy(update={"error": SCRIPT})
    records = [*corpus_records(), parsed, unparsed]
    html = render_report(summarise(records), records, SCRIPT, cues={parsed.utterance_id: [SCRIPT]}, per_label=10)
    assert "<script" not in html.lower()
    # source (title and header), id, speaker, transcript x2, cue x2, suggests x2, reasoning, conclusion, reason,
    # measured cue, unparsed error
    assert html.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 14


def _run_folder(tmp_path, with_profiles=True):
    records = corpus_records()
    write_records(records, tmp_path / "verified.parquet", VerifiedRecord)
    if with_profiles:
        rows = [
            {"utterance_id": records[0].utterance_id, "cues": [{"phrase": "pitch well above this speaker's usual"}]},
            {"utterance_id": records[1].utterance_id, "cues": []},
        ]
        pq.write_table(pa.Table.from_pylist(rows), tmp_path / "profiles.parquet")
    (tmp_path / "corpora").mkdir()
    counts = {"train": {"asr": 6, "emotion_reasoning": 2}, "dev": {"asr": 1}, "test": {"asr": 1}}
    (tmp_path / "corpora" / "manifest.json").write_text(json.dumps({"counts": counts}))
    return records


def _audit(path, **kw) -> int:
    """``emoreason audit PATH --key value ...``, through the flags generated from AuditConfig."""
    return main(["audit", str(path), *(f"--{k.replace('_', '-')}={v}" for k, v in kw.items())])


def test_command_on_run_folder_and_file(tmp_path, capsys):
    _run_folder(tmp_path)
    assert _audit(tmp_path) == 0
    out = capsys.readouterr().out
    assert "8 candidates for 8 utterances: 2 accepted (25.0%)" in out and "Training examples" in out
    html = (tmp_path / "audit.html").read_text()
    assert "pitch well above this speaker&#39;s usual" in html and "emotion_reasoning" in html
    # A parquet path works too, and --out moves the report.
    assert _audit(tmp_path / "verified.parquet", out=tmp_path / "r" / "a.html") == 0
    assert (tmp_path / "r" / "a.html").is_file()


def test_command_errors(tmp_path, capsys):
    assert _audit(tmp_path) == 1
    assert "verified.parquet not found" in capsys.readouterr().err
    _run_folder(tmp_path, with_profiles=False)
    assert _audit(tmp_path, profiles=tmp_path / "nope.parquet") == 0  # profiles are optional
    assert "nope.parquet not found; the report shows no measured cues" in capsys.readouterr().err
    assert "none given for this run" in (tmp_path / "audit.html").read_text()


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (apt-get install chromium)")
def test_report_renders_in_headless_chromium(tmp_path):
    from PIL import Image

    records = corpus_records()
    page = tmp_path / "audit.html"
    page.write_text(render_report(summarise(records), records, "test"), encoding="utf-8")
    shot = tmp_path / "shot.png"
    subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", "--window-size=1200,1600",
         page.as_uri()],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    image = Image.open(shot).convert("RGB")
    assert image.size == (1200, 1600)
    # A page that rendered shows the plots' greens and reds, not a blank or error page.
    colours = {c for _, c in image.getcolors(maxcolors=1 << 20)}
    assert (46, 125, 50) in colours and (198, 40, 40) in colours


def test_partitioned_verified_folder(tmp_path):
    records = corpus_records()
    write_records(records, tmp_path / "all.parquet", VerifiedRecord)
    table = pq.read_table(tmp_path / "all.parquet")
    pq.write_to_dataset(table, tmp_path / "run" / "verified.parquet", partition_cols=["accepted"])
    loaded = load_verified(tmp_path / "run" / "verified.parquet")
    assert sorted(r.id for r in loaded) == sorted(r.id for r in records)
    assert sum(r.accepted for r in loaded) == 2
