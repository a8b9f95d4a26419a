"""The offline answerer: it picks the sentences of the retrieved passages that answer the question.

Each sentence is scored by embedding similarity to the question, by weighted word overlap, by
whether it carries the kind of answer asked for (a number for "how much", a date for "when", a
name for "who") and by whether it mentions the question's names, acronyms and numbers. It
abstains when no passage mentions a key term, when no sentence near the question's terms has the
kind of answer wanted, or when the best evidence is weak. It never writes a word of its own into
a claim: every sentence of the answer is quoted from a passage.
"""

from __future__ import annotations

import math
import re
import threading
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from rag import text as textlib
from rag.chunking import split_sentences
from rag.citations import REFUSAL, cite
from rag.embeddings import Embedder
from rag.retrieve import Passage, Retrieval

# Weights of the sentence score; they sum to 1 so the score reads like a similarity.
W_SIMILARITY, W_OVERLAP, W_KEY_TERMS, W_CUE = 0.45, 0.25, 0.15, 0.15
MIN_SCORE = 0.42  # below this the best sentence is too weak a match to state as an answer
MIN_SIMILARITY = 0.30  # cosine of the best sentence, whatever its word overlap
EXTRA_SENTENCE_RATIO = 0.8  # a second sentence must score this close to the best one
MAX_SENTENCES = {"list": 3, "compare": 3}
DEFAULT_MAX_SENTENCES = 2

_ANSWER_KINDS = [
    ("compare", re.compile(r"\b(which|what) (came|happened|was) (first|earlier|later|last)\b|\bbefore or after\b"
                           r"|\bearlier or later\b|\bhow long (after|before)\b", re.I)),
    ("number", re.compile(r"\bhow (many|much|large|big|long)\b|\bwhat (percentage|percent|share|proportion|"
                          r"amount|sum|number|figure|value|size)\b|\bby how much\b|\bwhat was the (size|value|"
                          r"total)\b", re.I)),
    ("date", re.compile(r"^\s*when\b|\b(what|which) (date|day|year|month)\b|\bon what (date|day)\b", re.I)),
    ("person", re.compile(r"^\s*who\b|\bwhich (minister|official|leader|secretary|president|person|people|"
                          r"officials|leaders)\b|\bwhose\b", re.I)),
    ("list", re.compile(r"^\s*(which|what) (\w+ )?(countries|nations|minerals|metals|technologies|areas|"
                        r"sectors|agencies|officials|members|partners|\w+s)\b|\bname (the|all|some)\b|^\s*list\b",
                        re.I)),
]
_PERSON_RE = re.compile(r"(?<!^)(?<![.!?] )\b[A-Z][a-z]+(?: [A-Z]\.?)?(?: [A-Z][a-z]+)+")


def answer_kind(question: str) -> str:
    for kind, pattern in _ANSWER_KINDS:
        if pattern.search(question):
            return kind
    return "other"


@dataclass
class Sentence:
    passage: int  # index into the retrieval's passages
    start: int  # offsets inside the passage text
    end: int
    text: str
    similarity: float = 0.0
    overlap: float = 0.0
    key_coverage: float = 0.0
    cue: float = 0.0
    missing: list[str] = field(default_factory=list)

    @property
    def score(self) -> float:
        return (
            W_SIMILARITY * self.similarity
            + W_OVERLAP * self.overlap
            + W_KEY_TERMS * self.key_coverage
            + W_CUE * self.cue
        )


@dataclass
class Decision:
    """The sentences to answer with, or why not to answer."""

    sentences: list[Sentence]
    abstain_reason: str | None = None
    kind: str = "other"

    @property
    def abstained(self) -> bool:
        return self.abstain_reason is not None


class SentenceRanker:
    """Scores the sentences of retrieved passages against a question. Both answer paths use it:
    the extractive answerer quotes the best sentences, and the LLM path is shown only them."""

    def __init__(self, embedder: Embedder, cache_size: int = 20000):
        self.embedder = embedder
        self._cache: dict[str, tuple[list, np.ndarray]] = {}
        self._cache_size = cache_size
        self._lock = threading.Lock()

    def rank(self, question: str, retrieval: Retrieval) -> list[Sentence]:
        sentences, vectors = self._sentences(retrieval.passages)
        if not sentences:
            return []
        similarities = vectors @ retrieval.query_vector
        kind = answer_kind(question)
        terms = [t for t in textlib.key_terms(question) if t.required]
        question_stems = set(textlib.content_stems(question))
        idf = _idf([set(textlib.content_stems(s.text)) for s in sentences])
        question_numbers = textlib.numbers(question)
        for i, sentence in enumerate(sentences):
            window = _window(retrieval.passages[sentence.passage], sentence, sentences, i)
            sentence.similarity = float(similarities[i])
            sentence.overlap = _weighted_overlap(question_stems, set(textlib.content_stems(sentence.text)), idf)
            sentence.missing = [t.text for t in terms if not textlib.mentions(window, t)]
            sentence.key_coverage = 1.0 - len(sentence.missing) / len(terms) if terms else 1.0
            sentence.cue = _cue(kind, sentence.text, question_numbers)
        return sorted(sentences, key=lambda s: s.score, reverse=True)

    def _sentences(self, passages: list[Passage]) -> tuple[list[Sentence], np.ndarray]:
        sentences: list[Sentence] = []
        blocks: list[np.ndarray] = []
        seen: set[str] = set()
        for index, passage in enumerate(passages):
            spans, vectors = self._split_and_embed(passage)
            for span, vector in zip(spans, vectors, strict=True):
                text = passage.text[span.start : span.end]
                if text in seen:  # chunk overlap repeats sentences
                    continue
                seen.add(text)
                sentences.append(Sentence(index, span.start, span.end, text))
                blocks.append(vector)
        return sentences, np.vstack(blocks) if blocks else np.zeros((0, 1), dtype=np.float32)

    def _split_and_embed(self, passage: Passage):
        """Sentence vectors are cached per chunk: most questions revisit the same chunks."""
        with self._lock:
            cached = self._cache.get(passage.chunk_id)
        if cached is not None:
            return cached
        spans = split_sentences(passage.text)
        vectors = self.embedder.embed([passage.text[s.start : s.end] for s in spans])
        with self._lock:
            if len(self._cache) >= self._cache_size:
                self._cache.pop(next(iter(self._cache)))
            self._cache[passage.chunk_id] = (spans, vectors)
        return spans, vectors


def _window(passage: Passage, sentence: Sentence, sentences: list[Sentence], i: int) -> str:
    """What a sentence is read with: its article's title and publisher, and the sentence before it
    (which often names who "it" or "the bank" is)."""
    before = sentences[i - 1].text if i > 0 and sentences[i - 1].passage == sentence.passage else ""
    return f"{_about(passage)}\n{before}\n{sentence.text}"


def _about(passage: Passage) -> str:
    return f"{passage.title}\n{passage.publisher}"


def _idf(documents: list[set[str]]) -> dict[str, float]:
    counts = Counter(word for doc in documents for word in doc)
    n = len(documents)
    return {word: math.log(1 + n / (1 + df)) for word, df in counts.items()}


def _weighted_overlap(question: set[str], sentence: set[str], idf: dict[str, float]) -> float:
    if not question:
        return 0.0
    default = max(idf.values(), default=1.0)  # a question word no sentence has is a rare word
    total = sum(idf.get(w, default) for w in question)
    return sum(idf.get(w, default) for w in question & sentence) / total


def _cue(kind: str, sentence: str, question_numbers: set[float]) -> float:
    if kind == "number":
        return 1.0 if _answer_numbers(sentence, question_numbers) else 0.0
    if kind in ("date", "compare"):
        return 1.0 if textlib.has_date(sentence) else 0.0
    if kind == "person":
        return 1.0 if _PERSON_RE.search(sentence) else 0.0
    if kind == "list":
        return 1.0 if sentence.count(",") >= 2 or sentence.lstrip().startswith(("-", "•", "*")) else 0.5
    return 0.0


def _answer_numbers(sentence: str, question_numbers: set[float]) -> set[float]:
    """Numbers in the sentence that could answer: not ones the question already gave, not years."""
    values = textlib.numbers(sentence) - question_numbers
    return {v for v in values if not (1900 <= v <= 2100 and v == int(v))}


class ExtractiveAnswerer:
    def decide(self, question: str, retrieval: Retrieval, ranked: list[Sentence]) -> Decision:
        kind = answer_kind(question)
        if not ranked:
            return Decision([], "no passage was retrieved", kind)
        terms = [t for t in textlib.key_terms(question) if t.required]
        everything = "\n".join(f"{_about(p)}\n{p.text}" for p in retrieval.passages)
        absent = [t.text for t in terms if not textlib.mentions(everything, t)]
        if absent:
            return Decision([], f"no article mentions {_join(absent)}", kind)
        usable = [s for s in ranked if not s.missing]
        if not usable:
            return Decision([], f"no passage mentions {_join([t.text for t in terms])} together", kind)
        if kind == "number":
            usable = [s for s in usable if s.cue > 0]
            if not usable:
                return Decision([], "no passage gives the number asked for", kind)
        best = usable[0]
        if best.score < MIN_SCORE or best.similarity < MIN_SIMILARITY:
            return Decision([], f"the closest passage is a weak match (score {best.score:.2f})", kind)
        return Decision(self._select(best, usable, kind), None, kind)

    def _select(self, best: Sentence, usable: list[Sentence], kind: str) -> list[Sentence]:
        chosen = [best]
        limit = MAX_SENTENCES.get(kind, DEFAULT_MAX_SENTENCES)
        covered = set(textlib.content_stems(best.text))
        for candidate in usable[1:]:
            if len(chosen) >= limit or candidate.score < EXTRA_SENTENCE_RATIO * best.score:
                break
            adds = set(textlib.content_stems(candidate.text)) - covered
            if kind in ("list", "compare") or len(adds) >= 2:
                chosen.append(candidate)
                covered |= adds
        return chosen

    def compose(self, decision: Decision, numbering: dict[int, int]) -> str:
        """The answer text: each chosen sentence, verbatim, followed by its passage's [n]."""
        if decision.abstained:
            return f"{REFUSAL} {decision.abstain_reason[0].upper()}{decision.abstain_reason[1:]}."
        return " ".join(f"{_as_claim(s.text)} {cite(numbering[s.passage])}" for s in decision.sentences)


def _as_claim(sentence: str) -> str:
    sentence = sentence.strip().lstrip("-•* ").strip()
    return sentence if sentence[-1:] in ".!?\"'”’" else sentence + "."


def _join(items: list[str]) -> str:
    items = list(dict.fromkeys(items))
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " or " + items[-1]
