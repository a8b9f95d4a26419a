"""What an answer is: the text with [n] markers, the passages they cite, and how long it took.

`Answer.to_dict()` is the `rag ask --json` format that other tools read (see DESIGN.md):
fields may be added, never renamed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from rag.answer import text as textlib
from rag.answer.citations import strip_citations
from rag.answer.retrieve import Passage
from rag.ingest.chunking import split_sentences


@dataclass
class Citation:
    n: int
    source: str
    title: str
    published: str
    chunk_id: str
    quote: str
    text: str
    score: float
    publisher: str = ""
    url: str = ""
    start: int = 0  # the chunk's offsets in the cleaned article
    end: int = 0
    quote_spans: list[tuple[int, int]] = field(default_factory=list)  # offsets of the quote in `text`

    @classmethod
    def from_passage(cls, n: int, passage: Passage, spans: list[tuple[int, int]]) -> Citation:
        return cls(
            n=n,
            source=passage.source,
            title=passage.title,
            published=passage.published,
            chunk_id=passage.chunk_id,
            quote=" ".join(passage.text[a:b] for a, b in spans),
            text=passage.text,
            score=round(passage.similarity, 4),
            publisher=passage.publisher,
            url=passage.url,
            start=passage.start,
            end=passage.end,
            quote_spans=spans,
        )


@dataclass
class Answer:
    question: str
    answer: str
    abstained: bool
    citations: list[Citation]
    backend: str
    timings: dict[str, float]
    searched: str = ""  # the question as searched, after a follow-up was rewritten
    fallback: str | None = None  # why an LLM answer was replaced by the extractive one
    nearest: list[Citation] = field(default_factory=list)  # closest passages when abstaining
    confidence: float | None = None  # the estimated chance that the answer (or the refusal) is right
    hidden_by_filter: bool = False  # refused because the date or publisher filter hid the articles
    model: str = ""  # the language model that wrote the answer ("" for the extractive answerer)
    backend_reason: str = ""  # with RAG_LLM=auto: why this backend answered
    attributed: list[str] = field(default_factory=list)  # LLM sentences written uncited, cited after the fact
    dropped: list[str] = field(default_factory=list)  # LLM sentences no passage supports, left out
    answerable: float | None = None  # the model's chance that the passages state the answer (the check)
    draft: str = ""  # the model's answer as it wrote it, before the check ("" when no model wrote one)

    def answered_by(self) -> str:
        """Which model answered, in words; for the extractive answerer chosen by RAG_LLM=auto,
        also why no model did."""
        if self.model:
            return self.model
        if self.backend_reason:
            return f"{self.backend} ({self.backend_reason})"
        return self.backend

    def to_dict(self) -> dict:
        data = asdict(self)
        for citation in data["citations"] + data["nearest"]:
            citation["quote_spans"] = [list(span) for span in citation["quote_spans"]]
        if self.fallback is None:
            del data["fallback"]
        for key in ("attributed", "dropped", "draft"):
            if not data[key]:
                del data[key]
        if self.answerable is None:
            del data["answerable"]
        return data


def supporting_spans(claim: str, passage: Passage, question: str) -> list[tuple[int, int]]:
    """The sentence of the passage that best supports a claim: the one sharing the most words and
    numbers with it that the question did not give, then the most words and numbers of any kind.
    A claim that says the question back ("Lakhani, the KSE's chairman, dismissed fears ...") is
    supported by the sentence that gives its answer, not by the one that repeats the question.
    A quoted claim finds itself."""
    claim = strip_citations(claim)  # "[1]" is no number 1 to look for
    asked, asked_numbers = set(textlib.content_stems(question)), textlib.numbers(question)
    claim_stems, claim_numbers = set(textlib.content_stems(claim)), textlib.numbers(claim)
    best, best_overlap = None, (0, 0)
    for span in split_sentences(passage.text):
        sentence = passage.text[span.start : span.end]
        words = claim_stems & set(textlib.content_stems(sentence))
        numbers = claim_numbers & textlib.numbers(sentence)  # a number counts as two words
        overlap = (len(words - asked) + 2 * len(numbers - asked_numbers), len(words) + 2 * len(numbers))
        if overlap > best_overlap:
            best, best_overlap = (span.start, span.end), overlap
    return [best] if best else []
