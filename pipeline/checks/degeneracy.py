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
from enum import StrEnum
from itertools import pairwise

from pipeline.checks.base import (
    CheckInput,
    CheckSettings,
    Problem,
    clip,
    cut_at_max_tokens,
    max_tokens,
    passed,
    verdict_of,
)
from pipeline.checks.text import plain_words, suggests_text
from pipeline.grounded import CAPPED_SCHEMA_VERSIONS, MAX_REASONING_WORDS
from pipeline.records import GenerationRecord
from pipeline.stopwords import STOPWORDS
from pipeline.verdict import CheckName, CheckResult

NAME = CheckName.degeneracy
MAX_WORD_RUN = 6  # "very very very very very very": no fluent sentence does this
MIN_WORDS_FOR_LANGUAGE = 12  # the stopword share of a short phrase says nothing
CLOSING = frozenset(".!?…)]\"'”’»*")
_LETTERS = re.compile(r"[^\W\d_]")
_REFUSAL = re.compile(
    r"\b(?:as an ai\b|as a language model|i(?:'m| am) (?:sorry|afraid),? but|i (?:can(?:no|')t|cannot|am unable to|"
    r"won't|will not) (?:help|assist|comply|provide|do that|answer|determine)|i(?:'m| am) not able to (?:help|assist))",
    re.IGNORECASE,
)


class Code(StrEnum):
    cut_at_max_tokens = "cut_at_max_tokens"  # the teacher stopped at its max_tokens
    cut_at_word_cap = "cut_at_word_cap"  # grounded decoding's word cap closed the reasoning
    ends_mid_sentence = "ends_mid_sentence"  # no closing punctuation
    word_run = "word_run"  # one word many times in a row
    repeated_ngrams = "repeated_ngrams"  # a loop: most word n-grams repeat
    not_english_letters = "not_english_letters"  # too few ASCII letters
    not_english_words = "not_english_words"  # too few English function words
    refusal = "refusal"  # "I can't help with that", "As an AI"


def _loop(words: tuple[str, ...], settings: CheckSettings) -> Problem | None:
    run = 1
    for previous, word in pairwise(words):
        run = run + 1 if word == previous else 1
        if run >= MAX_WORD_RUN:
            return Problem(Code.word_run, f"repetition loop: {word!r} x{run}")
    n = settings.repetition_ngram
    if len(words) < max(settings.min_tokens_for_repetition, n + 1):
        return None
    ngrams = [words[i : i + n] for i in range(len(words) - n + 1)]
    share = 1.0 - len(set(ngrams)) / len(ngrams)
    if share > settings.max_repeated_ngram_share:
        return Problem(Code.repeated_ngrams, f"repetition loop: {share:.0%} of {n}-grams repeat")
    return None


def _language(text: str, words: tuple[str, ...], settings: CheckSettings) -> Problem | None:
    letters = [] if text.isascii() else _LETTERS.findall(text)  # ASCII text: all its letters are ASCII
    if letters:
        ascii_share = sum(map(str.isascii, letters)) / len(letters)
        if ascii_share < settings.min_ascii_letter_share:
            return Problem(Code.not_english_letters, f"not English: {ascii_share:.0%} ASCII letters")
    if len(words) >= MIN_WORDS_FOR_LANGUAGE:
        stop_share = sum(w in STOPWORDS for w in words) / len(words)
        if stop_share < settings.min_stopword_share:
            return Problem(Code.not_english_words, f"not English: {stop_share:.0%} function words")
    return None


def check_degeneracy(record: GenerationRecord, evidence: CheckInput) -> CheckResult:
    answer = record.answer
    if answer is None:
        return passed(NAME)  # schema reports the missing answer
    settings = evidence.settings
    reasoning = answer.reasoning
    problems = []
    if cut_at_max_tokens(record):
        problems.append(Problem(Code.cut_at_max_tokens, f"truncated: used all {max_tokens(record.sampling)} tokens"))
    elif record.schema_version in CAPPED_SCHEMA_VERSIONS and len(reasoning.split()) >= MAX_REASONING_WORDS:
        detail = f"truncated: the reasoning has all {MAX_REASONING_WORDS} words grounded decoding allows"
        problems.append(Problem(Code.cut_at_word_cap, detail))
    elif reasoning.rstrip()[-1:] not in CLOSING:
        detail = f"truncated: reasoning ends mid-sentence ({clip(reasoning[-30:], 30)!r})"
        problems.append(Problem(Code.ends_mid_sentence, detail))
    words = plain_words(reasoning)
    for problem in (_loop(words, settings), _language(reasoning, words, settings)):
        if problem:
            problems.append(problem)
    # The evidence texts one per line (no refusal phrase spans a line), searched after the reasoning.
    refusal = _REFUSAL.search(reasoning) or _REFUSAL.search(suggests_text(answer))
    if refusal:
        problems.append(Problem(Code.refusal, f"refusal: {refusal.group(0)!r}"))
    return verdict_of(NAME, problems)
