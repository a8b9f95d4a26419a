"""The citation format and the refusal phrase: one definition shared by the prompt, the parser,
the extractive answerer and the tests."""

from __future__ import annotations

import re

REFUSAL = "Not in these articles."
CITATION_FORMAT = "[{n}]"
CITATION_RE = re.compile(r"\[(\d+)\]")


def cite(n: int) -> str:
    return CITATION_FORMAT.format(n=n)


def strip_citations(text: str) -> str:
    return re.sub(r"\s*\[\d+\]", "", text).strip()
