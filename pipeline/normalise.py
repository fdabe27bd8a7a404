"""Word content of a text: what a quote is compared on, wherever quotes are compared.

A quote is compared with the transcript after NFKC, case folding, curly quotes and apostrophes
made straight, apostrophes inside a word dropped ("he's" == "hes", so "he’s" typed as "he's"
matches) and every other non-word character turned into a space. What remains is word content:
case, punctuation and whitespace never make a quote unfaithful. Stage two's quote and context
checks (pipeline.checks.text) and the paper-style Quotation rate (pipeline.quality) both read
quotes through :func:`normalise`, so a quote the check accepts is one the metric counts.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

QUOTE_CHARS = str.maketrans({"’": "'", "‘": "'", "ʼ": "'", "`": "'", "“": '"', "”": '"', "„": '"', "«": '"', "»": '"'})
_APOSTROPHE = re.compile(r"(?<=\w)'(?=\w)")
_NON_WORD = re.compile(r"[^\w]+")


@lru_cache(maxsize=4096)  # cue phrases and transcripts are read by several checks per candidate
def normalise(text: str) -> str:
    """Word content only: 'He’s LOST it!!' -> 'hes lost it'."""
    text = unicodedata.normalize("NFKC", text).translate(QUOTE_CHARS).casefold()
    text = _APOSTROPHE.sub("", text)
    return " ".join(_NON_WORD.sub(" ", text).replace("_", " ").split())


def contains_quote(quote: str, text: str) -> bool:
    """Whether the quote's word content occurs in the text's, on word boundaries (no fuzzy tolerance)."""
    needle = normalise(quote)
    return bool(needle) and f" {needle} " in f" {normalise(text)} "
