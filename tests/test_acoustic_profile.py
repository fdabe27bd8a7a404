"""Cue thresholds, normalisation fallback, the profile record, and resumable computation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import soundfile as sf

from pipeline.acoustic import compute as compute_module
from pipeline.acoustic.compute import compute_profiles, make_profile
from pipeline.acoustic.cues import PHRASES, cues_from, level_of
from pipeline.acoustic.measure import Measurements
from pipeline.acoustic.normalise import FEATURES, MEASURE_FEATURE, MIN_SPEAKER_UTTERANCES, SD_FLOOR, Basis, Normaliser
from pipeline.acoustic.profile import NO_CUE_TEXT, AcousticProfile, load_profiles
from pipeline.parquet import read_records
from pipeline.records import CueLevel, Gender, Measure, Reject, Utterance


@pytest.mark.parametrize(
    ("z", "level"),
    [
        (None, None),
        (0.0, None),
        (0.999, None),
        (-0.999, None),
        (1.0, CueLevel.high),
        (1.999, CueLevel.high),
        (2.0, CueLevel.very_high),
        (7.5, CueLevel.very_high),
        (-1.0, CueLevel.low),
        (-2.0, CueLevel.very_low),
    ],
)
def test_cue_levels(z, level):
    assert level_of(z) is level


def test_every_measure_has_a_phrase_per_level_and_cues_skip_typical():
    assert set(PHRASES) == set(Measure) == set(MEASURE_FEATURE)
    assert all(set(p) == set(CueLevel) for p in PHRASES.values())
    z = {Measure.loudness: 1.4, Measure.pitch_level: 2.3, Measure.pitch_range: -2.1, Measure.speaking_rate: 0.5}
    cues = cues_from(z)
    assert [(c.measure, c.level) for c in cues] == [
        (Measure.pitch_level, CueLevel.very_high),
        (Measure.pitch_range, CueLevel.very_low),
        (Measure.loudness, CueLevel.high),
    ]
    assert [c.phrase for c in cues] == [
        "pitch well above this speaker's usual",
        "flat, monotone pitch",
        "louder than usual",
    ]


def test_slope_phrase_says_rising_only_when_it_rises():
    (rising,) = cues_from({Measure.pitch_slope: 1.5}, slope_st_per_s=2.0)
    (flatter,) = cues_from({Measure.pitch_slope: 2.5}, slope_st_per_s=-0.5)
    assert rising.phrase == "pitch rising over the utterance" and rising.level is CueLevel.high
    assert flatter.phrase == "less pitch fall than this speaker's usual" and flatter.level is CueLevel.very_high


def m(intensity: float, f0_st: float | None = 10.0) -> Measurements:
    return Measurements(duration_s=2.0, speech_span_s=1.5, intensity_db=intensity, f0_median_st=f0_st)


def items(dataset, speaker, gender, values):
    return [(dataset, speaker, gender, m(v)) for v in values]


def test_normalisation_fallback_speaker_gender_corpus_none():
    n = MIN_SPEAKER_UTTERANCES
    data = (
        items("d", "A", "female", [-30.0 + i for i in range(n)])  # enough: own statistics
        + items("d", "B", "female", [-20.0, -22.0])  # too few: female statistics
        + items("d", "C", None, [-25.0])  # too few and no gender: dataset statistics
        + items("tiny", "X", "male", [-30.0, -31.0])  # a whole dataset below the minimum: none
    )
    norm = Normaliser.fit(data)
    assert norm.basis_for("d", "A", "female")[0] is Basis.speaker
    basis, group = norm.basis_for("d", "B", "female")
    assert basis is Basis.gender and group.utterances == n + 2
    assert norm.basis_for("d", "C", None)[0] is Basis.corpus
    assert norm.basis_for("tiny", "X", "male") == (Basis.none, None)
    assert all(v is None for v in norm.zscores(m(-30.0), None).values())

    # z against speaker A's own statistics: values -30..-21 have mean -25.5, sd sqrt(var(0..9))
    _, a = norm.basis_for("d", "A", "female")
    sd = float(np.std(np.arange(n), ddof=1))
    assert norm.zscores(m(-20.0), a)["intensity_db"] == pytest.approx(5.5 / sd)


def test_sd_floor_keeps_a_steady_speaker_from_producing_cues():
    norm = Normaliser.fit(items("d", "A", None, [-30.0] * MIN_SPEAKER_UTTERANCES))
    _, group = norm.basis_for("d", "A", None)
    assert group.features["intensity_db"].sd == SD_FLOOR["intensity_db"]
    assert norm.zscores(m(-30.4), group)["intensity_db"] == pytest.approx(-0.4)


def test_profile_record_methods_and_parquet_round_trip(tmp_path):
    n = MIN_SPEAKER_UTTERANCES
    data = items("d", "A", None, [-30.0 + i for i in range(n)])
    norm = Normaliser.fit(data)
    u = Utterance(
        id="d/1",
        dataset="d",
        split="test",
        audio_path="/x.wav",
        speaker="A",
        emotion="angry",
        raw_label="ang",
        label_protocol="all",
    )
    loud = make_profile(u, m(-10.0, f0_st=None), norm)
    assert loud.basis == "speaker"
    assert loud.z_of(Measure.loudness) > 2 and loud.cue_of(Measure.loudness).level is CueLevel.very_high
    assert loud.z_of(Measure.pitch_level) is None and loud.cue_of(Measure.pitch_level) is None
    assert loud.describe() == "much louder than this speaker's usual"
    vector = loud.vector()
    assert len(vector) == len(AcousticProfile.VECTOR_COLUMNS) == len(FEATURES) + 3
    assert all(math.isfinite(v) for v in vector)
    columns = dict(zip(AcousticProfile.VECTOR_COLUMNS, vector, strict=True))
    assert columns["z_intensity_db"] == loud.z_of(Measure.loudness)
    assert columns["z_f0_median_st"] == 0.0 and columns["missing_pitch"] == 1.0
    typical = make_profile(u.model_copy(update={"id": "d/2"}), m(-25.5), norm)
    assert typical.cues == [] and typical.describe() == NO_CUE_TEXT

    from pipeline.parquet import write_records

    write_records([loud, typical], tmp_path / "profiles.parquet", AcousticProfile)
    back = load_profiles(tmp_path)
    assert back == {"d/1": loud, "d/2": typical}
    with pytest.raises(FileNotFoundError, match="emoreason profile"):
        load_profiles(tmp_path / "nowhere")


# ---- compute_profiles on files ----


def write_voice(path, amplitude: float, f0: float = 180.0) -> str:
    t = np.arange(int(1.2 * 16000)) / 16000
    x = amplitude * np.sign(np.sin(2 * np.pi * f0 * t)) * 0.5 + amplitude * 0.5 * np.sin(2 * np.pi * f0 * t)
    x = np.concatenate([np.zeros(4000), x, np.zeros(4000)]).astype(np.float32)
    sf.write(path, x, 16000)
    return str(path)


def utterance(i: int, path: str | None, speaker: str = "A", transcript: str | None = "a few words here") -> Utterance:
    return Utterance(
        id=f"syn/{i}",
        dataset="syn",
        split="train",
        audio_path=path,
        transcript=transcript,
        speaker=speaker,
        gender=Gender.female,
        emotion="neutral",
        raw_label="neutral",
        label_protocol="all",
    )


@pytest.fixture
def corpus(tmp_path):
    audio = tmp_path / "audio"
    audio.mkdir()
    amplitudes = np.geomspace(0.02, 0.4, 12)  # one loud clip stands out at the top
    utts = [utterance(i, write_voice(audio / f"{i}.wav", a)) for i, a in enumerate(amplitudes)]
    (audio / "broken.wav").write_bytes(b"RIFF not really a wav file")
    utts.append(utterance(100, str(audio / "broken.wav")))
    utts.append(utterance(101, str(audio / "missing.wav")))
    utts.append(utterance(102, None))  # a text-only dataset row: no profile, not a reject
    return utts


def test_compute_profiles_end_to_end_and_resume(tmp_path, corpus):
    out = tmp_path / "run"
    run = compute_profiles(corpus[:6], out)  # a first, partial run
    assert run.measured == 6 and run.cached == 0

    run = compute_profiles(corpus, out)
    assert run.measured == len(corpus) - 6 - 1 and run.cached == 6
    assert len(run.profiles) == 12
    assert sorted(r.reason for r in run.rejects) == ["corrupt_audio", "missing_audio"]
    assert all(r.stage == "profile" for r in run.rejects)
    assert run.no_audio == ["syn/102"]
    assert {p.basis for p in run.profiles} == {"speaker"}
    loudest = max(run.profiles, key=lambda p: p.intensity_db)
    assert loudest.utterance_id == "syn/11" and loudest.cue_of(Measure.loudness).level.direction > 0
    assert loudest.versions["parselmouth"] and loudest.versions["profile"]

    again = compute_profiles(corpus, out)
    assert again.measured == 0 and again.cached == len(corpus) - 1
    assert again.profiles == run.profiles
    assert load_profiles(out) == {p.utterance_id: p for p in run.profiles}
    assert len(read_records(out / "rejects.parquet", Reject)) == 2
    summary = (out / "summary.json").read_text()
    assert '"no_audio": 1' in summary and '"corrupt_audio": 1' in summary


def test_changed_audio_or_transcript_is_measured_again(tmp_path, corpus):
    out = tmp_path / "run"
    compute_profiles(corpus[:12], out)
    write_voice(corpus[3].audio_path, 0.9)  # the recording is replaced
    changed = [*corpus[:12]]
    changed[5] = changed[5].model_copy(update={"transcript": "a different transcript with more words in it"})
    run = compute_profiles(changed, out)
    assert run.measured == 2


def test_parallel_workers_give_the_same_profiles(tmp_path, corpus, monkeypatch):
    monkeypatch.setattr(compute_module, "CHUNK_SIZE", 4)  # several chunks, so the pool is used
    serial = compute_profiles(corpus, tmp_path / "serial", workers=1)
    parallel = compute_profiles(corpus, tmp_path / "parallel", workers=2)
    assert parallel.measured == serial.measured == len(corpus) - 1
    assert parallel.profiles == serial.profiles
    assert len(list((tmp_path / "parallel" / "raw").glob("part-*.parquet"))) == 4


def test_many_shards_are_merged_without_losing_rows(tmp_path, corpus, monkeypatch):
    monkeypatch.setattr(compute_module, "CHUNK_SIZE", 2)
    monkeypatch.setattr(compute_module, "MAX_SHARDS", 3)
    first = compute_profiles(corpus, tmp_path / "run")
    assert len(list((tmp_path / "run" / "raw").glob("part-*.parquet"))) == 1
    again = compute_profiles(corpus, tmp_path / "run")
    assert again.measured == 0 and again.profiles == first.profiles


def test_profile_command_writes_a_run(tmp_path, corpus, monkeypatch, capsys):
    from pipeline.cli import main
    from pipeline.commands import profile as command
    from pipeline.datasets import AdapterResult

    monkeypatch.setattr(command, "load_dataset", lambda *a, **k: AdapterResult(utterances=corpus))
    assert main(["profile", "demo", "--out", str(tmp_path / "cmd"), "--workers", "1"]) == 0
    printed = capsys.readouterr().out
    assert "profiled 12 utterances" in printed and "no_audio: 1" in printed and "missing_audio" in printed
    assert len(load_profiles(tmp_path / "cmd")) == 12


def test_duplicate_ids_are_an_error(tmp_path, corpus):
    with pytest.raises(ValueError, match="more than once"):
        compute_profiles([corpus[0], corpus[0]], tmp_path / "run")


def test_level_normalisation_removes_recording_gain_and_has_its_own_cache(tmp_path, corpus):
    clips = [corpus[0], corpus[5], corpus[11]]  # 0.02 .. 0.4 amplitude: ~26 dB apart as recorded
    out = tmp_path / "run"
    raw = compute_profiles(clips, out)
    peak = compute_profiles(clips, out, level="peak")
    assert peak.measured == 3  # measures at another level are never taken from the cache
    spread = lambda run: np.ptp([p.intensity_db for p in run.profiles])  # noqa: E731
    assert spread(raw) > 20 and spread(peak) < 0.5
    # only the level moves: pitch is the same signal's
    assert [p.f0_median_st for p in peak.profiles] == pytest.approx([p.f0_median_st for p in raw.profiles], abs=0.01)
    assert compute_profiles(clips, out, level="peak").measured == 0
    assert '"level": "peak"' in (out / "summary.json").read_text()
