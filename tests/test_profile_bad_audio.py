"""The profile step on bad audio: silence is rejected, impossible measures are dropped (no cue is
made of them), and pool workers do not outlive a killed parent."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from pipeline.acoustic.compute import compute_profiles
from pipeline.records import Measure, Utterance

RATE = 16_000


def voice(seconds: float, f0: float, seed: int) -> np.ndarray:
    """A voiced, syllable-like signal: harmonics of f0 under a 4 Hz loudness envelope."""
    t = np.arange(int(seconds * RATE)) / RATE
    rng = np.random.default_rng(seed)
    tone = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 6))
    envelope = 0.55 + 0.45 * np.sin(2 * np.pi * 4 * t)
    return (0.2 * tone * envelope + rng.normal(0, 0.002, t.size)).astype(np.float32)


def utterance(path: Path, transcript: str, uid: str) -> Utterance:
    return Utterance(
        id=uid, dataset="t", split="train", audio_path=str(path), transcript=transcript, speaker="s1",
        emotion="neutral", raw_label="neutral", label_protocol="all",
    )  # fmt: skip


def test_silence_is_rejected_and_impossible_measures_make_no_cue(tmp_path):
    utts = []
    for i in range(12):
        sf.write(tmp_path / f"v{i}.wav", voice(2.0 + 0.1 * i, 140 + 3 * i, i), RATE)
        utts.append(utterance(tmp_path / f"v{i}.wav", "Kids are talking by the door.", f"t/v{i}"))
    # A transcript that cannot be this clip's (the adapter would have rejected it; the profile must
    # not believe it either): thousands of syllables a second.
    utts.append(utterance(tmp_path / "v0.wav", "talking " * 1250, "t/wordy"))
    # Float audio never normalised: samples far beyond full scale, a level no microphone gives.
    sf.write(tmp_path / "hot.wav", 30 * voice(2.0, 150, 99), RATE, subtype="FLOAT")
    utts.append(utterance(tmp_path / "hot.wav", "Kids are talking by the door.", "t/hot"))
    sf.write(tmp_path / "quiet.wav", np.zeros(RATE * 2, np.float32), RATE)
    utts.append(utterance(tmp_path / "quiet.wav", "Kids are talking by the door.", "t/quiet"))

    run = compute_profiles(utts, tmp_path / "profiles")
    assert [(r.record_id, r.reason) for r in run.rejects] == [("t/quiet", "silent_audio")]
    wordy = next(p for p in run.profiles if p.utterance_id == "t/wordy")
    assert wordy.speaking_rate_sps is None and "implausible_rate" in wordy.flags
    assert wordy.cue_of(Measure.speaking_rate) is None
    normal = next(p for p in run.profiles if p.utterance_id == "t/v3")
    assert normal.speaking_rate_sps is not None and not normal.flags
    hot = next(p for p in run.profiles if p.utterance_id == "t/hot")
    assert hot.intensity_db is None and "implausible_level" in hot.flags and hot.cue_of(Measure.loudness) is None
    assert run.summary()["flags"] == {"implausible_rate": 1, "implausible_level": 1}


WORKER_SCRIPT = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from pipeline.acoustic.compute import compute_profiles
    from pipeline.records import Utterance

    folder = Path(sys.argv[1])
    utts = [
        Utterance(id=f"t/{i}", dataset="t", split="train", audio_path=str(folder / "clip.wav"), start_s=i * 1e-4,
                  speaker="s", emotion="neutral", raw_label="neutral", label_protocol="all")
        for i in range(2000)
    ]
    compute_profiles(utts, folder / "profiles", workers=2)
    """
)


def _children(pid: int) -> set[int]:
    found = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        text = (task / "children").read_text() if (task / "children").exists() else ""
        found |= {int(c) for c in text.split()}
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")  # a zombie has exited; only its exit status waits to be read


def test_pool_workers_die_with_a_killed_parent(tmp_path):
    sf.write(tmp_path / "clip.wav", voice(3.0, 150, 0), RATE)
    env = os.environ | {"PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    parent = subprocess.Popen([sys.executable, "-c", WORKER_SCRIPT, str(tmp_path)], env=env)
    workers: set[int] = set()
    try:
        deadline = time.monotonic() + 60
        while len(workers := _children(parent.pid)) < 2:
            assert parent.poll() is None, "the profile run ended before its workers started"
            assert time.monotonic() < deadline, "no pool workers started"
            time.sleep(0.1)
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        deadline = time.monotonic() + 15
        while any(_alive(w) for w in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        orphans = [w for w in workers if _alive(w)]
        assert not orphans, f"pool workers {orphans} outlived their killed parent"
    finally:  # never leave processes behind, whatever failed
        if parent.poll() is None:
            workers |= _children(parent.pid)
            parent.kill()
            parent.wait()
        for w in workers:
            if _alive(w):
                os.kill(w, signal.SIGKILL)
