"""The acoustic profile on real acted speech: RAVDESS clips (skipped when the data is absent)."""

from __future__ import annotations

import csv
import statistics
from pathlib import Path

from pipeline.acoustic.compute import compute_profiles
from pipeline.acoustic.profile import AcousticProfile
from pipeline.labels import canonical_emotion
from pipeline.records import Gender, Measure, Utterance

ACTORS = ("01", "02")  # a man and a woman: 120 clips, a couple of seconds on one core


def ravdess_utterances(root: Path, actors: tuple[str, ...]) -> list[Utterance]:
    with open(root / "labels.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["actor"] in actors]
    return [
        Utterance(
            id=f"ravdess/{r['path'].removesuffix('.flac')}",
            dataset="ravdess",
            split="all",
            audio_path=str(root / r["path"]),
            transcript=r["text"],
            speaker=f"Actor_{r['actor']}",
            gender=Gender(r["sex"]),
            emotion=canonical_emotion("ravdess", r["emotion"]),
            raw_label=r["emotion"],
            label_protocol="all",
        )
        for r in rows
    ]


def mean_of(profiles: list[AcousticProfile], field: str) -> float:
    return statistics.fmean(getattr(p, field) for p in profiles if getattr(p, field) is not None)


def test_angry_is_louder_and_higher_than_neutral_for_each_actor(ravdess_dir, tmp_path):
    utterances = ravdess_utterances(ravdess_dir, ACTORS)
    run = compute_profiles(utterances, tmp_path / "profiles", workers=1)
    assert not run.rejects and len(run.profiles) == len(utterances) == 60 * len(ACTORS)
    label = {u.id: u.raw_label for u in utterances}
    print("\nactor     angry-neutral: loudness dB  pitch st | mean z angry: loudness pitch")
    for actor in ACTORS:
        mine = [p for p in run.profiles if p.speaker == f"Actor_{actor}"]
        angry = [p for p in mine if label[p.utterance_id] == "angry"]
        neutral = [p for p in mine if label[p.utterance_id] == "neutral"]
        d_loud = mean_of(angry, "intensity_db") - mean_of(neutral, "intensity_db")
        d_pitch = mean_of(angry, "f0_median_st") - mean_of(neutral, "f0_median_st")
        z_loud = statistics.fmean(p.z_of(Measure.loudness) for p in angry)
        z_pitch = statistics.fmean(p.z_of(Measure.pitch_level) for p in angry)
        print(f"Actor_{actor}  {d_loud:+27.1f} {d_pitch:+9.1f} | {z_loud:+21.2f} {z_pitch:+6.2f}")
        assert d_loud > 3.0, f"Actor_{actor}: angry only {d_loud:.1f} dB louder than neutral"
        assert d_pitch > 1.0, f"Actor_{actor}: angry only {d_pitch:.1f} st higher than neutral"
        assert z_loud > 0.5
    # Every clip is a measurable sentence of one speaker with ~1 s of silence at each end.
    assert {p.basis for p in run.profiles} == {"speaker"}
    assert not any("clipped" in p.flags or "silent" in p.flags for p in run.profiles)
    assert mean_of(run.profiles, "duration_s") - mean_of(run.profiles, "speech_span_s") > 1.0
    assert all(p.speaking_rate_source == "transcript" for p in run.profiles)
    # Strongly acted anger is what a listener hears as loud: most such clips carry a "louder" cue,
    # and none is called softer than usual (quiet, "cold" anger occurs at normal intensity).
    angry = [p for p in run.profiles if label[p.utterance_id] == "angry"]
    strong = [p for p in angry if p.utterance_id.split("-")[3] == "02"]  # intensity field of the file name
    louder = [p for p in strong if (c := p.cue_of(Measure.loudness)) is not None and c.level.direction > 0]
    assert len(louder) > 0.75 * len(strong)
    assert not any((c := p.cue_of(Measure.loudness)) is not None and c.level.direction < 0 for p in strong)
