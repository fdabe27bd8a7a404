"""Spoken question answering built deterministically from a transcript.

The paper trains on spoken QA to keep the speech branch listening to content. Without a QA data
set, questions are made from the transcript itself, so every answer is verifiable against it:

- ``continuation``: a stretch of three words that occurs once in the transcript; the answer is
  the words that follow it, up to the end of the clause (at most ``MAX_CONTINUATION_WORDS``).
- ``name``: capitalised words inside a sentence (not its first word, not "I"): the names the
  speaker mentions.
- ``mention``: a content word; half the time one the speaker says (answer yes), half the time a
  word from another utterance of the corpus that this one lacks (answer no).
- ``question``: whether the utterance is a question (it ends in "?"); only for transcripts that
  end in punctuation, since without it the answer is unknowable.

One kind is chosen per utterance from those the transcript allows, seeded by the utterance id.
Transcripts too short for any kind yield no question (the corpus counts them as skipped).
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Iterable
from dataclasses import dataclass

PHRASE_WORDS = 3  # long enough to locate a point in a sentence, short enough to hear
MAX_CONTINUATION_WORDS = 6
DISTRACTOR_TRIES = 8
MIN_CONTENT_CHARS = 4  # shorter words are mostly function words; longer ones are in _STOPWORDS
# fmt: off
_STOPWORDS = frozenset({
    "about", "above", "after", "again", "against", "because", "been", "before", "being", "below", "between",
    "both", "could", "does", "doing", "down", "during", "each", "from", "further", "have", "having", "here",
    "hers", "herself", "himself", "into", "itself", "just", "more", "most", "myself", "once", "only", "other",
    "ours", "ourselves", "over", "same", "should", "some", "such", "than", "that", "their", "theirs", "them",
    "themselves", "then", "there", "these", "they", "this", "those", "through", "under", "until", "very",
    "were", "what", "when", "where", "which", "while", "whom", "with", "would", "your", "yours", "yourself",
    "yourselves", "yeah", "okay", "gonna", "wanna", "really", "well", "like", "know", "think", "mean", "right",
    "going",
})
# fmt: on
_WORD = re.compile(r"[A-Za-z][A-Za-z'’-]*")
_SENTENCE_END = re.compile(r"[.!?]")


@dataclass(frozen=True)
class SpokenQA:
    kind: str
    answer: str
    values: dict[str, str]  # placeholders of the question template


def _clean(word: str) -> str:
    return word.strip(".,!?;:\"'()[]…-—")


def _norm(text: str) -> str:
    return " ".join(_clean(w).lower() for w in text.split() if _clean(w))


def content_words(transcript: str) -> list[str]:
    seen: dict[str, None] = {}
    for word in _WORD.findall(transcript):
        low = word.lower().replace("’", "'")
        if len(low) >= MIN_CONTENT_CHARS and "'" not in low and low not in _STOPWORDS:
            seen.setdefault(low)
    return list(seen)


def _continuation(words: list[str], rng: random.Random) -> SpokenQA | None:
    normed = [_clean(w).lower() for w in words]
    starts = []
    for k in range(PHRASE_WORDS, len(words)):
        phrase = normed[k - PHRASE_WORDS : k]
        if not all(phrase) or not _clean(words[k]):
            continue
        # The phrase must not already end a clause, and must occur once, so the answer is unambiguous.
        if any(re.search(r"[.!?;:,]$", w) for w in words[k - PHRASE_WORDS : k - 1]) or re.search(
            r"[.!?]$", words[k - 1]
        ):
            continue
        occurrences = sum(normed[i : i + PHRASE_WORDS] == phrase for i in range(len(words)))
        if occurrences == 1:
            starts.append(k)
    if not starts:
        return None
    k = rng.choice(starts)
    answer = []
    for w in words[k : k + MAX_CONTINUATION_WORDS]:
        bare = w.strip('"“”')
        answer.append(bare)
        if re.search(r"[.!?;:,]$", bare):
            break
    phrase_words = [w.strip('"“”') for w in words[k - PHRASE_WORDS : k]]
    phrase = " ".join(phrase_words[:-1] + [_clean(phrase_words[-1])])
    text = " ".join(answer).rstrip(".,!?;:")
    return SpokenQA("continuation", text, {"phrase": phrase})


def _names(transcript: str) -> list[str]:
    names: dict[str, None] = {}
    for sentence in _SENTENCE_END.split(transcript):
        for word in _WORD.findall(sentence)[1:]:
            if word[0].isupper() and word not in ("I", "I'm", "I'll", "I've", "I'd", "OK") and not word.isupper():
                names.setdefault(word)
    return list(names)


def make_question(utterance_id: str, transcript: str | None, distractors: list[str], seed: int) -> SpokenQA | None:
    """One question about the transcript, or None when it allows none."""
    if not transcript or not transcript.strip():
        return None
    rng = random.Random(hashlib.sha256(f"{seed}\0spoken_qa\0{utterance_id}".encode()).digest())
    words = transcript.split()
    options: list[SpokenQA] = []
    if (cont := _continuation(words, rng)) is not None:
        options.append(cont)
    if names := _names(transcript):
        options.append(SpokenQA("name", f"The speaker mentions {' and '.join(names)}.", {}))
    said = content_words(transcript)
    spoken = set(_norm(transcript).split()) | set(said)
    # A few seeded tries find a word this utterance lacks without scanning the whole vocabulary.
    tries = [distractors[rng.randrange(len(distractors))] for _ in range(DISTRACTOR_TRIES)] if distractors else []
    absent = [w for w in tries if w not in spoken]
    if said or absent:
        if said and (not absent or rng.random() < 0.5):
            word = rng.choice(said)
            options.append(SpokenQA("mention", f'Yes, the speaker says "{word}".', {"word": word}))
        else:
            word = rng.choice(absent)
            options.append(SpokenQA("mention", f'No, the speaker does not say "{word}".', {"word": word}))
    ending = transcript.rstrip()[-1]
    if ending in ".!?" and len(words) >= 2:
        options.append(SpokenQA("question", "Yes." if ending == "?" else "No.", {}))
    return rng.choice(options) if options else None


def distractor_vocabulary(transcripts: Iterable[str | None], limit: int = 5000) -> list[str]:
    """Content words of a corpus, sorted, for 'no' answers: deterministic and bounded."""
    vocab: set[str] = set()
    for text in transcripts:
        if text:
            vocab.update(content_words(text))
    # Keep a hash-ordered sample, not the alphabetical head, when the vocabulary is large.
    return sorted(sorted(vocab, key=lambda w: hashlib.sha256(w.encode()).digest())[:limit])
