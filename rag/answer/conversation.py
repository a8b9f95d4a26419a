"""Follow-up questions ("and how much went to Brazil?") are searched with the context of the
question before them, so the retriever and the key-term check see what "it" refers to."""

from __future__ import annotations

import re

from rag.answer import text as textlib

_FOLLOW_UP_START = re.compile(r"^\s*(and|but|also|so|then|what about|how about|and what about)\b[\s,]*", re.I)
_REFERRING_WORDS = re.compile(
    r"\b(it|its|they|them|their|this|that|these|those|he|she|his|her|there|else|the same|the deal|the agreement|"
    r"the loan|the programme|the program|the project|the meeting|the event)\b",
    re.I,
)
_MIN_SELF_CONTAINED_TERMS = 2
# "How much per share?": a question this short, naming nothing, leaves its subject to the one before.
_ELLIPSIS_MAX_WORDS = 4
_ELLIPSIS_MAX_CONTENT_WORDS = 2
_CONTEXT_RE = re.compile(r"^(?P<question>.*?) \(following: (?P<context>.*)\)$", re.S)


def is_follow_up(question: str) -> bool:
    if _FOLLOW_UP_START.match(question):
        return True
    names = textlib.key_terms(question)
    if not names and _is_elliptical(question):
        return True
    return bool(_REFERRING_WORDS.search(question)) and len(names) < _MIN_SELF_CONTAINED_TERMS


def _is_elliptical(question: str) -> bool:
    return (len(question.split()) <= _ELLIPSIS_MAX_WORDS
            and len(textlib.content_stems(question)) <= _ELLIPSIS_MAX_CONTENT_WORDS)


def rewrite_follow_up(question: str, history: list[str]) -> str:
    """The question to search: unchanged when it stands alone, else completed with the previous
    question, whose names then count as the question's own."""
    previous = next((h for h in reversed(history) if h.strip()), None)
    if previous is None or not is_follow_up(question):
        return question
    core = _FOLLOW_UP_START.sub("", question).strip()
    core = core[:1].upper() + core[1:]
    return f"{core} (following: {previous.strip().rstrip('?')})"


def split_follow_up(searched: str) -> tuple[str, str]:
    """(the question itself, the earlier question it follows). The earlier question helps find
    passages, but only the question itself says what the answer must mention: after "What did
    EXIM approve?", "and how much went to Brazil?" may be answered by another lender."""
    match = _CONTEXT_RE.match(searched)
    return (match["question"], match["context"]) if match else (searched, "")
