"""Ranking the sentences of the retrieved passages against a question; both answer paths use it.

Each sentence is scored by embedding similarity to the question, by weighted word overlap, by
whether it carries the kind of answer asked for (a number for "how much", a date for "when", a
name for "who") and by whether it mentions the question's names, acronyms and numbers. The
extractive answerer quotes the best sentences; the LLM path is shown only them.
"""

from __future__ import annotations

import math
import re
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from rag.answer import entities
from rag.answer import text as textlib
from rag.answer.conversation import split_follow_up
from rag.answer.question import QuestionShape, question_shape
from rag.answer.retrieve import Passage, Retrieval
from rag.index.embeddings import Embedder
from rag.ingest.chunking import split_sentences

# Weights of the sentence score; they sum to 1 so the score reads like a similarity.
W_SIMILARITY, W_OVERLAP, W_KEY_TERMS, W_CUE = 0.45, 0.25, 0.15, 0.15

ENTITY_POOL = 12  # leading sentences tagged for named entities

# A person is usually introduced by a title: "Secretary of State Marco Rubio", "Minister Piyush Goyal".
_TITLED_PERSON_RE = re.compile(
    r"\b(?:Secretary|Minister|President|Vice President|Prime Minister|Chancellor|Governor|Ambassador|Chair(?:man|woman)?|"
    r"CEO|Director|Representative|Senator|Mr|Ms|Mrs|Dr)\.?(?: of [A-Z][a-z]+(?: [A-Z][a-z]+)*)?"
    r"(?: and [A-Z][a-z]+)?,? [A-Z][a-z]+(?: [A-Z]\.?)? [A-Z][a-z]+"
)
_PLACE_RE = re.compile(r"\b(?:in|at|held in|hosted in)\s+(?:the\s+)?(?:[A-Z][a-z]+'?s?\s+)*[A-Z][a-z]+")
_NAME_PAIR_RE = re.compile(r"(?<!^)\b[A-Z][a-z]+(?: [A-Z]\.?)?(?: [A-Z][a-z]+)+")
_MONEY_RE = re.compile(
    r"(USD|US\$|\$|€|£|EUR|GBP|INR|Rs\.?|yen)\s?\d|\d\s?(billion|million|trillion|bn|mn|crore|lakh)\b"
    r"|\bdollars?\b",
    re.I,
)

_ENUMERATION_RE = re.compile(r"(?:\b(?:such as|like|including|include|includes|namely)\b|:).*,.*\band\b|,.*,")


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
    claim: str = ""  # what the answer shows, when shorter than the sentence it quotes

    @property
    def score(self) -> float:
        return (
            W_SIMILARITY * self.similarity
            + W_OVERLAP * self.overlap
            + W_KEY_TERMS * self.key_coverage
            + W_CUE * self.cue
        )


class Corpus(Protocol):
    """What the answerer may ask of the whole index, beyond the passages retrieved."""

    def mentions(self, term: textlib.KeyTerm, filtered: bool) -> bool: ...

    def idf(self, stems: set[str]) -> dict[str, float]: ...

    def filter_description(self) -> str: ...

    def filtering(self) -> bool: ...

    def spelled_like(self, text: str) -> str | None: ...

    def sentence_vectors(self, chunk_id: str) -> np.ndarray | None: ...


class SentenceRanker:
    """Scores the sentences of retrieved passages against a question. Both answer paths use it:
    the extractive answerer quotes the best sentences, and the LLM path is shown only them."""

    def __init__(self, embedder: Embedder, corpus: Corpus | None = None, cache_size: int = 2000):
        self.embedder = embedder
        # Word rarity comes from the whole corpus when there is one, so that which sentence wins
        # does not depend on which other passages happened to be retrieved beside it.
        self.corpus = corpus
        self._cache: dict[str, tuple[list, np.ndarray]] = {}
        self._cache_size = cache_size
        self._lock = threading.Lock()

    def rank(self, question: str, retrieval: Retrieval) -> list[Sentence]:
        sentences, vectors = self._sentences(retrieval.passages)
        if not sentences:
            return []
        similarities = vectors @ retrieval.query_vector
        shape = question_shape(question)
        stems = [set(textlib.content_stems(s.text)) for s in sentences]
        idf = self.corpus.idf(shape.stems) if self.corpus else idf_of(stems)
        for i, sentence in enumerate(sentences):
            window = _window(retrieval.passages[sentence.passage], sentence, sentences, i)
            sentence.similarity = float(similarities[i])
            sentence.overlap = weighted_overlap(shape.stems, stems[i], idf)
            sentence.missing = [t.text for t in shape.terms if not textlib.mentions(window, t)]
            sentence.key_coverage = 1.0 - len(sentence.missing) / len(shape.terms) if shape.terms else 1.0
            sentence.cue = _cue(shape, sentence.text)
        ranked = sorted(sentences, key=lambda s: s.score, reverse=True)
        if shape.kind in entities.LABELS_FOR_KIND:
            ranked = _with_entity_cues(ranked, shape.kind, split_follow_up(question)[0])
        return ranked

    def _sentences(self, passages: list[Passage]) -> tuple[list[Sentence], np.ndarray]:
        split = self._split_and_embed(passages)
        sentences: list[Sentence] = []
        blocks: list[np.ndarray] = []
        seen: set[str] = set()
        for index, passage in enumerate(passages):
            spans, vectors = split[passage.chunk_id]
            for span, vector in zip(spans, vectors, strict=True):
                text = passage.text[span.start : span.end]
                # Chunk overlap repeats sentences; and one addressed to an assistant is no answer.
                if text in seen or textlib.addressed_to_assistant(text):
                    continue
                seen.add(text)
                sentences.append(Sentence(index, span.start, span.end, text))
                blocks.append(vector)
        return sentences, np.vstack(blocks) if blocks else np.zeros((0, 1), dtype=np.float32)

    def _split_and_embed(self, passages: list[Passage]) -> dict[str, tuple[list, np.ndarray]]:
        """Sentence spans and vectors per chunk: the vectors the ingest stored, or else (an index
        built before it stored them) read in context here, once per chunk and cached."""
        found = {}
        for passage in passages:
            spans = split_sentences(passage.text)
            stored = self.corpus.sentence_vectors(passage.chunk_id) if self.corpus else None
            if stored is not None and len(stored) == len(spans):
                found[passage.chunk_id] = (spans, stored)
        with self._lock:
            found |= {p.chunk_id: self._cache[p.chunk_id] for p in passages if p.chunk_id in self._cache}
        fresh = {p.chunk_id: p for p in passages if p.chunk_id not in found}
        if fresh:
            found |= self._read_in_context(list(fresh.values()))
            with self._lock:
                for cid in fresh:
                    if len(self._cache) >= self._cache_size:
                        self._cache.pop(next(iter(self._cache)))
                    self._cache[cid] = found[cid]
        return found

    def _read_in_context(self, passages: list[Passage]) -> dict[str, tuple[list, np.ndarray]]:
        """The same vectors an ingest stores: each passage read whole, as it was embedded (title,
        newline, chunk), its sentences pooled from that one reading."""
        spans = [split_sentences(p.text, offset=len(p.title) + 1) for p in passages]
        _, vectors = self.embedder.embed_with_sentences(
            [f"{p.title}\n{p.text}" for p in passages], [[(s.start, s.end) for s in row] for row in spans]
        )
        return {
            p.chunk_id: (split_sentences(p.text), sentence_vectors)
            for p, sentence_vectors in zip(passages, vectors, strict=True)
        }


def _with_entity_cues(ranked: list[Sentence], kind: str, question: str) -> list[Sentence]:
    """For "who", "where", "which company" and "when" questions, the cue of the leading sentences
    is whether a named-entity tagger finds a person (place, organisation, date) in them that the
    question does not already name. Only the leading ones are tagged, to keep answers fast."""
    for sentence in ranked[:ENTITY_POOL]:
        sentence.cue = 1.0 if entities.answers_kind(sentence.text, kind, question) else 0.0
    for sentence in ranked[ENTITY_POOL:]:
        sentence.cue = 0.0
    return sorted(ranked, key=lambda s: s.score, reverse=True)


def _window(passage: Passage, sentence: Sentence, sentences: list[Sentence], i: int) -> str:
    """What a sentence is read with: its article's title and publisher, and the sentence before it
    (which often names who "it" or "the bank" is)."""
    before = sentences[i - 1].text if i > 0 and sentences[i - 1].passage == sentence.passage else ""
    return f"{passage_about(passage)}\n{before}\n{sentence.text}"


def passage_about(passage: Passage) -> str:
    """What the article says of itself: a question's year may be only in its date."""
    return f"{passage.title}\n{passage.publisher}\n{passage.published}\n{passage.lede}"


def idf_of(documents: list[set[str]]) -> dict[str, float]:
    counts = Counter(word for doc in documents for word in doc)
    n = len(documents)
    return {word: math.log(1 + n / (1 + df)) for word, df in counts.items()}


def weighted_overlap(question: set[str], sentence: set[str], idf: dict[str, float]) -> float:
    if not question:
        return 0.0
    default = max(idf.values(), default=1.0)  # a question word no sentence has is a rare word
    total = sum(idf.get(w, default) for w in question)
    return sum(idf.get(w, default) for w in question & sentence) / total


def _cue(shape: QuestionShape, sentence: str) -> float:
    """How well the sentence carries the kind of answer asked for, from 0 to 1."""
    if shape.kind == "number":
        return _number_cue(shape, sentence)
    if shape.kind in ("date", "compare"):
        return 1.0 if textlib.has_date(sentence) else 0.0
    if shape.kind == "person":
        return 1.0 if _TITLED_PERSON_RE.search(sentence) else 0.5 if _NAME_PAIR_RE.search(sentence) else 0.0
    if shape.kind == "place":
        return 1.0 if _PLACE_RE.search(sentence) else 0.0
    if shape.kind == "list":
        return _list_cue(shape, sentence)
    if shape.kind == "definition":
        return 1.0 if any(_defines(sentence, t.text) for t in shape.terms if t.kind == "acronym") else 0.0
    return 0.0


def _defines(sentence: str, acronym: str) -> bool:
    """ "Forum on Resource Geostrategic Engagement (FORGE)": a name followed by its acronym."""
    return (
        re.search(r"[A-Z][\w\-]*(?:\s+[\w\-]+){0,8}\s+\(\s*['‘\"]?" + re.escape(acronym) + r"\b", sentence)
        is not None
    )


def _list_cue(shape: QuestionShape, sentence: str) -> float:
    enumerates = bool(_ENUMERATION_RE.search(sentence)) or sentence.rstrip().endswith(":")
    names_focus = bool(set(shape.focus) & set(textlib.content_stems(sentence)))
    return 1.0 if enumerates and names_focus else 0.5 if enumerates else 0.0


def _number_cue(shape: QuestionShape, sentence: str) -> float:
    if not answer_numbers(sentence, shape.numbers):
        return 0.0
    # "43 foreign ministers" for "how many foreign ministers"; "profits jumped 76% to $1.13bn"
    # for "how much profit", where "sales rose to $11.1bn" has an amount but not the one asked for.
    if shape.focus and _number_near_focus(sentence, shape.focus, after=not shape.counts):
        return 1.0
    if shape.wants_money and _MONEY_RE.search(sentence):
        return 0.75
    return 0.5


def _number_near_focus(sentence: str, focus: list[str], after: bool) -> bool:
    """A number just before the thing asked about ("43 ministers"), or, when `after`, a few words
    after it ("profits ... jumped 76% to $1.13bn")."""
    lowered = [t.lower() for t in re.findall(r"\d[\d,.]*|[A-Za-z]+", sentence)]
    focus_stems = set(focus)
    for i, token in enumerate(lowered):
        if token[0].isdigit() or token in textlib.NUMBER_WORDS:
            if focus_stems & set(textlib.content_stems(" ".join(lowered[i + 1 : i + 4]))):
                return True
            if after and focus_stems & set(textlib.content_stems(" ".join(lowered[max(0, i - 8) : i]))):
                return True
    return False


def answer_numbers(sentence: str, question_numbers: set[float]) -> set[float]:
    """Numbers in the sentence that could answer: not ones the question already gave, not years,
    not number words inside names ("the Six Nations", "Channel Five")."""
    values = textlib.numbers(_NAMED_NUMBER_RE.sub(" ", sentence)) - question_numbers
    return {v for v in values if not (1900 <= v <= 2100 and v == int(v))}


_NAMED_NUMBER_RE = re.compile(
    r"(?<=[\w,;] )(?:" + "|".join(w.capitalize() for w in textlib.NUMBER_WORDS) + r")\b"
    r"|\b(?:" + "|".join(w.capitalize() for w in textlib.NUMBER_WORDS) + r")(?= [A-Z])"
)
