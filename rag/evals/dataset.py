"""A question set for `rag eval`: one JSON object per line (DESIGN.md), read into `Question`s.

Only `id` and `question` are required. `answers` is a list of groups of case-insensitive regex
alternatives, `spans` SQuAD-style answer spans, `gold_sources` the articles that answer it, and
`abstain` marks a question the articles do not answer.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

UNTYPED = "untyped"

GOLD_FIELDS = ("answers", "gold_sources", "abstain")


class DatasetError(RuntimeError):
    """A dataset file that cannot be read; the message names the file and line."""


@dataclass
class Question:
    id: str
    question: str
    type: str = UNTYPED
    answers: list[list[str]] = field(default_factory=list)
    gold_sources: list[str] = field(default_factory=list)
    abstain: bool = False
    spans: list[str] = field(default_factory=list)  # SQuAD-style: the answer must contain one of these

    @property
    def answerable(self) -> bool:
        """Scored on its answer text."""
        return bool(self.answers or self.spans)

    @property
    def scored(self) -> bool:
        return self.answerable or self.abstain

    @property
    def retrieval_scored(self) -> bool:
        return bool(self.gold_sources)


def load_dataset(path: Path, limit: int | None = None) -> list[Question]:
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise DatasetError(f"cannot read the dataset {path}: {exc.strerror or exc}") from exc
    questions: list[Question] = []
    seen: set[str] = set()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            question = parse_question(json.loads(line))
        except (ValueError, TypeError, re.error) as exc:
            raise DatasetError(f"{path} line {number}: {exc}") from exc
        if question.id in seen:
            raise DatasetError(f"{path} line {number}: duplicate id {question.id!r}")
        seen.add(question.id)
        questions.append(question)
    if not questions:
        raise DatasetError(f"{path} holds no questions")
    return questions[:limit] if limit else questions


def parse_question(data: dict) -> Question:
    if not isinstance(data, dict):
        raise ValueError("each line must be a JSON object")
    for name in ("id", "question"):
        if not isinstance(data.get(name), str) or not data[name].strip():
            raise ValueError(f"{name!r} is required and must be a non-empty string")
    answers = [[group] if isinstance(group, str) else list(group) for group in data.get("answers") or []]
    for group in answers:
        if not group or not all(isinstance(alt, str) for alt in group):
            raise ValueError("'answers' must be a list of non-empty lists of regex strings")
        for alternative in group:
            re.compile(alternative)
    spans = data.get("spans") or []
    if not all(isinstance(span, str) for span in spans):
        raise ValueError("'spans' must be a list of strings")
    abstain = bool(data.get("abstain", False))
    if abstain and (answers or spans):
        raise ValueError("a question with 'abstain': true cannot also list answers")
    return Question(
        id=data["id"],
        question=data["question"],
        type=str(data.get("type") or UNTYPED),
        answers=answers,
        gold_sources=[str(s) for s in data.get("gold_sources") or []],
        abstain=abstain,
        spans=spans,
    )
