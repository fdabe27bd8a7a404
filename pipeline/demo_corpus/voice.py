"""Regenerate the demo corpus audio from utterances.jsonl with espeak-ng and sox.

    apt-get install -y espeak-ng sox     # Debian / Ubuntu
    python -m pipeline.demo_corpus.voice [--only ID ...] [--check]

Each speaker has its own espeak-ng voice and variant; each emotion shifts pitch level and range,
speaking rate, amplitude, word gaps and the sox gain, so that the acoustic profile measures real differences
(angry: louder, faster, higher; sad: slower, quieter, lower; fearful: higher and trembling).
The output is 16 kHz mono 16-bit FLAC with leading and trailing silence trimmed. Only this script
needs espeak-ng; the demo adapter reads the committed FLAC files.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

CORPUS = Path(__file__).resolve().parent
SAMPLE_RATE = 16_000
LOWPASS_HZ = 7000
# Silence trimming: below 0.5 % of full scale for 50 ms counts as silence at either end.
TRIM = ["silence", "1", "0.05", "0.5%", "reverse", "silence", "1", "0.05", "0.5%", "reverse"]


@dataclass(frozen=True)
class Voice:
    name: str  # espeak-ng voice+variant
    pitch: int  # espeak-ng base pitch, 0..99 (50 is the voice's default)
    speed: int  # words per minute at neutral


@dataclass(frozen=True)
class Style:
    """How one emotion shifts a voice: offsets on the espeak-ng controls, and post-processing."""

    pitch: int  # added to the voice's pitch
    speed: float  # multiplies the voice's speed
    amplitude: int  # espeak-ng -a, 100 is its default
    gap: int  # extra pause between words, in 10 ms units (espeak-ng -g)
    gain_db: float  # sox gain after synthesis (level differences are kept: never normalised)
    pitch_range: str = "medium"  # SSML prosody range: x-low .. x-high (how far the intonation swings)
    tremolo: tuple[float, float] | None = None  # (Hz, depth %) for a shaky voice


SPEAKERS: dict[str, Voice] = {
    "spk1": Voice("en-us+f2", 50, 180),
    "spk2": Voice("en-gb+m3", 62, 175),
    "spk3": Voice("en-gb-x-rp+f4", 55, 185),
    "spk4": Voice("en-us+m1", 64, 180),
    "spk5": Voice("en-gb-scotland+f1", 52, 175),
    "spk6": Voice("en-029+m4", 62, 185),
    "spk7": Voice("en-us+f3", 50, 175),
    "spk8": Voice("en-gb-x-gbcwmd+m2", 64, 180),
}

STYLES: dict[str, Style] = {
    "neutral": Style(pitch=0, speed=1.0, amplitude=100, gap=0, gain_db=0.0),
    "calm": Style(pitch=-8, speed=0.85, amplitude=85, gap=2, gain_db=-3.0, pitch_range="low"),
    "happy": Style(pitch=14, speed=1.1, amplitude=115, gap=0, gain_db=1.0, pitch_range="high"),
    "excited": Style(pitch=26, speed=1.25, amplitude=135, gap=0, gain_db=3.0, pitch_range="x-high"),
    "sad": Style(pitch=-12, speed=0.8, amplitude=70, gap=3, gain_db=-6.0, pitch_range="x-low"),
    "angry": Style(pitch=20, speed=1.2, amplitude=170, gap=0, gain_db=5.0, pitch_range="high"),
    "frustrated": Style(pitch=4, speed=1.08, amplitude=130, gap=1, gain_db=2.0),
    "fearful": Style(pitch=28, speed=1.18, amplitude=90, gap=1, gain_db=-2.0, tremolo=(7.0, 35.0), pitch_range="high"),
    "disgusted": Style(pitch=-10, speed=0.82, amplitude=110, gap=3, gain_db=0.0, pitch_range="low"),
    "surprised": Style(pitch=32, speed=1.05, amplitude=130, gap=0, gain_db=2.0, pitch_range="x-high"),
}


def synthesize(text: str, voice: Voice, style: Style, out: Path) -> None:
    """espeak-ng -> WAV on stdout -> sox: 16 kHz mono 16-bit FLAC, trimmed, with the style's level."""
    pitch = max(0, min(99, voice.pitch + style.pitch))
    speed = round(voice.speed * style.speed)
    espeak = ["espeak-ng", "-v", voice.name, "-p", str(pitch), "-s", str(speed), "-a", str(style.amplitude)]
    ssml = f'<speak><prosody range="{style.pitch_range}">{escape(text)}</prosody></speak>'
    espeak += ["-g", str(style.gap), "-m", "--stdout", ssml]
    # Speech above LOWPASS_HZ is synthesis noise here; dropping it keeps the FLAC files small.
    effects = ["lowpass", str(LOWPASS_HZ), "gain", "-l", f"{style.gain_db:+.1f}"]  # -l: limiter, never clips
    if style.tremolo:
        effects += ["tremolo", *(str(v) for v in style.tremolo)]
    # -D: no dither (its noise floor would double the FLAC size); -C 8: best FLAC compression.
    sox = [
        "sox",
        "-D",
        "-t",
        "wav",
        "-",
        "-C",
        "8",
        "-r",
        str(SAMPLE_RATE),
        "-c",
        "1",
        "-b",
        "16",
        str(out),
        *effects,
        *TRIM,
    ]
    wav = subprocess.run(espeak, check=True, capture_output=True).stdout
    subprocess.run(sox, input=wav, check=True, capture_output=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="regenerate only these utterance ids")
    parser.add_argument("--out", type=Path, default=CORPUS / "audio", help="output folder")
    args = parser.parse_args(argv)
    missing = [tool for tool in ("espeak-ng", "sox") if shutil.which(tool) is None]
    if missing:
        print(f"voice: {', '.join(missing)} not found; install with: apt-get install -y espeak-ng sox", file=sys.stderr)
        return 1
    rows = [json.loads(line) for line in (CORPUS / "utterances.jsonl").read_text().splitlines() if line.strip()]
    if args.only:
        rows = [r for r in rows if r["id"] in set(args.only)]
    args.out.mkdir(parents=True, exist_ok=True)
    for row in rows:
        synthesize(
            row["transcript"], SPEAKERS[row["speaker"]], STYLES[row["emotion"]], args.out / Path(row["file"]).name
        )
    print(f"voiced {len(rows)} utterances into {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
