"""Speaker-normalised z-scores -> categorical cues in plain words a rationale can cite.

Thresholds, in one place:
- |z| < HIGH_Z (1.0) is *typical* and makes no cue. Under a normal distribution about 68 % of a
  speaker's utterances fall there, so a cue marks the outer third: what a listener who knows the
  voice would notice, not every wobble.
- HIGH_Z <= |z| < VERY_HIGH_Z (2.0) is high/low ("louder than usual"); |z| >= 2 (about 2 % of
  utterances each side) is very high/low ("much louder than usual"). Acted anger in RAVDESS sits
  around z = +1 to +2 in loudness against the same actor's other clips (docs/acoustic.md).
Stage two checks a rationale's acoustic claim by the sign and level of these cues, so a claim
agrees only with what the measurement actually says.
"""

from __future__ import annotations

from pipeline.records import AcousticCue, CueLevel, Measure

HIGH_Z = 1.0
VERY_HIGH_Z = 2.0
RISING_ST_PER_S = 1.0  # a slope above +1 semitone/s over the utterance is heard as rising

PHRASES: dict[Measure, dict[CueLevel, str]] = {
    Measure.pitch_level: {
        CueLevel.very_high: "pitch well above this speaker's usual",
        CueLevel.high: "pitch above this speaker's usual",
        CueLevel.low: "pitch below this speaker's usual",
        CueLevel.very_low: "pitch well below this speaker's usual",
    },
    Measure.pitch_range: {
        CueLevel.very_high: "very wide, animated pitch range",
        CueLevel.high: "wider pitch range than usual",
        CueLevel.low: "narrower pitch range than usual",
        CueLevel.very_low: "flat, monotone pitch",
    },
    Measure.pitch_slope: {
        CueLevel.very_high: "pitch rising over the utterance",
        CueLevel.high: "less pitch fall than this speaker's usual",
        CueLevel.low: "pitch falling more than this speaker's usual",
        CueLevel.very_low: "steeply falling pitch",
    },
    Measure.loudness: {
        CueLevel.very_high: "much louder than this speaker's usual",
        CueLevel.high: "louder than usual",
        CueLevel.low: "softer than usual",
        CueLevel.very_low: "much softer than usual, a quiet voice",
    },
    Measure.loudness_variability: {
        CueLevel.very_high: "strongly fluctuating loudness",
        CueLevel.high: "more varied loudness than usual",
        CueLevel.low: "more even loudness than usual",
        CueLevel.very_low: "flat, even loudness",
    },
    Measure.speaking_rate: {
        CueLevel.very_high: "speaking very fast",
        CueLevel.high: "speaking fast",
        CueLevel.low: "speaking slowly",
        CueLevel.very_low: "speaking very slowly",
    },
    Measure.pauses: {
        CueLevel.very_high: "long pauses",
        CueLevel.high: "more pausing than usual",
        CueLevel.low: "fewer pauses than usual",
        CueLevel.very_low: "no pauses, a continuous delivery",
    },
    # Low HNR cannot tell breathy from creaky or strained voices apart, so the phrase says only
    # what was measured: how periodic (clear) the voice is.
    Measure.voice_quality: {
        CueLevel.very_high: "a much clearer, steadier voice than usual",
        CueLevel.high: "a clearer voice than usual",
        CueLevel.low: "a rougher, noisier voice than usual",
        CueLevel.very_low: "a very rough or breathy voice",
    },
}


def level_of(z: float | None) -> CueLevel | None:
    """The cue level of a z-score; None when typical or unmeasured."""
    if z is None:
        return None
    if z >= VERY_HIGH_Z:
        return CueLevel.very_high
    if z >= HIGH_Z:
        return CueLevel.high
    if z <= -VERY_HIGH_Z:
        return CueLevel.very_low
    if z <= -HIGH_Z:
        return CueLevel.low
    return None


def phrase_of(measure: Measure, level: CueLevel, slope_st_per_s: float | None = None) -> str:
    if measure is Measure.pitch_slope and level.direction > 0 and slope_st_per_s is not None:
        # Relative to a speaker's usual declination, "higher" slope may still fall: say which.
        if slope_st_per_s >= RISING_ST_PER_S:
            return PHRASES[measure][CueLevel.very_high]
        return PHRASES[measure][CueLevel.high]
    return PHRASES[measure][level]


def cues_from(z: dict[Measure, float | None], slope_st_per_s: float | None = None) -> list[AcousticCue]:
    """One cue per non-typical measure, in Measure order."""
    cues = []
    for measure in Measure:
        level = level_of(z.get(measure))
        if level is not None:
            phrase = phrase_of(measure, level, slope_st_per_s)
            cues.append(AcousticCue(measure=measure, level=level, z=round(z[measure], 3), phrase=phrase))
    return cues
