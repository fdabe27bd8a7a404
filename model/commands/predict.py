"""``emoreason predict``: the emotion and the rationale a trained model gives for audio files.

    emoreason predict clip.wav other.flac --checkpoint runs/train-ravdess --protocol ravdess8
    emoreason predict clip.wav --checkpoint runs/train-ravdess --transcript "Kids are talking by the door." --json

Any file soundfile reads (WAV, FLAC, OGG, ...) or PyAV decodes (the audio of MP4, M4A, ...; any
sample rate, any number of channels) is converted to 16 kHz mono (pipeline.audio.load_audio). The model hears the audio only; a
``--transcript`` (one per file, in order) is used to verify the quotes of the rationale
(``quotes_verified``), as stage two does for the teacher. Unreadable files are reported by
name and skipped; the exit status is 1 when any file failed, 2 when the checkpoint is missing.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field
from pydantic_settings import CliPositionalArg

from model.commands import inference_device
from model.eval.config import EvalTask


class Args(BaseModel):
    model_config = ConfigDict(extra="forbid")

    audio: CliPositionalArg[list[str]] = Field(description="audio files")
    checkpoint: str = Field(description="saved AudioLLM, or a training run folder")
    transcript: list[str] = Field(default_factory=list, description="what is said (once per file, in order)")
    protocol: str = Field("all", description="label set named in the question (e.g. ravdess8, iemocap4)")
    task: EvalTask = Field("emotion_reasoning", description="ask for a rationale (default) or the label only")
    max_new_tokens: int = Field(256, ge=1)
    batch_size: int = Field(8, ge=1)
    device: str = Field("auto", description="auto / cpu / cuda / cuda:1")
    # `json` would shadow BaseModel.json: the field has another name, the flag is --json.
    as_json: bool = Field(False, validation_alias="json", description="print one JSON array instead of text")


@dataclass
class Prediction:
    file: str
    emotion: str | None = None
    status: str = ""  # extraction status, or "error"
    rationale: str = ""
    candidates: list[str] = field(default_factory=list)
    duration_s: float | None = None
    heard_s: float | None = None  # what the model hears, when the file is longer than its window
    transcript: str | None = None
    quotes_verified: bool | None = None  # None: no transcript given, or the rationale quotes nothing
    error: str | None = None


def _fail(message: str) -> int:
    print(f"emoreason predict: {message}", file=sys.stderr)
    return 2


def run(args: Args) -> int:
    from model.config import CheckpointError
    from model.eval.run import resolve_checkpoint
    from pipeline.audio import SAMPLE_RATE, AudioError, load_audio
    from pipeline.labels import protocol

    if args.transcript and len(args.transcript) != len(args.audio):
        return _fail(f"{len(args.transcript)} --transcript for {len(args.audio)} audio files: give one per file")
    try:
        proto = protocol(args.protocol)
        checkpoint = resolve_checkpoint(args.checkpoint)
    except (ValueError, FileNotFoundError) as err:
        return _fail(str(err))

    transcripts = args.transcript or [None] * len(args.audio)
    predictions, waves = [], []
    for path, transcript in zip(args.audio, transcripts, strict=True):
        prediction = Prediction(file=path, transcript=transcript)
        try:
            wave = load_audio(path)
            prediction.duration_s = round(wave.size / SAMPLE_RATE, 3)
            waves.append((prediction, wave))
        except AudioError as err:
            prediction.status, prediction.error = "error", f"{err.reason}: {err}"
            print(f"emoreason predict: cannot use {path}: {err} ({err.reason})", file=sys.stderr)
        predictions.append(prediction)

    if waves:
        try:
            _answer(waves, checkpoint, proto, args)
        except CheckpointError as err:
            return _fail(f"refusing checkpoint: {err}")
    _print(predictions, args.as_json)
    return 1 if any(p.error for p in predictions) else 0


def _answer(waves, checkpoint: Path, proto, args: Args) -> None:
    from model.audiollm import AudioLLM
    from model.collator import AudioCollator, AudioPrompt
    from model.eval.extract import extract_label
    from pipeline.audio import SAMPLE_RATE
    from pipeline.questions import DEFAULT_KIND, load_pool
    from pipeline.records import Task

    device = inference_device(args.device)
    model = AudioLLM.from_pretrained(checkpoint).to(device).eval()
    collator = AudioCollator(model.tokenizer, model.counter, model.config.audio_marker)
    window = model.counter.max_samples  # the collator cuts every clip to the encoders' window
    for prediction, wave in waves:
        if wave.size > window:
            prediction.heard_s = round(window / SAMPLE_RATE, 3)
            print(
                f"emoreason predict: {prediction.file} is {prediction.duration_s:.2f} s; the model hears only "
                f"its first {prediction.heard_s:.2f} s",
                file=sys.stderr,
            )
    # The first question of the task's pool: the wording the model saw most in training is any of
    # them; a fixed one makes predictions reproducible.
    instruction = load_pool(Task(args.task)).variants[DEFAULT_KIND][0].format(labels=", ".join(proto.names))
    for start in range(0, len(waves), args.batch_size):
        chunk = waves[start : start + args.batch_size]
        prompts = [AudioPrompt(instruction=instruction, waveform=w, id=p.file) for p, w in chunk]
        texts = model.generate(collator(prompts).to(device), max_new_tokens=args.max_new_tokens)
        for (prediction, _), text in zip(chunk, texts, strict=True):
            got = extract_label(text, proto)
            prediction.emotion = got.label.value if got.label is not None else None
            prediction.status = got.status.value
            prediction.candidates = [c.value for c in got.candidates]
            prediction.rationale = text
            if prediction.transcript:
                prediction.quotes_verified = _quotes_verified(text, prediction, proto)


def _quotes_verified(text: str, prediction: Prediction, proto) -> bool | None:
    from model.eval.reasoning import answer_from_text
    from pipeline.checks.base import CheckInput
    from pipeline.checks.registry import CHECKS
    from pipeline.labels import Emotion
    from pipeline.records import GenerationRecord, Utterance
    from pipeline.verdict import CheckName

    answer = answer_from_text(text, prediction.emotion)
    emotion = Emotion(prediction.emotion) if prediction.emotion else proto.labels[0]
    utterance = Utterance(
        id=prediction.file, dataset="predict", split="predict", speaker="predict", transcript=prediction.transcript,
        emotion=emotion, raw_label=emotion.value, label_protocol=proto.name,
    )  # fmt: skip
    record = GenerationRecord.model_construct(id=prediction.file, answer=answer, emotion=emotion)
    result = CHECKS[CheckName.quote_grounding](record, CheckInput(utterance=utterance, protocol=proto))
    return result.passed if result.applicable else None


def _print(predictions: list[Prediction], as_json: bool) -> None:
    if as_json:
        print(json.dumps([asdict(p) for p in predictions], indent=2, ensure_ascii=False))
        return
    for p in predictions:
        heard = f"; the model heard the first {p.heard_s:.2f} s" if p.heard_s is not None else ""
        print(f"{p.file}" + (f"  ({p.duration_s:.2f} s{heard})" if p.duration_s is not None else ""))
        if p.error:
            print(f"  error: {p.error}")
            continue
        label = (
            p.emotion or f"(no single label: {p.status}" + (f", {'/'.join(p.candidates)}" if p.candidates else "") + ")"
        )
        print(f"  emotion: {label}" + (f"  [{p.status}]" if p.emotion else ""))
        if p.quotes_verified is not None:
            print(f"  quotes verified against the transcript: {'yes' if p.quotes_verified else 'no'}")
        print("  rationale: " + "\n             ".join(p.rationale.splitlines() or [""]))
