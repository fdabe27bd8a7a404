"""Label tables and protocols: every raw code maps, unknown labels fail loudly, protocols merge and exclude."""

from __future__ import annotations

import pytest

from pipeline.labels import (
    PROTOCOLS,
    RAW_EMOTIONS,
    Emotion,
    Sentiment,
    UnknownLabelError,
    canonical_emotion,
    canonical_sentiment,
    emotion_from_word,
    protocol,
)

E = Emotion


@pytest.mark.parametrize("dataset", sorted(RAW_EMOTIONS))
def test_every_raw_label_maps_case_and_space_insensitively(dataset):
    for raw, emotion in RAW_EMOTIONS[dataset].items():
        assert canonical_emotion(dataset, raw) is emotion
        assert canonical_emotion(dataset, f"  {raw.upper()} ") is emotion


def test_iemocap_table_is_the_release_vocabulary():
    assert set(RAW_EMOTIONS["iemocap"]) == {"ang", "hap", "exc", "sad", "neu", "fru", "sur", "fea", "dis", "oth", "xxx"}


def test_ravdess_codes_cover_the_eight_emotions():
    codes = {f"{i:02d}" for i in range(1, 9)}
    assert {canonical_emotion("ravdess", c) for c in codes} == set(PROTOCOLS["ravdess8"].labels)


@pytest.mark.parametrize(("dataset", "value"), [("iemocap", "joy"), ("meld", "hap"), ("ravdess", "09")])
def test_unknown_label_names_value_and_dataset(dataset, value):
    with pytest.raises(UnknownLabelError) as err:
        canonical_emotion(dataset, value)
    assert repr(value) in str(err.value) and dataset in str(err.value)
    assert (err.value.dataset, err.value.value) == (dataset, value)


def test_datasets_without_table_use_canonical_names():
    assert canonical_emotion("demo", "Frustrated") is E.frustrated
    with pytest.raises(UnknownLabelError, match="'furious'"):
        canonical_emotion("manifest", "furious")


def test_iemocap4_merges_excited_into_happy_and_excludes_the_rest():
    p = protocol("iemocap4")
    assert p.apply(canonical_emotion("iemocap", "exc")) is E.happy
    assert p.apply(canonical_emotion("iemocap", "hap")) is E.happy
    kept = {raw for raw in RAW_EMOTIONS["iemocap"] if p.apply(canonical_emotion("iemocap", raw)) is not None}
    assert kept == {"ang", "hap", "exc", "sad", "neu"}


def test_iemocap7_keeps_excited_apart_and_drops_fear_disgust():
    p = protocol("iemocap7")
    assert p.apply(E.excited) is E.excited
    kept = {raw for raw in RAW_EMOTIONS["iemocap"] if p.apply(canonical_emotion("iemocap", raw)) is not None}
    assert kept == {"ang", "hap", "exc", "sad", "neu", "fru", "sur"}


def test_meld7_and_ravdess8_keep_every_label_of_their_dataset():
    for dataset, name in (("meld", "meld7"), ("ravdess", "ravdess8")):
        p = protocol(name)
        assert all(p.apply(e) is e for e in RAW_EMOTIONS[dataset].values())


def test_all_excludes_only_non_emotions():
    p = protocol("all")
    assert p.apply(E.other) is None and p.apply(E.no_agreement) is None
    assert len(p.labels) == 10


def test_unknown_protocol_is_a_clear_error():
    with pytest.raises(ValueError, match="iemocap4"):
        protocol("iemocap5")


def test_sentiments():
    assert canonical_sentiment("meld", " Negative") is Sentiment.negative
    with pytest.raises(UnknownLabelError, match="meld"):
        canonical_sentiment("meld", "mixed")


def test_emotion_from_word_reads_synonyms_and_merges():
    assert emotion_from_word("Joy.") is E.happy
    assert emotion_from_word("thrilled", protocol("iemocap4")) is E.happy
    assert emotion_from_word("disgust", protocol("iemocap4")) is None
    assert emotion_from_word("banana") is None


def test_onto_merges_and_keeps_classes_the_protocol_lacks():
    from pipeline.labels import Emotion, protocol

    iemocap4 = protocol("iemocap4")
    assert iemocap4.onto(Emotion.excited) is Emotion.happy  # merged, as apply() merges
    assert iemocap4.apply(Emotion.frustrated) is None  # apply() drops it ...
    assert iemocap4.onto(Emotion.frustrated) is Emotion.frustrated  # ... onto() keeps it, to be scored wrong
