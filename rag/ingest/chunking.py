"""Sentence-aware chunking that keeps character offsets back into the article text."""

from __future__ import annotations

import re
from dataclasses import dataclass

# A period after these does not end a sentence ("U.S. officials", "Dr. Rao", "Inc. said").
_ABBREVIATIONS = frozenset(
    """mr mrs ms dr prof sen rep gov gen col lt sgt st jr sr inc ltd co corp no vs etc e.g i.e u.s u.k u.n
    jan feb mar apr jun jul aug sep sept oct nov dec approx est fig""".split()
)
_SENTENCE_END = re.compile(r"""[.!?]["'”’)\]]*\s+(?=["'“‘(\[]?[A-Z0-9])""")
_WORD_BEFORE_PERIOD = re.compile(r"([\w.]+)\.[\"'”’)\]]*$")


@dataclass(frozen=True)
class Span:
    start: int
    end: int


@dataclass(frozen=True)
class Chunk:
    index: int
    start: int
    end: int
    text: str


def split_sentences(text: str, offset: int = 0) -> list[Span]:
    """Sentences as spans of `text` (shifted by `offset`); each line is split on its own,
    because news text puts headlines, list items and paragraphs on lines without end punctuation."""
    spans: list[Span] = []
    line_start = 0
    for line in text.split("\n"):
        spans.extend(_split_line(line, offset + line_start))
        line_start += len(line) + 1
    return spans


def _split_line(line: str, offset: int) -> list[Span]:
    spans, start = [], 0
    for match in _SENTENCE_END.finditer(line):
        if _ends_with_abbreviation(line[start : match.start() + 1]):
            continue
        spans.append(_trimmed(line, start, match.start() + len(match.group().rstrip()), offset))
        start = match.end()
    spans.append(_trimmed(line, start, len(line), offset))
    return [s for s in spans if s is not None]


def _ends_with_abbreviation(fragment: str) -> bool:
    match = _WORD_BEFORE_PERIOD.search(fragment)
    if not match:
        return False
    word = match.group(1).lower()
    return word in _ABBREVIATIONS or (len(word) == 1 and word.isalpha())


def _trimmed(line: str, start: int, end: int, offset: int) -> Span | None:
    piece = line[start:end]
    stripped = piece.strip()
    if not stripped:
        return None
    lead = len(piece) - len(piece.lstrip())
    return Span(offset + start + lead, offset + start + lead + len(stripped))


def chunk_text(text: str, max_chars: int, overlap_sentences: int = 1) -> list[Chunk]:
    """Group whole sentences into chunks of about `max_chars`, repeating the last
    `overlap_sentences` of a chunk at the start of the next so no fact is cut off from its context."""
    sentences = split_sentences(text)
    chunks: list[Chunk] = []
    first = 0
    while first < len(sentences):
        last = first
        while last + 1 < len(sentences) and sentences[last + 1].end - sentences[first].start <= max_chars:
            last += 1
        start, end = sentences[first].start, sentences[last].end
        chunks.append(Chunk(len(chunks), start, end, text[start:end]))
        if last + 1 >= len(sentences):
            break
        first = max(first + 1, last + 1 - overlap_sentences)
    return chunks
