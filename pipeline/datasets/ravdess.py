"""RAVDESS speech: 24 actors x 60 clips in the release; file names carry every label.

Name: ``MM-VV-EE-II-SS-RR-AA.wav`` = modality, vocal channel (01 speech, 02 song), emotion,
intensity (01 normal, 02 strong), statement (01/02), repetition, actor (odd = male). The root
holds ``Actor_XX/`` folders of .wav (the release) or .flac (a resampled copy). Speakers are
actors; the split is by actor, so train and test never share a voice.
"""

from __future__ import annotations

import re
from pathlib import Path

from pipeline.datasets.common import (
    DEFAULT_CONTEXT_TURNS,
    AdapterResult,
    check_unique_ids,
    existing_dir,
    probe_audio,
    reject,
    resolve_label,
    split_filter,
)
from pipeline.labels import Protocol
from pipeline.records import Gender, Reject, Utterance

NAME = "ravdess"
STATEMENTS = {"01": "Kids are talking by the door.", "02": "Dogs are sitting by the door."}
# The common speaker-independent split: the last four actors (two women, two men) are held out.
DEFAULT_TEST_ACTORS = (17, 18, 19, 20)
AUDIO_SUFFIXES = (".wav", ".flac")
FILE_NAME = re.compile(r"^(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)$")
SPEECH, SONG = "01", "02"


def load(
    root: str | Path | None,
    proto: Protocol,
    *,
    test_actors: list[int] | tuple[int, ...] = DEFAULT_TEST_ACTORS,
    dev_actors: list[int] | tuple[int, ...] = (),
    include_song: bool = False,
    splits: list[str] | str | None = None,
    context_turns: int = DEFAULT_CONTEXT_TURNS,
) -> AdapterResult:
    del context_turns  # accepted like every adapter's; RAVDESS clips are single sentences, no dialogue
    folder = existing_dir(root, NAME, "the folder holding Actor_01 .. Actor_24")
    files = sorted(p for p in folder.glob("Actor_*/*") if p.suffix.lower() in AUDIO_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"{NAME}: no Actor_*/*.wav or *.flac files under {folder}")
    test, dev = {int(a) for a in test_actors}, {int(a) for a in dev_actors}
    if test & dev:
        raise ValueError(f"{NAME}: actors {sorted(test & dev)} are in both test_actors and dev_actors")
    wanted = split_filter(splits)
    result = AdapterResult(audio_root=folder)
    for path in files:
        uid = f"{NAME}/{path.stem}"
        source = str(path.relative_to(folder))
        fields = FILE_NAME.match(path.stem)
        if fields is None:
            result.rejects.append(
                reject(NAME, uid, "bad_file_name", f"{path.name} is not MM-VV-EE-II-SS-RR-AA", source)
            )
            continue
        _modality, channel, emotion_code, _intensity, statement, _repetition, actor_code = fields.groups()
        actor = int(actor_code)
        split = "test" if actor in test else "dev" if actor in dev else "train"
        if wanted is not None and split not in wanted:
            continue
        if channel == SONG and not include_song:
            detail = f"{path.name} is sung (vocal channel 02); pass include_song=True to keep songs"
            result.rejects.append(reject(NAME, uid, "song", detail, source))
            continue
        label = resolve_label(NAME, uid, emotion_code, proto, source)
        if isinstance(label, Reject):
            result.rejects.append(label)
            continue
        if statement not in STATEMENTS:
            result.rejects.append(reject(NAME, uid, "bad_file_name", f"unknown statement code {statement}", source))
            continue
        header = probe_audio(NAME, uid, path, source, STATEMENTS[statement])
        if isinstance(header, Reject):
            result.rejects.append(header)
            continue
        result.utterances.append(
            Utterance(
                id=uid,
                dataset=NAME,
                split=split,
                audio_path=str(path),
                transcript=STATEMENTS[statement],
                speaker=f"Actor_{actor:02d}",
                gender=Gender.male if actor % 2 else Gender.female,
                emotion=label,
                raw_label=emotion_code,
                label_protocol=proto.name,
                duration_s=header[0],
                sample_rate=header[1],
            )
        )
    return check_unique_ids(result, NAME)
