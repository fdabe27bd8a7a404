"""The stage-two benchmark's real-rationale fixture loads and verifies (benchmarks/bench_verify.py)."""

from __future__ import annotations

from benchmarks.bench_verify import FIXTURE, real_rationales


def test_real_rationale_fixture_verifies_in_one_stream():
    assert (FIXTURE / "README.md").is_file()
    out = real_rationales(passes=2)
    assert (out["records"], out["answers"]) == (432, 408)
    assert out["stream_n"] == 2 * 432
    assert 0.0 < out["first_accepted"] < 1.0  # real teacher output: some rationales pass, some fail
    assert out["first_rps"] > 0 and out["stream_rps"] > 0
    assert out["rss"]["start"] > 0 and out["rss"]["first batch"] > 0 and out["rss"]["end"] > 0
