"""What a question asks for, worked out once per question: the kind of answer it wants (a number
for "how much", a date for "when", a name for "who", a list), the names and numbers an answer must
match, the thing it counts or asks about, whether it has two parts or is negated.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from rag.answer import text as textlib
from rag.answer.conversation import split_follow_up

_ANSWER_KINDS = [
    (
        "compare",
        re.compile(
            r"\b(which|what) (came|happened|was) (first|earlier|later|last)\b|\bbefore or after\b"
            r"|\bearlier or later\b|\bhow long (after|before)\b",
            re.I,
        ),
    ),
    (
        "number",
        re.compile(
            r"\bhow (many|much|large|big|long)\b|\bwhat (percentage|percent|share|proportion|"
            r"amount|sum|number|figure|value|size)\b|\bby how much\b|\bwhat was the (size|value|"
            r"total)\b",
            re.I,
        ),
    ),
    (
        "place",
        re.compile(
            r"^\s*where\b|\b(in|at) (which|what) (city|country|building|place|venue|capital)\b"
            r"|\bwhat (city|country|venue|building|place)\b",
            re.I,
        ),
    ),
    ("date", re.compile(r"^\s*when\b|\b(what|which) (date|day|year|month)\b|\bon what (date|day)\b", re.I)),
    (
        "person",
        re.compile(
            r"^\s*who\b|\bwhich (minister|official|leader|secretary|president|person|people|"
            r"officials|leaders)\b|\bwhose\b",
            re.I,
        ),
    ),
    (
        "organisation",
        re.compile(
            r"\b(which|what) (company|firm|organisation|organization|group|bank|team|club|band|agency|"
            r"body|party|newspaper|airline|carmaker|network|broadcaster|retailer|label|studio|channel)\b",
            re.I,
        ),
    ),
    ("list", re.compile(r"\bname (the|all|some|three|two)\b|^\s*list\b", re.I)),
    ("definition", re.compile(r"\b(stand|stands|short) for\b|\bwhat is the full (name|form)\b", re.I)),
]

_FOCUS_RE = re.compile(
    r"\bhow (?:many|much) ((?:[a-z\-]+\s*){1,2})|\b(?:which|what)\s+(?:(?:kinds?|sorts?|types?) of\s+)?((?:[a-z\-]+\s*){1,2})",
    re.I,
)
_MULTI_PART_RE = re.compile(
    r"\bboth\b|,? and (?:which|what|who|whom|how|when|where|why)\b|\?.+\?|[A-Z][\w\-]* and (?:the |in the )?[A-Z]"
)
_EXCLUSION_RE = re.compile(r"\b(?:besides|apart from|other than|aside from|except for|except)\b[^,?]*", re.I)
_NOT_A_FOCUS = frozenset("did does do is are was were has have had will would can could".split())


def _focus_words(question: str) -> list[str]:
    """The thing asked about: "how many *foreign ministers*", "which *technologies* did..."."""
    match = _FOCUS_RE.search(question)
    if not match:
        return []
    words = []
    for word in (match.group(1) or match.group(2)).split():
        if word.lower() in _NOT_A_FOCUS:
            break
        words.append(word)
    return words


def _focus(question: str) -> list[str]:
    return textlib.content_stems(" ".join(_focus_words(question)))


_ASKED_RE = re.compile(r"\b(?:what|which)\s+(?:is|was|are|were)\s+(?:the|a|an)\s+((?:[a-z\-]+\s*){1,2})", re.I)


def _asked_for(question: str) -> list[str]:
    """Stems of the thing the question asks for: the "top speed" of "What is the top speed of...",
    the "sentence" of "What prison sentence was...". An answer should name it, or its kind."""
    match = _ASKED_RE.search(question)
    if match:
        words = []
        for word in match.group(1).split():
            if word.lower() in textlib.STOPWORDS:
                break
            words.append(word)
        return textlib.content_stems(" ".join(words))
    return _focus(question)


@lru_cache(maxsize=256)
def question_shape(searched: str) -> QuestionShape:
    """Worked out once per question, though both the ranker and the answerer need it."""
    return QuestionShape.of(searched)


def answer_kind(question: str) -> str:
    for kind, pattern in _ANSWER_KINDS:
        if pattern.search(question):
            return kind
    focus = _focus_words(question)
    if focus and not re.search(r"\bhow many\b", question, re.I) and _is_plural(focus[-1]):
        return "list"  # "which countries", "what products"
    return "other"


def _is_plural(word: str) -> bool:
    word = word.lower()
    return word not in _NOT_A_FOCUS and word.endswith("s") and not word.endswith(("ss", "us", "is"))


@dataclass
class QuestionShape:
    """What the question asks for and names, worked out once per question."""

    kind: str
    terms: list[textlib.KeyTerm]
    stems: set[str]
    numbers: set[float]
    focus: list[str]  # stems of the thing counted in "how many X"
    asked_for: list[str]  # stems of the thing asked for: "what is the *top speed*"
    wants_money: bool
    counts: bool  # "how many X": the answer is a number of X
    multi_part: bool  # "Which X ..., and which Y ...?": two sentences may answer it between them
    negated: bool  # "What is *not* ...": an answer that says the opposite does not answer it

    @classmethod
    def of(cls, searched: str) -> QuestionShape:
        question, _context = split_follow_up(searched)
        excluded = _EXCLUSION_RE.search(question)
        # "Besides the plan with Mexico, which...": the excluded part is context, not what to match.
        asked = question.replace(excluded.group(0), " ") if excluded else question
        return cls(
            kind=answer_kind(question),
            terms=[t for t in textlib.key_terms(question) if t.required],
            stems=set(textlib.content_stems(asked)),
            numbers=textlib.numbers(question),
            focus=_focus(question),
            asked_for=_asked_for(question),
            multi_part=bool(_MULTI_PART_RE.search(question)),
            negated=negated(question),
            counts=bool(re.search(r"\bhow many\b", question, re.I)) and bool(_focus(question)),
            wants_money=bool(
                re.search(r"\bhow much\b|\bwhat amount\b|\bsum\b|\bmoney\b|\bfund", question, re.I)
            ),
        )

    def allowed_missing(self) -> int:
        """Long questions name more things than any one sentence repeats; short ones must match."""
        return len(self.terms) // 4


_NEGATION_RE = re.compile(r"\b(?:not|never|no|none|neither|nor|without)\b|n't\b", re.I)


def negated(text: str) -> bool:
    return _NEGATION_RE.search(text) is not None
