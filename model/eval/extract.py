"""Reading the emotion a generated answer concludes, and saying so when it concludes none.

    extract_label("The voice is loud.\\nEmotion: angry", protocol("ravdess8"))
    # Extraction(label=angry, status=final_line, candidates=(angry,))

Order of evidence:

1. **Final label line.** The model is trained to end with ``Emotion: <label>``
   (pipeline.corpora.REASONING_FINAL_LINE); the last line keyed ``Emotion:`` / ``Label:`` /
   ``Answer:`` (or the same key in a few other languages) decides. An answer that *is* a label
   ("Angry.") counts as its own final line.
2. **Synonym matching** over the whole answer: every emotion word of the synonym table
   (pipeline.labels.SYNONYMS, plus :data:`FOREIGN` label names), merged under the protocol.
   Negated mentions ("not angry", "rather than sad", "no sign of fear") and an echo of the
   option list ("neutral, calm, happy, sad, ...") are dropped.
3. **Several emotions.** When one of them is marked as dominant ("frustrated but *mostly* angry",
   "*more* angry than sad") it wins; otherwise the answer is ``ambiguous`` and every candidate is
   kept. The paper counted 6–28 % of answers as such special cases; they are reported, not guessed.
4. **Refusals** ("I cannot determine the emotion from audio") without a single emotion are
   ``refusal``; anything else without an emotion is ``none``.

Emotions outside the protocol (``frustrated`` under ravdess8) are kept in ``outside`` and never
become the label.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from enum import Enum
from functools import lru_cache
from itertools import pairwise

from pipeline.labels import SYNONYMS, Emotion, Protocol, protocol

E = Emotion


class Status(str, Enum):
    final_line = "final_line"  # the answer's label line named exactly one emotion
    synonym = "synonym"  # no usable label line; one emotion (or one dominant one) in the text
    ambiguous = "ambiguous"  # several emotions, none marked as dominant
    none = "none"  # no emotion of the protocol at all
    refusal = "refusal"  # the model declined to answer


@dataclass(frozen=True)
class Extraction:
    label: Emotion | None  # under the protocol; None unless status is final_line or synonym
    status: Status
    candidates: tuple[Emotion, ...] = ()  # distinct protocol labels asserted, in order of first mention
    outside: tuple[Emotion, ...] = ()  # emotions asserted that the protocol excludes
    span: str = ""  # the line or words that decided


# Label names in a few other languages -> canonical emotion. Multilingual decoders answer in the
# prompt's language now and then; a Spanish "enojado" is as correct as "angry".
FOREIGN: dict[str, Emotion] = {
    # Spanish
    "enojado": E.angry, "enojada": E.angry, "enfadado": E.angry, "enfadada": E.angry, "ira": E.angry,
    "enojo": E.angry, "triste": E.sad, "tristeza": E.sad, "feliz": E.happy, "alegre": E.happy,
    "alegría": E.happy, "felicidad": E.happy, "tranquilo": E.calm, "tranquila": E.calm, "calma": E.calm,
    "miedo": E.fearful, "asustado": E.fearful, "asustada": E.fearful, "sorprendido": E.surprised,
    "sorprendida": E.surprised, "sorpresa": E.surprised, "asco": E.disgusted, "disgustado": E.disgusted,
    "frustrado": E.frustrated, "frustrada": E.frustrated, "frustración": E.frustrated,
    "emocionado": E.excited, "emocionada": E.excited,
    # French
    "en colère": E.angry, "colère": E.angry, "fâché": E.angry, "fâchée": E.angry, "tristesse": E.sad,
    "heureux": E.happy, "heureuse": E.happy, "joie": E.happy, "neutre": E.neutral, "calme": E.calm,
    "peur": E.fearful, "effrayé": E.fearful, "effrayée": E.fearful, "surpris": E.surprised,
    "surprise": E.surprised, "dégoût": E.disgusted, "dégoûté": E.disgusted, "dégoûtée": E.disgusted,
    "frustré": E.frustrated, "frustrée": E.frustrated, "excité": E.excited, "excitée": E.excited,
    # German
    "wütend": E.angry, "wut": E.angry, "verärgert": E.angry, "ärger": E.angry, "traurig": E.sad,
    "trauer": E.sad, "glücklich": E.happy, "fröhlich": E.happy, "freude": E.happy, "ruhig": E.calm,
    "angst": E.fearful, "ängstlich": E.fearful, "überrascht": E.surprised, "überraschung": E.surprised,
    "ekel": E.disgusted, "angeekelt": E.disgusted, "frustriert": E.frustrated, "aufgeregt": E.excited,
    # Chinese (matched as substrings: no word boundaries in the script)
    "生气": E.angry, "愤怒": E.angry, "悲伤": E.sad, "伤心": E.sad, "难过": E.sad, "高兴": E.happy,
    "快乐": E.happy, "开心": E.happy, "中性": E.neutral, "平静": E.calm, "害怕": E.fearful, "恐惧": E.fearful,
    "惊讶": E.surprised, "厌恶": E.disgusted, "恶心": E.disgusted, "沮丧": E.frustrated, "兴奋": E.excited,
}  # fmt: skip

# Synonyms too ambiguous to read as an emotion in running text ("the content of the message");
# in a label line they still count.
NOT_IN_RUNNING_TEXT = frozenset({"content"})

# Keys of a label line: "Emotion: angry", "**Final answer:** angry", "Emoción: enojado", "情绪：生气".
LINE_KEYS = (
    "final emotion", "final answer", "final label", "predicted emotion", "emotion", "label", "answer",
    "prediction", "emoción", "emocion", "émotion", "emotion detected", "gefühl", "emotion label", "情绪", "情感",
)  # fmt: skip
_LINE = re.compile(
    r"^\W*(?:"
    + "|".join(re.escape(k) for k in sorted(LINE_KEYS, key=len, reverse=True))
    + r")\W*?\s*[:：=\-–]\s*(.+)$",
    re.IGNORECASE,
)
BARE_LINE_WORDS = 3  # a last line this short that names one emotion is the answer itself ("Angry.")

NEGATORS = frozenset(
    {"not", "no", "never", "without", "nor", "neither", "nothing", "hardly", "isn't", "wasn't", "doesn't", "lack"}
    | {"than", "instead"}  # "more angry than sad", "angry instead of sad": the second is not asserted
    | {"nicht", "kein", "keine", "pas", "ni", "sin", "sans"}  # de / fr / es
)
NEGATING_PAIRS = frozenset({("rather", "than"), ("instead", "of"), ("lack", "of"), ("absence", "of"), ("far", "from")})
NEGATION_WINDOW = 3  # words before the emotion word, within its clause
CJK_NEGATORS = ("不", "没", "沒", "非")  # a Chinese negator right before the word

# Words that mark one of several emotions as the conclusion: "frustrated but mostly angry".
DOMINANT = frozenset(
    {"mostly", "mainly", "primarily", "predominantly", "chiefly", "largely", "overall", "ultimately", "more"}
    | {"dominant", "strongest", "primary", "principally", "above"}
)
DOMINANCE_WINDOW = 2

REFUSAL = re.compile(
    r"\bi\s*(?:cannot|can't|can not|am unable to|'m unable to|am not able to|'m not able to|do not|don't)\s+"
    r"(?:determine|tell|identify|say|hear|listen|access|process|detect|infer|know|have)"
    r"|\bas an ai\b|\bi'm sorry\b|\bi am sorry\b|\bi apologi[sz]e\b"
    r"|\b(?:cannot|can't|impossible to|not possible to|unable to)\s+(?:be\s+)?(?:determined?|decide|tell|identify)\b"
    r"|\bno audio\b|\bnot enough information\b|\binsufficient information\b",
    re.IGNORECASE,
)

_CLAUSE_END = re.compile(r"[,.;:!?()\n—]|\bbut\b|\bhowever\b")
_WORDS = re.compile(r"[\w']+")
_CJK = re.compile(r"[\u4e00-\u9fff]")
_MARKUP = str.maketrans({"*": " ", "_": " ", "`": " ", "#": " ", ">": " "})


def _fold(text: str) -> str:
    return unicodedata.normalize("NFKC", text).casefold().translate(_MARKUP).replace("’", "'")


@lru_cache(maxsize=1)
def _lexicon() -> tuple[dict[str, Emotion], re.Pattern, re.Pattern | None]:
    table = {_fold(k): v for k, v in {**SYNONYMS, **FOREIGN}.items()}
    latin = sorted((w for w in table if not _CJK.search(w)), key=len, reverse=True)
    cjk = sorted((w for w in table if _CJK.search(w)), key=len, reverse=True)
    word_re = re.compile(r"(?<![\w'-])(" + "|".join(re.escape(w) for w in latin) + r")(?![\w-])")
    cjk_re = re.compile("(" + "|".join(re.escape(w) for w in cjk) + ")") if cjk else None
    return table, word_re, cjk_re


@dataclass(frozen=True)
class _Mention:
    start: int
    word: str
    emotion: Emotion  # canonical, before the protocol


def _mentions(text: str, running_text: bool) -> list[_Mention]:
    table, word_re, cjk_re = _lexicon()
    found = [_Mention(m.start(), m.group(1), table[m.group(1)]) for m in word_re.finditer(text)]
    if cjk_re is not None:
        found += [_Mention(m.start(), m.group(1), table[m.group(1)]) for m in cjk_re.finditer(text)]
    if running_text:
        found = [m for m in found if m.word not in NOT_IN_RUNNING_TEXT]
    return sorted(found, key=lambda m: m.start)


def _clause_before(text: str, start: int) -> list[str]:
    clause = _CLAUSE_END.split(text[max(0, start - 60) : start])[-1]
    return _WORDS.findall(clause)


def _negated(text: str, m: _Mention) -> bool:
    if _CJK.match(m.word):
        return text[max(0, m.start - 1) : m.start] in CJK_NEGATORS
    before = _clause_before(text, m.start)[-NEGATION_WINDOW:]
    if any(w in NEGATORS or w.endswith("n't") for w in before):
        return True
    return any(pair in NEGATING_PAIRS for pair in pairwise(before))


def _dominant(text: str, m: _Mention) -> bool:
    before = _WORDS.findall(text[max(0, m.start - 40) : m.start])[-DOMINANCE_WINDOW:]
    return any(w in DOMINANT for w in before)


def _option_echo_spans(text: str, proto: Protocol) -> list[tuple[int, int]]:
    """Spans that list three or more label names in a row: the prompt's options, not an answer."""
    names = "|".join(re.escape(n) for n in sorted(proto.names, key=len, reverse=True))
    sep = r"\s*(?:,|/|\bor\b|\band\b)\s*(?:or\s+|and\s+)?"
    echo = re.compile(rf"\b(?:{names})(?:{sep}(?:{names})){{2,}}\b")
    return [(m.start(), m.end()) for m in echo.finditer(text)]


def _read(text: str, proto: Protocol, running_text: bool) -> tuple[list[Emotion], list[Emotion], list[Emotion]]:
    """(asserted protocol labels in order, those marked dominant, asserted emotions outside the protocol)."""
    echoes = _option_echo_spans(text, proto)
    labels, dominant, outside = [], [], []
    for m in _mentions(text, running_text):
        if any(a <= m.start < b for a, b in echoes) or _negated(text, m):
            continue
        applied = proto.apply(m.emotion)
        if applied is None:
            outside.append(m.emotion)
            continue
        labels.append(applied)
        if _dominant(text, m):
            dominant.append(applied)
    return labels, dominant, outside


def _decide(
    text: str, proto: Protocol, running_text: bool, status: Status, span: str
) -> tuple[Extraction | None, tuple[Emotion, ...], tuple[Emotion, ...]]:
    labels, dominant, outside = _read(text, proto, running_text)
    candidates = tuple(dict.fromkeys(labels))
    outside_t = tuple(dict.fromkeys(outside))
    if len(candidates) == 1:
        return Extraction(candidates[0], status, candidates, outside_t, span), candidates, outside_t
    winners = tuple(dict.fromkeys(dominant))
    if len(candidates) > 1 and len(winners) == 1:
        return Extraction(winners[0], status, candidates, outside_t, span), candidates, outside_t
    return None, candidates, outside_t


def _label_line(lines: list[str]) -> tuple[str, str, bool] | None:
    """(the line, its value, keyed?) of the last keyed label line, or of a short bare last line."""
    for line in reversed(lines):
        match = _LINE.match(line)
        if match:
            return line, match.group(1), True
    last = lines[-1] if lines else ""
    cjk_chars = len(_CJK.findall(last))  # Chinese has no spaces: count characters, ~2 per word
    if (len(_WORDS.findall(last)) if not cjk_chars else cjk_chars / 2) <= BARE_LINE_WORDS:
        return last, last, False
    return None


def extract_label(text: str | None, proto: Protocol | str) -> Extraction:
    """The label ``text`` concludes under ``proto`` (a Protocol or its name); see the module doc."""
    proto = protocol(proto) if isinstance(proto, str) else proto
    folded = _fold(text or "")
    lines = [line.strip() for line in folded.splitlines() if line.strip()]
    if not lines:
        return Extraction(None, Status.none)
    candidates: tuple[Emotion, ...] = ()
    outside: tuple[Emotion, ...] = ()
    line = _label_line(lines)
    if line is not None:
        found, candidates, outside = _decide(line[1], proto, False, Status.final_line, line[0])
        if found is not None:
            return found
        if len(candidates) > 1:  # the label line itself hedges: "Emotion: sad or angry"
            return Extraction(None, Status.ambiguous, candidates, outside, line[0])
        if line[2] and outside:  # "Emotion: frustrated" under ravdess8: a conclusion, just not a label
            return Extraction(None, Status.none, candidates, outside, line[0])
    whole = "\n".join(lines)
    found, text_candidates, text_outside = _decide(whole, proto, True, Status.synonym, whole[:200])
    if found is not None:
        return found
    candidates = tuple(dict.fromkeys(candidates + text_candidates))
    outside = tuple(dict.fromkeys(outside + text_outside))
    if REFUSAL.search(whole):
        return Extraction(None, Status.refusal, candidates, outside, whole[:200])
    if len(candidates) > 1:
        return Extraction(None, Status.ambiguous, candidates, outside, whole[:200])
    return Extraction(None, Status.none, candidates, outside, whole[:200])
