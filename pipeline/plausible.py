"""Plausible ranges of speech: what a clip and its measures may be before they are believed.

A value outside these ranges is a broken file or a mismatched transcript, not an unusual voice:
the adapters reject clips outside the duration range and transcripts too long for their clip
(``plausible_clip``), and the acoustic profile drops measures outside their range, with a flag,
so that no cue is built on them (pipeline/acoustic/compute.py). docs/datasets.md lists them.
"""

from __future__ import annotations

import re

# A clip shorter than this holds at most one syllable: nothing to transcribe or to hear an emotion in.
MIN_DURATION_S = 0.2
# The speech encoders hear a 30 s window (Whisper pads or cuts every clip to it); the rest of a
# longer clip would be audio the model never hears while its target (transcript, label) covers it.
MAX_DURATION_S = 30.0
# Syllables of the transcript per second of the whole clip (pauses included). Fast speech
# reaches ~8 syllables/s of articulation; above 10 over the whole clip the transcript cannot be
# what the clip says (a wrong row, or a file cut short).
MAX_TRANSCRIPT_SPS = 10.0
# Measured speaking rate, syllables per second of speech (pauses excluded): 1.5-8 covers slow
# to very fast read and spontaneous speech; outside 0.5-12 the count or the speech span is wrong.
# On the real RAVDESS copy (1,200 clips, median 4.3) two exceed 12 (16.3, 13.2): soft sad clips of
# actor 9 whose speech span the intensity contour found to be 0.43 and 0.53 s of a 3.3 s clip, a
# measurement artefact that would otherwise read "speaking very fast".
RATE_RANGE_SPS = (0.5, 12.0)
# Mean level of the speech frames, dBFS (a full-scale sine reads -3). Above 0 dBFS the samples
# exceed full scale: float audio that was never normalised. The low end is the profile's silence
# threshold (a clip whose loudest frame is under -60 dBFS is rejected as silent); soft RAVDESS
# speech reaches -57 dBFS and is real.
LEVEL_RANGE_DBFS = (-60.0, 0.0)


def count_syllables(text: str | None) -> int | None:
    """Syllables of an English transcript by vowel groups (silent final 'e' dropped); None without words."""
    words = re.findall(r"[a-z]+", (text or "").lower())
    if not words:
        return None
    total = 0
    for word in words:
        groups = len(re.findall(r"[aeiouy]+", word))
        if word.endswith("e") and not word.endswith(("le", "ee", "ye")) and groups > 1:
            groups -= 1
        total += max(groups, 1)
    return total


def count_words(text: str | None) -> int | None:
    words = re.findall(r"[^\W\d_]+(?:'[^\W\d_]+)?", text or "")
    return len(words) or None


def implausible_clip(duration_s: float, transcript: str | None = None) -> tuple[str, str] | None:
    """(reason, detail) when a clip of ``duration_s`` with ``transcript`` cannot be right; else None."""
    if duration_s < MIN_DURATION_S:
        return "too_short_audio", f"{duration_s:.3f} s of audio, under {MIN_DURATION_S} s: no speech to learn from"
    if duration_s > MAX_DURATION_S:
        return (
            "too_long_audio",
            f"{duration_s:.1f} s of audio: the model hears only the first {MAX_DURATION_S:.0f} s, "
            "its target would describe audio it never hears (cut the clip into utterances)",
        )
    syllables = count_syllables(transcript)
    if syllables is not None and syllables / duration_s > MAX_TRANSCRIPT_SPS:
        return (
            "transcript_too_long",
            f"transcript of {len(transcript)} characters ({syllables} syllables) for {duration_s:.2f} s of audio: "
            f"{syllables / duration_s:.0f} syllables/s, over {MAX_TRANSCRIPT_SPS:.0f}; not what this clip says",
        )
    return None
