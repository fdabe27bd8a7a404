"""Reasoning: the free text says something about this utterance, and only about it.

A rationale teaches the student what to listen for, so its reasoning must tie the evidence it
cites to the emotion it concludes, and must not invent what was never measured or said. The
check fails a reasoning (read in its own words: double-quoted spans are blanked) that:

- **does not connect**: it cites acoustic evidence but names none of it (an acoustic item's
  measure, by a claim about it or a distinctive word of its cue phrase, or any cited quote's
  content words; a measured cue of this utterance that supports the label in the relevance table
  counts as well, cited or not; a paraphrased quote cannot be verified without a judge, so quotes alone are not
  asked for), or does not name the concluded emotion, or has no link between them ("suggests",
  "points to", "because", "which", ..., or a colon or semicolon: a list of words is not reasoning);
- **invents**: a hedge ("I'm not sure", "hard to explain"), the teacher's own voice ("I", "we",
  when the transcript does not say them), a meta reference ("this report", "the prompt"), a
  scene, story or listener ("the audience", "the room", "children", "the dog") whose words are
  not in the transcript or the dialogue, a dialogue ("the other speaker", "the conversation")
  for an utterance without earlier turns, or a gender the speaker does not have ("the male
  voice" for a female speaker);
- **leans on words that carry no emotion**: it uses the content words of a sentence the corpus
  speaks with several emotions (pipeline.relevance), as if they were evidence;
- **stops mid-thought**: its last word is a function word ("... a little off to the left of.");
- **is garbled or takes its conclusion back**: numbers the recording does not say ("calm, 21 13
  5 100"), words run together or broken ("that'sntetreatable", "ofSadness"), a word or a cited cue
  said twice in a row ("calm, calm", "louder than usual and louder than usual"), addressing the
  reader ("you"), a negation after it has concluded the emotion that is not about another
  emotion ("... typical of anger, but it is not anger itself"; "... suggests anger, not fear" is
  fine), or, after the conclusion, a contrast ("but", "while", "though", "however") whose clause
  names no measured cue, cited words or emotion ("... typical of calm, but it can be more severe").

A framed reasoning (``schema_version`` ending ``+framed``: one of the offered cues, a connector and
the emotion, then at most ten free words, pipeline.grounded.ReasoningFrame) fails when it adds free
words after the emotion that do not name a measured cue: there the 135M teacher wrote "which is
the emotion used in this example", "has been observed in a background of celestial signal
injuries", "so is unhappiness".

The rule was measured on a hand-labelled sample of RAVDESS rationales (tests/data/, docs/stage-two.md).
The same markers are searched in each evidence item's ``suggests``.
"""

from __future__ import annotations

import re
from enum import StrEnum
from functools import lru_cache

from pipeline.checks.acoustic_claims import find_claims
from pipeline.checks.base import CheckInput, Problem, clip, not_applicable, verdict_of
from pipeline.checks.label import asserted_emotions, gold_emotion
from pipeline.checks.text import normalise, plain_words, stripped_words, unquoted
from pipeline.grounded import EMOTION_NOUNS, FRAMED_SCHEMA_VERSION
from pipeline.labels import SYNONYMS
from pipeline.rationale import EvidenceKind
from pipeline.records import Gender, GenerationRecord
from pipeline.relevance import Stance
from pipeline.stopwords import STOPWORDS
from pipeline.verdict import CheckName, CheckResult, CommonCode

NAME = CheckName.reasoning


class Code(StrEnum):
    names_no_evidence = "names_no_evidence"  # cites acoustic evidence but names none of it
    no_emotion = "no_emotion"  # does not name the emotion it concludes
    no_link = "no_link"  # nothing links the evidence to the emotion
    hedges = "hedges"  # "I'm not sure", "hard to explain"
    meta = "meta"  # "this report", "the prompt"
    first_person = "first_person"  # the teacher's own voice
    scene = "scene"  # a scene, story or listener the recording does not hold
    dialogue = "dialogue"  # a dialogue for an utterance without earlier turns
    gender = "gender"  # a gender the speaker does not have
    leans_on_words = "leans_on_words"  # the words of a sentence spoken with several emotions
    numbers = "numbers"  # numbers the recording does not say
    garbled = "garbled"  # words run together or broken
    repeats = "repeats"  # a word or cue said twice in a row
    addresses_reader = "addresses_reader"  # "you"
    takes_back = "takes_back"  # negates its own conclusion
    hedges_after = "hedges_after"  # a contrast after the conclusion that names nothing
    framed_tail = "framed_tail"  # free words after a framed conclusion, not about the voice
    mid_thought = "mid_thought"  # ends on a function word


# Words of a cue phrase that name no measure by themselves ("than this speaker's usual").
_GENERIC_WORDS = "usual speaker's speaker voice than more less much very well over utterance typical speaking"
_GENERIC_CUE_WORDS = frozenset(_GENERIC_WORDS.split())
_LINKS = re.compile(
    r"\b(?:suggest\w*|indicat\w*|signal\w*|point\w*|show\w*|reflect\w*|convey\w*|express\w*|fits?|fitting|"
    r"typical|consistent|sounds?|mark\w*|reveal\w*|because|since|so|which|means?|betray\w*|hints?|carr(?:y|ies)|"
    r"tells?|gives?|makes?|match\w*|evidence|sign|associated|characteristic|common|is|are|was|were|seems?)\b|[:;]"
)
_HEDGE = re.compile(
    r"\b(?:i'?m not sure|i am not sure|not sure (?:what|how|if|whether|why)|i don'?t know|hard to (?:say|tell|explain)|"
    r"can'?t (?:tell|say|be expressed|explain)|no explanation|what to make of)\b"
)
_META = re.compile(r"\b(?:this|the) (?:report|prompt|analysis|instructions?|dataset|data set|text format|task)\b")
_FIRST_PERSON = frozenset({"i", "i'm", "i've", "i'd", "me", "my", "mine", "we", "we're", "our", "ours", "us"})
_SCENE_WORDS = """listener listeners audience reader readers viewer viewers room scene story storyline child children kid kids
    family house home party game games friend friends mother father parent parents crowd animal animals dog dogs
    cat cats door floor world movie film book tree trees perspective character characters"""
_SCENE = frozenset(_SCENE_WORDS.split())
_DIALOGUE = re.compile(
    r"\b(?:the (?:other|second|first) (?:speaker|person|turn)|the (?:conversation|dialogue|exchange)|previous turn)\b"
)
_MALE_WORDS = "male man men he his him himself boy gentleman masculine"
_FEMALE_WORDS = "female woman women she her hers herself girl lady feminine"
_GENDER_WORDS = {Gender.female: frozenset(_MALE_WORDS.split()), Gender.male: frozenset(_FEMALE_WORDS.split())}
# A sentence that ends on one of these was cut, not finished ("... off to the left of.").
_DANGLING_WORDS = """the a an of to and or but with by for from in on at as that which who whose than their his her its
    my your our is are was were be been this these those into about"""
_DANGLING = frozenset(_DANGLING_WORDS.split())


_SECOND_PERSON = frozenset({"you", "your", "yours", "you're", "you've", "yourself"})
_NEGATORS = frozenset({"not", "no", "never", "nor", "neither", "nothing", "without"})
_CONTRACTION_ENDS = frozenset({"s", "t", "re", "ve", "ll", "d", "m"})
_CAMEL = re.compile(r"[a-z][A-Z]")
_DIGITS = re.compile(r"\d")
EMOTION_AFTER_NEGATION = 3  # "not fear", "not a sign of fear": the negation is about another emotion
_CONTRASTS = frozenset({"but", "while", "though", "although", "however", "yet"})


def _garbled_word(word: str) -> bool:
    """Words a tokenizer-level loop produces: run together at an apostrophe, or cased mid-word."""
    core = word.strip('.,;:!?"()-')
    if core.count("'") >= 2 or _CAMEL.search(core):
        return True
    head, _, tail = core.partition("'")
    return bool(head and tail) and tail.lower() not in _CONTRACTION_ENDS


def _garbled(reasoning: str, own: frozenset[str], allowed: frozenset[str], gold, cues) -> list[Problem]:
    text = unquoted(reasoning)
    found = []
    numbers = sorted({w for w in own if _DIGITS.search(w)} - allowed)
    if numbers:
        found.append(Problem(Code.numbers, f"invents numbers ({', '.join(numbers[:4])})"))
    broken = [w for w in text.split() if _garbled_word(w)]
    if broken:
        found.append(Problem(Code.garbled, f"garbled words ({', '.join(clip(w, 24) for w in broken[:3])})"))
    words = stripped_words(text.lower())
    repeated = sorted({a for a, b in zip(words, words[1:], strict=False) if a == b})
    lowered = normalise(text)
    repeated += [c.phrase for c in cues if lowered.count(normalise(c.phrase)) >= 2]
    if repeated:
        found.append(Problem(Code.repeats, f"repeats itself ({', '.join(clip(r, 30) for r in repeated[:2])})"))
    if words := sorted((own & _SECOND_PERSON) - allowed):
        found.append(Problem(Code.addresses_reader, f"addresses the reader ({', '.join(words)})"))
    emotions = [SYNONYMS.get(w) for w in words_of(text)]
    first = next((i for i, e in enumerate(emotions) if e is gold), None)
    if first is not None:
        tokens = words_of(text)
        for i in range(first + 1, len(tokens)):
            if tokens[i] in _NEGATORS or tokens[i].endswith("n't"):
                after = emotions[i + 1 : i + 1 + EMOTION_AFTER_NEGATION]
                if not any(e is not None and e is not gold for e in after):
                    said = clip(" ".join(tokens[i - 2 : i + 4]), 40)
                    found.append(Problem(Code.takes_back, f"takes its conclusion back ({said!r})"))
                    break
        contrast = next((i for i in range(first + 1, len(tokens)) if tokens[i] in _CONTRASTS), None)
        if contrast is not None:
            clause = " ".join(tokens[contrast + 1 :])
            named = find_claims(clause) or any(e is not None for e in emotions[contrast + 1 :])
            named = named or any((_content(c.phrase) - _GENERIC_CUE_WORDS) & set(tokens[contrast + 1 :]) for c in cues)
            if not named:
                said = clip(" ".join(tokens[contrast:]), 40)
                found.append(Problem(Code.hedges_after, f"hedges after its conclusion ({said!r})"))
    return found


def words_of(text: str) -> list[str]:
    return stripped_words(text.lower())


@lru_cache(maxsize=1024)
def _content(text: str) -> frozenset[str]:
    return frozenset(w for w in plain_words(normalise(text)) if w not in STOPWORDS)


def _mentions(record: GenerationRecord, evidence: CheckInput, own: frozenset[str], measures: set) -> bool:
    """Whether the reasoning names at least one of the evidence items it cites (asked only of acoustic
    evidence), or a measured cue of this utterance that the relevance table says supports the label."""
    profile = evidence.profile
    if all(item.kind != EvidenceKind.acoustic for item in record.answer.evidence):
        return True
    if profile is not None and evidence.relevance is not None:
        gold = gold_emotion(record, evidence.protocol)
        said = f" {normalise(record.answer.reasoning)} "
        named = measures | {c.measure for c in profile.cues if f" {normalise(c.phrase)} " in said}
        for cue in profile.cues:
            if (
                cue.measure in named
                and evidence.relevance.stance(gold, cue.measure, cue.level.direction)[0] is Stance.supports
            ):
                return True
    for item in record.answer.evidence:
        if item.kind == EvidenceKind.acoustic:
            named = {c.measure for c in find_claims(item.cue)}
            if profile is not None:
                said = f" {normalise(item.cue)} "
                named |= {c.measure for c in profile.cues if f" {normalise(c.phrase)} " in said}
            if named & measures or (_content(item.cue) - _GENERIC_CUE_WORDS) & own:
                return True
        elif _content(item.cue) & own or normalise(item.cue) in normalise(record.answer.reasoning):
            return True
    return False


def _invented(text: str, own: frozenset[str], evidence: CheckInput, allowed: frozenset[str]) -> list[Problem]:
    lowered = unquoted(text).lower()
    found = []
    if m := _HEDGE.search(lowered):
        found.append(Problem(Code.hedges, f"hedges ({m.group(0)!r})"))
    if m := _META.search(lowered):
        found.append(Problem(Code.meta, f"refers to {m.group(0)!r}"))
    if words := sorted((own & _FIRST_PERSON) - allowed):
        found.append(Problem(Code.first_person, f"speaks as itself ({', '.join(words)})"))
    if words := sorted((own & _SCENE) - allowed):
        found.append(Problem(Code.scene, f"invents a scene or listener ({', '.join(words)})"))
    utterance = evidence.utterance
    if utterance is not None and not utterance.context and (m := _DIALOGUE.search(lowered)):
        found.append(Problem(Code.dialogue, f"invents a dialogue ({m.group(0)!r}); the utterance has no earlier turns"))
    other_gender = _GENDER_WORDS.get(utterance.gender) if utterance is not None else None
    if other_gender and (words := sorted((own & other_gender) - allowed)):
        detail = f"gives a {utterance.gender.value} speaker another gender ({', '.join(words)})"
        found.append(Problem(Code.gender, detail))
    return found


def _framed_tail(record: GenerationRecord, cues) -> str | None:
    """The free words after a framed reasoning's conclusion, when they name no measured cue."""
    nouns = EMOTION_NOUNS.get(record.emotion.value, ())
    reasoning = record.answer.reasoning
    # The frame ends the conclusion with one of the emotion's nouns ("... points to anger"); the rest is free.
    conclusion = re.search(
        r"\b(?:" + "|".join(map(re.escape, sorted(nouns, key=len, reverse=True))) + r")\b", reasoning
    )
    if conclusion is None:
        return None
    tail = reasoning[conclusion.end() :].strip(" .,")
    if not tail or find_claims(tail):
        return None
    words = frozenset(plain_words(tail))
    if any((_content(c.phrase) - _GENERIC_CUE_WORDS) & words for c in cues):
        return None
    return tail


def check_reasoning(record: GenerationRecord, evidence: CheckInput) -> CheckResult:
    answer = record.answer
    if answer is None:
        return not_applicable(NAME, CommonCode.no_answer, "no answer")
    utterance = evidence.utterance
    reasoning = answer.reasoning
    own = frozenset(plain_words(unquoted(reasoning)))
    # Words the recording itself says may be repeated: the transcript's and the earlier turns'.
    said = " ".join([utterance.transcript or "", *(t.text for t in utterance.context)]) if utterance else ""
    allowed = frozenset(plain_words(said))
    problems: list[Problem] = []
    measures = {c.measure for c in find_claims(reasoning)}
    gold = gold_emotion(record, evidence.protocol)
    if not _mentions(record, evidence, own, measures):
        problems.append(Problem(Code.names_no_evidence, "names none of the evidence it cites"))
    if gold not in asserted_emotions(reasoning, evidence.protocol, gold):
        problems.append(Problem(Code.no_emotion, f"does not name the emotion it concludes ({gold.value})"))
    if not _LINKS.search(unquoted(reasoning).lower()):
        problems.append(
            Problem(Code.no_link, "links no evidence to the emotion (no 'suggests', 'because', 'which', ...)")
        )
    problems += _invented(reasoning, own, evidence, allowed)
    for item in answer.evidence:
        own_suggests = frozenset(plain_words(item.suggests))
        problems += [
            Problem(p.code, f"suggests {p.text}") for p in _invented(item.suggests, own_suggests, evidence, allowed)
        ]
    table = evidence.relevance
    sentence = table.sentence(utterance.transcript) if table is not None and utterance is not None else None
    if sentence is not None and (words := sorted(own & _content(utterance.transcript))):
        detail = f"leans on the words {', '.join(words)} of a sentence this corpus speaks with {len(sentence.emotions)} emotions"
        problems.append(Problem(Code.leans_on_words, detail))
    cues = evidence.profile.cues if evidence.profile is not None else []
    problems += _garbled(reasoning, own, allowed, gold, cues)
    if record.schema_version == FRAMED_SCHEMA_VERSION and (tail := _framed_tail(record, cues)):
        detail = f"adds words after its conclusion that are not about the voice ({clip(tail, 40)!r})"
        problems.append(Problem(Code.framed_tail, detail))
    last = plain_words(reasoning)[-1:] if reasoning else ()
    if last and last[0] in _DANGLING:
        problems.append(
            Problem(Code.mid_thought, f"stops mid-thought (ends on {last[0]!r}: {clip(reasoning[-40:], 40)!r})")
        )
    return verdict_of(NAME, problems, unique=True)
