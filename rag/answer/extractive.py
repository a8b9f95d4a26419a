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
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Protocol

import numpy as np

from rag.answer import entities
from rag.answer import text as textlib
from rag.answer.citations import REFUSAL, cite
from rag.answer.conversation import split_follow_up
from rag.answer.retrieve import Passage, Retrieval
from rag.index.embeddings import Embedder
from rag.ingest.chunking import split_sentences

# Weights of the sentence score; they sum to 1 so the score reads like a similarity.
W_SIMILARITY, W_OVERLAP, W_KEY_TERMS, W_CUE = 0.45, 0.25, 0.15, 0.15
MIN_SCORE = 0.42  # below this the best sentence is too weak a match to state as an answer
MIN_SIMILARITY = 0.30  # cosine of the best sentence, whatever its word overlap
EXTRA_SENTENCE_RATIO = 0.8  # a second sentence must score this close to the best one
NEXT_SENTENCE_RATIO = 0.6  # ... or this close, when it is the sentence right after the best one
TYPED_ANSWER_RATIO = 0.7  # how far below the best a sentence with the wanted kind of answer may score
PAIR_POOL = 10  # sentences searched for a pair that answers a two-part question
ENTITY_POOL = 12  # leading sentences tagged for named entities
LONG_SENTENCE_CHARS = 200  # above this, a numeric answer is cut down to its clause
_CLAUSE_BREAK = re.compile(r",\s+(?:and\s+|including\s+)?|;\s+")
MAX_SENTENCES = {"list": 3, "compare": 3}
DEFAULT_MAX_SENTENCES = 2

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
_FOCUS_RE = re.compile(
    r"\bhow (?:many|much) ((?:[a-z\-]+\s*){1,2})|\b(?:which|what)\s+(?:(?:kinds?|sorts?|types?) of\s+)?((?:[a-z\-]+\s*){1,2})",
    re.I,
)
_MULTI_PART_RE = re.compile(
    r"\bboth\b|,? and (?:which|what|who|whom|how|when|where|why)\b|\?.+\?|[A-Z][\w\-]* and (?:the |in the )?[A-Z]"
)
_EXCLUSION_RE = re.compile(r"\b(?:besides|apart from|other than|aside from|except for|except)\b[^,?]*", re.I)
_NOT_A_FOCUS = frozenset("did does do is are was were has have had will would can could".split())
_ENUMERATION_RE = re.compile(r"(?:\b(?:such as|like|including|include|includes|namely)\b|:).*,.*\band\b|,.*,")


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
            negated=_negated(question),
            counts=bool(re.search(r"\bhow many\b", question, re.I)) and bool(_focus(question)),
            wants_money=bool(
                re.search(r"\bhow much\b|\bwhat amount\b|\bsum\b|\bmoney\b|\bfund", question, re.I)
            ),
        )

    def allowed_missing(self) -> int:
        """Long questions name more things than any one sentence repeats; short ones must match."""
        return len(self.terms) // 4


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


@dataclass
class Decision:
    """The sentences to answer with, or why not to answer."""

    sentences: list[Sentence]
    abstain_reason: str | None = None
    kind: str = "other"
    hard: bool = False  # refused before any candidate was weighed (nothing in the index to quote)
    hidden_by_filter: bool = False  # ... because the filters hid the articles that mention the question's names
    signals: dict[str, float] = field(default_factory=dict)  # what the confidence model reads
    concerns: list[str] = field(default_factory=list)  # what speaks against the candidate
    confidence: float | None = None

    @property
    def abstained(self) -> bool:
        return self.abstain_reason is not None

    def withhold(self, confidence: float) -> Decision:
        """The same candidate, refused for low confidence, with the first concern as the reason."""
        reason = self.concerns[0] if self.concerns else "the closest passages do not clearly answer it"
        return replace(self, abstain_reason=reason, confidence=confidence)


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
        idf = self.corpus.idf(shape.stems) if self.corpus else _idf(stems)
        for i, sentence in enumerate(sentences):
            window = _window(retrieval.passages[sentence.passage], sentence, sentences, i)
            sentence.similarity = float(similarities[i])
            sentence.overlap = _weighted_overlap(shape.stems, stems[i], idf)
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
    return f"{_about(passage)}\n{before}\n{sentence.text}"


def _about(passage: Passage) -> str:
    """What the article says of itself: a question's year may be only in its date."""
    return f"{passage.title}\n{passage.publisher}\n{passage.published}\n{passage.lede}"


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
    if not _answer_numbers(sentence, shape.numbers):
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


def _answer_numbers(sentence: str, question_numbers: set[float]) -> set[float]:
    """Numbers in the sentence that could answer: not ones the question already gave, not years,
    not number words inside names ("the Six Nations", "Channel Five")."""
    values = textlib.numbers(_NAMED_NUMBER_RE.sub(" ", sentence)) - question_numbers
    return {v for v in values if not (1900 <= v <= 2100 and v == int(v))}


_NAMED_NUMBER_RE = re.compile(
    r"(?<=[\w,;] )(?:" + "|".join(w.capitalize() for w in textlib.NUMBER_WORDS) + r")\b"
    r"|\b(?:" + "|".join(w.capitalize() for w in textlib.NUMBER_WORDS) + r")(?= [A-Z])"
)


class ExtractiveAnswerer:
    """Finds the best candidate answer and the signals that say how far to trust it. Only a name,
    acronym or number that no article in the whole index mentions ends the search early: that
    refusal is true of the corpus. Everything softer is left to the confidence model."""

    def decide(
        self, question: str, retrieval: Retrieval, ranked: list[Sentence], corpus: Corpus | None = None
    ) -> Decision:
        shape = question_shape(question)
        if not ranked:
            return _nothing_retrieved(shape, corpus)
        everything = "\n".join(f"{_about(p)}\n{p.text}" for p in retrieval.passages)
        absent_here = [t for t in shape.terms if not textlib.mentions(everything, t)]
        refusal, hidden_by_filter = _absence_refusal(absent_here, corpus)
        if refusal:
            return Decision([], refusal, shape.kind, hard=True, hidden_by_filter=hidden_by_filter)
        best, chosen, concerns = self._candidate(shape, ranked)
        if absent_here:
            concerns.insert(0, f"the articles mention {_join([t.text for t in absent_here], 'and')}, "
                            "but the passages that match the question do not")
        chosen = [_focused(_with_list_items(s, retrieval.passages[s.passage]), shape) for s in chosen]
        signals = _signals(shape, retrieval, best, chosen, ranked, absent_here, corpus)
        return Decision(chosen, None, shape.kind, signals=signals, concerns=concerns)

    def _candidate(self, shape: QuestionShape, ranked: list[Sentence]):
        """The best sentence, the sentences to answer with, and what speaks against them."""
        concerns: list[str] = []
        candidates = [s for s in ranked if len(s.missing) <= shape.allowed_missing()]
        if not candidates:
            pair = _covering_pair(ranked, shape) if shape.multi_part else None
            if pair:
                return pair[0], pair, concerns
            concerns.append(f"no passage mentions {_join([t.text for t in shape.terms], 'and')} together")
            candidates = ranked
        if shape.kind == "number":
            # "How many foreign ministers" is answered by "43 foreign ministers", not by any number.
            typed = [s for s in candidates if s.cue >= (1.0 if shape.counts else 0.5)]
            if typed:
                candidates = typed
            else:
                concerns.append("no passage gives the number asked for")
        best = _prefer_typed_answer(candidates)
        if best.score < MIN_SCORE or best.similarity < MIN_SIMILARITY:
            concerns.append(f"the closest passage is a weak match (score {best.score:.2f})")
        return best, self._select(best, ranked, shape), concerns

    def _select(self, best: Sentence, ranked: list[Sentence], shape: QuestionShape) -> list[Sentence]:
        """Add sentences that are nearly as good and bring question words the answer lacks so
        far: the second half of a two-part question, the other article of a comparison. The
        sentence right after the best one may score lower: it often completes it ("Project Vault
        was announced... The EXIM Board approved a loan of USD 10 billion")."""
        chosen = [best]
        limit = MAX_SENTENCES.get(shape.kind, DEFAULT_MAX_SENTENCES)
        covered = shape.stems & set(textlib.content_stems(best.text))
        for candidate in ranked:
            if len(chosen) >= limit or candidate.score < NEXT_SENTENCE_RATIO * best.score:
                break
            follows = candidate.passage == best.passage and 0 <= candidate.start - best.end <= 3
            if candidate is best or (candidate.score < EXTRA_SENTENCE_RATIO * best.score and not follows):
                continue
            adds = (shape.stems & set(textlib.content_stems(candidate.text))) - covered
            listing = shape.kind in ("list", "compare") and candidate.cue >= 1.0
            if adds or listing:
                chosen.append(candidate)
                covered |= adds
        return chosen

    def compose(self, decision: Decision, numbering: dict[int, int]) -> str:
        """The answer text: each chosen sentence, verbatim, followed by its passage's [n]."""
        if decision.abstained:
            return f"{REFUSAL} {decision.abstain_reason[0].upper()}{decision.abstain_reason[1:]}."
        return " ".join(
            f"{_as_claim(s.claim or s.text)} {cite(numbering[s.passage])}" for s in decision.sentences
        )


_NEGATION_RE = re.compile(r"\b(?:not|never|no|none|neither|nor|without)\b|n't\b", re.I)


def _negated(text: str) -> bool:
    return _NEGATION_RE.search(text) is not None


def _share_named(stems: list[str], sentence: str) -> float:
    if not stems:
        return 1.0
    return len(set(stems) & set(textlib.content_stems(sentence))) / len(set(stems))


def _nothing_retrieved(shape: QuestionShape, corpus: Corpus | None) -> Decision:
    """With filters on, an empty retrieval means the filters let no article through: the index
    itself is not empty (a missing index fails before the answerer is asked)."""
    if corpus is None or not corpus.filtering():
        return Decision([], "no passage was retrieved", shape.kind, hard=True)
    reason = (f"no article within the {corpus.filter_description()} matches the question (a date filter "
              "leaves out undated articles): ask again without the filter")
    return Decision([], reason, shape.kind, hard=True, hidden_by_filter=True)


def _absence_refusal(absent_here: list[textlib.KeyTerm], corpus: Corpus | None) -> tuple[str | None, bool]:
    """ "No article mentions X", said only when it is true of the whole index, or of what the
    filters let through (then the reason says so, and the second value is True)."""
    if not absent_here:
        return None, False
    if corpus is None:
        return f"no article mentions {_join([t.text for t in absent_here])}", False
    nowhere = [t.text for t in absent_here if not corpus.mentions(t, filtered=False)]
    if nowhere:
        suggestions = [s for s in map(corpus.spelled_like, nowhere) if s]
        hint = f" (did you mean {_join(suggestions)}?)" if suggestions else ""
        return f"no article mentions {_join(nowhere)}{hint}", False
    hidden = [t.text for t in absent_here if not corpus.mentions(t, filtered=True)]
    if hidden:
        reason = (
            f"no article within the {corpus.filter_description()} mentions {_join(hidden)}, "
            "though other articles in the index do: ask again without the filter"
        )
        return reason, True
    return None, False


def _signals(
    shape: QuestionShape,
    retrieval: Retrieval,
    best: Sentence,
    chosen: list[Sentence],
    ranked: list[Sentence],
    absent_here: list,
    corpus: Corpus | None,
) -> dict[str, float]:
    """What the confidence model reads about a candidate (rag/answer/confidence.py names each one)."""
    passage = retrieval.passages[best.passage]
    passage_stems = set(textlib.content_stems(f"{_about(passage)}\n{passage.text}"))
    idf = corpus.idf(shape.stems) if corpus else _idf([passage_stems])
    ceiling = max(idf.values(), default=1.0) or 1.0
    missing = shape.stems - passage_stems
    missing_here = shape.stems - set(textlib.content_stems(best.text))
    typed = shape.kind in ("number", "date", "person", "place", "organisation", "definition")
    return {
        "score": best.score,
        "similarity": best.similarity,
        "overlap": best.overlap,
        "answer_overlap": _weighted_overlap(
            shape.stems, set(textlib.content_stems(" ".join(s.text for s in chosen))), idf
        ),
        "passage_overlap": _weighted_overlap(shape.stems, passage_stems, idf),
        "rarest_missing": max((idf.get(w, ceiling) for w in missing), default=0.0) / ceiling,
        "rarest_missing_sentence": max((idf.get(w, ceiling) for w in missing_here), default=0.0) / ceiling,
        "key_coverage": best.key_coverage,
        "cue": best.cue,
        "asked_for_named": _share_named(shape.asked_for, best.text),
        "negation_mismatch": float(shape.negated != _negated(best.text)),
        "typed": float(typed),
        "typed_without_cue": float(typed and best.cue == 0),
        "top_similarity": max(p.similarity for p in retrieval.passages),
        "absent_here": float(bool(absent_here)),
        "apart": float(not any(len(s.missing) <= shape.allowed_missing() for s in ranked)),
    }


def _as_claim(sentence: str) -> str:
    """A quoted sentence as an answer line: list lines joined with semicolons, one full stop."""
    lines = [line.strip().lstrip("-•* ").strip() for line in sentence.strip().split("\n")]
    claim = lines[0] + " " + "; ".join(lines[1:]) if len(lines) > 1 else lines[0]
    return claim if claim[-1:] in ".!?\"'”’…" else claim + "."


def _covering_pair(ranked: list[Sentence], shape: QuestionShape) -> list[Sentence] | None:
    """Two strong sentences that together mention every key term of a two-part question."""
    strong = [s for s in ranked[:PAIR_POOL] if s.score >= MIN_SCORE and s.similarity >= MIN_SIMILARITY]
    for first in strong:
        for second in strong:
            if (
                second is not first
                and len(set(first.missing) & set(second.missing)) <= shape.allowed_missing()
            ):
                return [first, second]
    return None


def _prefer_typed_answer(candidates: list[Sentence]) -> Sentence:
    """A sentence with the kind of answer asked for (the number, the date, the place) beats a
    slightly closer one without it: "54 countries" does not answer "how many foreign ministers"."""
    best = candidates[0]
    strongest_cue = max(s.cue for s in candidates)
    if best.cue >= strongest_cue:
        return best
    typed = [
        s
        for s in candidates
        if s.cue == strongest_cue
        and s.score >= TYPED_ANSWER_RATIO * best.score
        and s.similarity >= MIN_SIMILARITY
    ]
    return typed[0] if typed else best


def _focused(sentence: Sentence, shape: QuestionShape) -> Sentence:
    """A long sentence listing several amounts answers "how much went to Brazil?" with its opening
    clause and the one clause about Brazil, both verbatim, rather than the whole list."""
    if shape.kind != "number" or len(sentence.text) < LONG_SENTENCE_CHARS:
        return sentence
    lead, *clauses = _CLAUSE_BREAK.split(sentence.text)
    # The clause must carry what the question names that the sentence's opening does not.
    named_here = [
        t for t in shape.terms if textlib.mentions(sentence.text, t) and not textlib.mentions(lead, t)
    ]
    if not named_here:
        return sentence
    wanted = [
        clause
        for clause in clauses
        if _answer_numbers(clause, shape.numbers) and all(textlib.mentions(clause, t) for t in named_here)
    ]
    if len(wanted) != 1:
        return sentence
    opening = "" if _answer_numbers(lead, shape.numbers) else lead + " "
    return replace(sentence, claim=f"{opening}… {wanted[0].rstrip('.')} …")


def _with_list_items(sentence: Sentence, passage: Passage) -> Sentence:
    """A sentence that introduces a list ("including:") is nothing without the list after it."""
    if not sentence.text.rstrip().endswith(":"):
        return sentence
    end = sentence.end
    for line in passage.text[sentence.end :].split("\n")[1:]:
        if not line.lstrip().startswith(("-", "•", "*")):
            break
        end += len(line) + 1
    return replace(sentence, end=end, text=passage.text[sentence.start : end])


def _join(items: list[str], word: str = "or") -> str:
    items = list(dict.fromkeys(items))
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + f" {word} " + items[-1]
