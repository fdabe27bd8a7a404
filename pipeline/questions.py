"""Question pools: the instruction variants of each training task, versioned files in prompts/questions/.

A pool file ``<task>.v<N>.yaml`` holds ``questions``: a list of variants, or a mapping from
question kind to variants (spoken QA). Its identity is ``<task>.v<N>@<sha256 prefix>``, recorded in
every example's ``instruction_template``, so a corpus says exactly which wording it was built from.

Drawing is keyed by the example id, not by position: the same seed gives every example the same
instruction whatever order or subset the corpus is built in.
"""

from __future__ import annotations

import hashlib
import random
import re
import string
from dataclasses import dataclass
from pathlib import Path

import yaml

from pipeline.records import Task

QUESTIONS_DIR = Path(__file__).resolve().parents[1] / "prompts" / "questions"
DEFAULT_KIND = "default"
HASH_CHARS = 12  # enough to tell versions apart in a column, short enough to read


class QuestionPoolError(ValueError):
    """A pool file that is missing, malformed, or uses a placeholder it does not declare."""


@dataclass(frozen=True)
class QuestionPool:
    task: Task
    version: int
    content_hash: str
    variants: dict[str, tuple[str, ...]]  # kind -> instruction templates
    placeholders: frozenset[str]

    @property
    def ref(self) -> str:
        """'asr.v1@3fa2...': what an example's instruction_template records."""
        return f"{self.task.value}.v{self.version}@{self.content_hash}"

    def draw(self, key: str, seed: int, kind: str = DEFAULT_KIND, **values: str) -> str:
        """The instruction for the example ``key``: a seeded choice, rendered with ``values``."""
        if kind not in self.variants:
            raise QuestionPoolError(f"{self.ref}: no questions of kind {kind!r}; kinds: {', '.join(self.variants)}")
        digest = hashlib.sha256(f"{seed}\0{self.task.value}\0{key}".encode()).digest()
        template = random.Random(digest).choice(self.variants[kind])
        return template.format(**values)


def _fields(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def load_pool(task: Task | str, version: int = 1, directory: Path = QUESTIONS_DIR) -> QuestionPool:
    task = Task(task)
    path = Path(directory) / f"{task.value}.v{version}.yaml"
    if not path.is_file():
        raise QuestionPoolError(f"question pool {path} not found")
    raw = path.read_bytes()
    data = yaml.safe_load(raw) or {}
    questions = data.get("questions")
    if isinstance(questions, list):
        questions = {DEFAULT_KIND: questions}
    if not isinstance(questions, dict) or not questions or not all(questions.values()):
        raise QuestionPoolError(f"{path}: 'questions' must be a non-empty list or a mapping of non-empty lists")
    if data.get("id") != task.value or data.get("version") != version:
        raise QuestionPoolError(
            f"{path}: id/version say {data.get('id')!r} v{data.get('version')}, expected the file name's"
        )
    declared = frozenset(data.get("placeholders") or ())
    variants = {str(kind): tuple(str(q).strip() for q in qs) for kind, qs in questions.items()}
    for kind, templates in variants.items():
        for template in templates:
            unknown = _fields(template) - declared
            if unknown or re.search(r"\{\s*\}", template):
                raise QuestionPoolError(f"{path}: {kind!r} question {template!r} uses undeclared {sorted(unknown)}")
    return QuestionPool(
        task=task,
        version=version,
        content_hash=hashlib.sha256(raw).hexdigest()[:HASH_CHARS],
        variants=variants,
        placeholders=declared,
    )


def load_pools(version: int = 1, directory: Path = QUESTIONS_DIR) -> dict[Task, QuestionPool]:
    return {task: load_pool(task, version, directory) for task in Task}
