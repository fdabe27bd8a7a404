"""Degeneracy: loops, truncation, the wrong language and refusals.

- **Loop**: in a text of at least ``min_tokens_for_repetition`` words, the share of word
  n-grams (n = ``repetition_ngram``) that repeat an earlier n-gram exceeds
  ``max_repeated_ngram_share`` (0.3: fluent prose repeats few trigrams; a sampling loop repeats
  nearly all of them), or one word repeats ``MAX_WORD_RUN`` times in a row.
- **Truncated**: the teacher stopped the candidate at ``max_tokens`` (``checks.base.cut_at_max_tokens``:
  its finish reason, not the request's token total, which counts all ``n`` candidates); or, under grounded
  decoding (``pipeline.grounded``), the reasoning has every word the grammar allows
  (``MAX_REASONING_WORDS``): the grammar then closed it with a full stop wherever it was (on
  RAVDESS, under an earlier cap of 30, 724 of 1,161 answers of the 135M teacher had exactly 30
  words, no other length more than 19); or the reasoning stops without closing punctuation.
- **Not English**: under ``min_ascii_letter_share`` of its letters are ASCII, or (over at least
  ``MIN_WORDS_FOR_LANGUAGE`` words) under ``min_stopword_share`` of its words are common English
  function words (English prose runs at 40–50 %).
- **Refusal**: "I can't help with that", "As an AI", "I'm sorry, but".
"""

from __future__ import annotations

import re
from itertools import pairwise
from operator import eq

from pipeline.checks.base import CheckInput, CheckSettings, clip, cut_at_max_tokens, failed, max_tokens, passed
from pipeline.checks.text import own_words, plain_words, suggests_text, unquoted
from pipeline.grounded import CAPPED_SCHEMA_VERSIONS, MAX_REASONING_WORDS
from pipeline.records import CheckResult, GenerationRecord
from pipeline.stopwords import STOPWORDS

NAME = "degeneracy"
MAX_WORD_RUN = 6  # "very very very very very very": no fluent sentence does this
MIN_WORDS_FOR_LANGUAGE = 12  # the stopword share of a short phrase says nothing
ROUNDING_MARGIN = 1e-6  # a share computed in floats can exceed its exact value: borderline texts are counted
CLOSING = frozenset(".!?…)]\"'”’»*")
_LETTERS = re.compile(r"[^\W\d_]")
_REFUSAL = re.compile(
    r"\b(?:as an ai\b|as a language model|i(?:'m| am) (?:sorry|afraid),? but|i (?:can(?:no|')t|cannot|am unable to|"
    r"won't|will not) (?:help|assist|comply|provide|do that|answer|determine)|i(?:'m| am) not able to (?:help|assist))",
    re.IGNORECASE,
)
_REFUSAL_ANCHORS = frozenset({"ai", "model", "sorry", "afraid", "can't", "cannot", "unable", "won't", "will", "able"})


def _refusal(text: str) -> re.Match[str] | None:
    # Without quoted spans the text's own-word set (cached for label and leakage) holds every word:
    # the test then looks up the ten anchors instead of every word.
    if _REFUSAL_ANCHORS.isdisjoint(own_words(text) if unquoted(text) is text else plain_words(text)):
        return None
    return _REFUSAL.search(text)


def _loop(words: tuple[str, ...], settings: CheckSettings, repeated: int) -> str | None:
    # Every word of a run but the first, and every word of a repeated n-gram, repeats an earlier
    # word: with few repeated words (fluent prose) a run or a loop cannot be there, and it is not searched.
    # The two bounds are tested apart: random or terse text often has enough repeated words for a
    # run (5) but not for a loop (30% of its n-grams).
    n = settings.repetition_ngram
    total = len(words) - n + 1
    # A run of MAX_WORD_RUN equal words needs that many - 1 equal neighbours: count them in C first
    # (operator.eq: twice as fast as str.__eq__ through map on this VM).
    if repeated >= MAX_WORD_RUN - 1 and sum(map(eq, words, words[1:])) >= MAX_WORD_RUN - 1:
        run = 1
        for previous, word in pairwise(words):
            run = run + 1 if word == previous else 1
            if run >= MAX_WORD_RUN:
                return f"repetition loop: {word!r} x{run}"
    # A repeated n-gram at i repeats the words at i..i+n-1, so k >= 1 repeated n-grams need at
    # least k + n - 1 repeated words.
    if repeated - (n - 1) < settings.max_repeated_ngram_share * total - ROUNDING_MARGIN:
        return None
    if len(words) < max(settings.min_tokens_for_repetition, n + 1):
        return None
    share = 1.0 - len(set(zip(*(words[i : total + i] for i in range(n)), strict=True))) / total
    if share > settings.max_repeated_ngram_share:
        return f"repetition loop: {share:.0%} of {n}-grams repeat"
    return None


def _language(text: str, words: tuple[str, ...], settings: CheckSettings) -> str | None:
    letters = () if text.isascii() else _LETTERS.findall(text)
    if letters:
        ascii_share = sum(c.isascii() for c in letters) / len(letters)
        if ascii_share < settings.min_ascii_letter_share:
            return f"not English: {ascii_share:.0%} ASCII letters"
    if len(words) >= MIN_WORDS_FOR_LANGUAGE:
        stop_share = sum(map(STOPWORDS.__contains__, words)) / len(words)
        if stop_share < settings.min_stopword_share:
            return f"not English: {stop_share:.0%} function words"
    return None


def check_degeneracy(record: GenerationRecord, evidence: CheckInput) -> CheckResult:
    answer = record.answer
    if answer is None:
        return passed(NAME)  # schema reports the missing answer
    settings = evidence.settings
    reasoning = answer.reasoning
    problems = []
    limit = max_tokens(record.sampling)
    grounded, word_cap = CAPPED_SCHEMA_VERSIONS, MAX_REASONING_WORDS
    if cut_at_max_tokens(record):
        problems.append(f"truncated: used all {limit} tokens")
    elif record.schema_version in grounded and len(reasoning.split()) >= word_cap:
        problems.append(f"truncated: the reasoning has all {word_cap} words grounded decoding allows")
    elif reasoning.rstrip()[-1:] not in CLOSING:
        problems.append(f"truncated: reasoning ends mid-sentence ({clip(reasoning[-30:], 30)!r})")
    words = plain_words(reasoning)
    # The set of its words (the one label and leakage already cached, when nothing is quoted).
    distinct = own_words(reasoning) if unquoted(reasoning) is reasoning else frozenset(words)
    repeated = len(words) - len(distinct)  # how many words repeat an earlier word
    for problem in (_loop(words, settings, repeated), _language(reasoning, words, settings)):
        if problem:
            problems.append(problem)
    # The evidence texts one per line (no refusal phrase spans a line), searched after the reasoning.
    refusal = _refusal(reasoning) or _refusal(suggests_text(answer))
    if refusal:
        problems.append(f"refusal: {refusal.group(0)!r}")
    if problems:
        return failed(NAME, "; ".join(problems))
    return passed(NAME)
