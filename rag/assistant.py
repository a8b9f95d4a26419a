"""The public API: `Assistant.from_settings(settings).ask(question)`.

The CLI, the chat and the eval all go through `Assistant.stream`, which yields the retrieved
sources first, then the answer's text as it is written, then the finished `Answer`.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

from rag.answer import entities
from rag.answer.answerability import ChanceRight, load_threshold
from rag.answer.citations import CITATION_RE, REFUSAL, cite
from rag.answer.confidence import MODEL_FILE, ConfidenceModel
from rag.answer.conversation import rewrite_follow_up
from rag.answer.extractive import Decision, ExtractiveAnswerer
from rag.answer.ranking import Sentence, SentenceRanker
from rag.answer.result import Answer, Citation, supporting_spans
from rag.answer.retrieve import CorpusView, Filters, Passage, Retrieval, Retriever
from rag.answer.spelling import model_words
from rag.index.embeddings import load_embedder
from rag.settings import Backend, RetrievalMode, Settings

NEAREST_ON_ABSTAIN = 3
_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
# A question pasted from a terminal may carry colour codes ("\x1b[31m"): dropping only the ESC would
# leave "[31m" behind, and its number would be searched for as a key fact of the question.
# CSI sequences (colours, cursor moves), OSC ones (window titles), then two-character escapes.
_ANSI_ESCAPES = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-Z\\-_]")


class QuestionError(ValueError):
    """A question that cannot be searched; the message is meant for the user."""


@dataclass
class Sources:
    passages: list[Passage]
    searched: str


@dataclass
class Provisional:
    """The extractive answer, shown while a model reads the passages: the model's answer replaces
    it once written and checked. `tentative`: the extractive answerer alone would withhold this
    candidate (its confidence is low)."""

    text: str
    tentative: bool = False


@dataclass
class Token:
    text: str


@dataclass
class Replace:
    """The streamed draft is withdrawn (an LLM answer failed validation); `text` replaces it."""

    text: str
    reason: str


@dataclass
class Final:
    answer: Answer
    decision: Decision | None = None  # the extractive candidate and its signals (the eval reads them)


Event = Sources | Provisional | Token | Replace | Final


@dataclass
class ModelRead:
    """What an LLM answer adds to the Answer: the answerability check's verdict, the answer as the
    model wrote it, and its sentences written uncited that were attributed after the fact or dropped."""

    answerable: float | None = None
    attributed: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    draft: str = ""


def is_valid_text(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def clean_question(question: str | None, max_chars: int) -> str:
    if question is not None and not isinstance(question, str):
        raise QuestionError(f"The question must be text, not {type(question).__name__} ({str(question)[:60]}).")
    question = _CONTROL_CHARS.sub(" ", _ANSI_ESCAPES.sub("", question or "")).strip()
    if not is_valid_text(question):
        # Lone surrogates (a terminal's undecodable bytes, or JSON's "\ud800") cannot be printed,
        # searched or sent back as JSON; the message must not echo them either.
        raise QuestionError(
            "The question holds characters that are not valid text (bytes that are not UTF-8, or a "
            "lone surrogate such as \\ud800): please type it again."
        )
    if not question:
        raise QuestionError("Please type a question: this one is empty.")
    if len(question) > max_chars:
        raise QuestionError(
            f"That question is {len(question):,} characters long; the limit is {max_chars:,}. "
            "Ask about one thing at a time."
        )
    return re.sub(r"\s+", " ", question)


class Assistant:
    def __init__(
        self, settings: Settings, retriever: Retriever | None = None, confidence: ConfidenceModel | None = None
    ):
        self.settings = settings
        self.embedder = load_embedder(settings.embed_model, settings.embed_batch_size)
        self.retriever = retriever or Retriever(settings, self.embedder)
        self.ranker = SentenceRanker(self.embedder, CorpusView(self.retriever, Filters()))
        self.extractive = ExtractiveAnswerer()
        self.confidence = confidence or ConfidenceModel.load(MODEL_FILE)
        self.answerable_threshold = settings.llm_answerable_threshold
        if self.answerable_threshold is None:
            self.answerable_threshold = load_threshold()
        self.chance_right = ChanceRight.load()
        self._chat_backends: dict[str, object] = {}
        self._auto: tuple[Backend, str] | None = None  # what RAG_LLM=auto resolved to, and why
        self._resolving = threading.Lock()  # questions asked at once resolve `auto` once, not each

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> Assistant:
        return cls(settings or Settings())

    def warm_up(self) -> None:
        """Load the named-entity tagger now (spaCy takes seconds) rather than at the first question."""
        entities.tag(["Warm up."])

    def ask(self, question: str, **options) -> Answer:
        for event in self.stream(question, **options):
            if isinstance(event, Final):
                return event.answer
        raise RuntimeError("the answer stream ended without an answer")

    def search(
        self,
        question: str,
        k: int | None = None,
        filters: Filters | None = None,
        mode: RetrievalMode | None = None,
    ) -> Retrieval:
        return self.retriever.search(
            clean_question(question, self.settings.max_question_chars), k, filters, mode
        )

    def stream(
        self,
        question: str,
        history: list[str] | None = None,
        k: int | None = None,
        filters: Filters | None = None,
        backend: Backend | None = None,
        mode: RetrievalMode | None = None,
    ) -> Iterator[Event]:
        started = time.perf_counter()
        question = clean_question(question, self.settings.max_question_chars)
        filters = filters or Filters.from_settings(self.settings)
        self._check_filters(filters)
        backend, backend_reason = self._resolve(backend or self.settings.llm)
        # Built now, on the first question, so a misconfigured or unreachable model fails at once,
        # even when the answer would have abstained without it.
        chat = None if backend == "extractive" else self._chat_backend(backend)
        searched = self._spelled(self._rewrite(question, history or [], chat))
        retrieval = self.retriever.search(searched, k, filters, mode)
        timings = {"retrieve_ms": _ms_since(started), **retrieval.timings}
        yield Sources(retrieval.passages, searched)

        generating = time.perf_counter()
        retrieval = self.retriever.with_neighbours(retrieval)
        ranked = self.ranker.rank(searched, retrieval)
        corpus = CorpusView(self.retriever, filters)
        decision = self._judge(self.extractive.decide(searched, retrieval, ranked, corpus))
        timings["rank_ms"] = _ms_since(generating)
        read = ModelRead()
        # Only a refusal true of the whole index ("no article mentions X") keeps the question from
        # a model: a candidate the confidence withheld may still be read by the model, which may refuse.
        if decision.hard or chat is None:
            text, fallback = yield from _first_token_timed(self._extractive(decision, retrieval), timings, started)
        else:
            if decision.sentences:
                yield self._provisional(decision)
            llm_answer = self._llm(chat, searched, retrieval, ranked, decision, read, timings)
            text, fallback = yield from _first_token_timed(llm_answer, timings, started)
        timings["generate_ms"] = _ms_since(generating)
        timings["total_ms"] = _ms_since(started)
        answer = self._finish(question, searched, text, retrieval, ranked, decision, backend, timings, fallback)
        answer.attributed, answer.dropped, answer.answerable = read.attributed, read.dropped, read.answerable
        answer.draft = read.draft
        answer.backend_reason = backend_reason
        if chat is not None and not decision.hard:
            answer.model = chat.name
            if not answer.fallback:  # an extractive answer replacing the model's keeps its own
                answer.confidence = self._model_confidence(chat.name, answer, decision, read)
        yield Final(answer, decision)

    def _model_confidence(self, model: str, answer: Answer, decision: Decision, read: ModelRead) -> float | None:
        """The fitted chance that the model's own answer or refusal is right. None when no chance
        was fitted on this model's runs, or there is no extractive candidate to read it from."""
        if self.chance_right is None or not self.chance_right.fitted_for(model) or not decision.sentences:
            return None
        return round(self.chance_right.of(not answer.abstained, read.answerable, decision.confidence), 3)

    def answerer(self) -> tuple[str, str]:
        """Who answers a question asked without naming a backend: the model's name ("" for the
        extractive answerer), and why it does."""
        backend, reason = self._resolve(self.settings.llm)
        if backend == "extractive":
            return "", reason or "RAG_LLM=extractive"
        return self._chat_backend(backend).name, reason or f"RAG_LLM={backend}"

    def reset_backend(self) -> None:
        """Forget what `auto` resolved to, so the next question resolves it again: a model
        installed or chosen since then answers without a restart."""
        with self._resolving:
            self._auto = None
            self._chat_backends.clear()

    def use_model(self, settings: Settings | None, reason: str) -> None:
        """Answer `auto` with the model these settings name (None: the extractive answerer) until
        `reset_backend`, whatever `auto` would find."""
        with self._resolving:
            self._chat_backends.clear()
            self._auto = None  # should this model fail to load, the next question resolves `auto` anew
            self._auto = self._settle(settings, reason)

    def model_servers(self) -> list[str]:
        """The OpenAI-compatible servers listing a model on this machine's usual ports."""
        from rag.answer import backends

        return [url for port in self.settings.local_llm_ports if (url := backends.find_local_server([port]))]

    def _resolve(self, backend: Backend) -> tuple[Backend, str]:
        """The backend to answer with. `auto` is resolved once per assistant (until
        `reset_backend`): a configured model, else an installed one, else a model server on this
        machine, else the extractive answerer."""
        if backend != "auto":
            return backend, ""
        with self._resolving:
            if self._auto is None:
                from rag.answer import backends

                self._auto = self._settle(*backends.resolve_auto(self.settings))
            return self._auto

    def _settle(self, settings: Settings | None, reason: str) -> tuple[Backend, str]:
        """The backend these settings name, built now (None: the extractive answerer), and why."""
        if settings is None:
            return "extractive", reason
        from rag.answer import backends

        self._chat_backends[settings.llm] = backends.make_chat_backend(settings)
        return settings.llm, reason

    def _judge(self, decision: Decision) -> Decision:
        """Weigh the candidate with the confidence model and withhold it below the threshold."""
        if decision.abstained:
            return replace(decision, confidence=self.confidence.refusal_confidence)
        probability = self.confidence.probability(decision.signals)
        threshold = self.settings.min_confidence
        if threshold is None:
            threshold = self.confidence.threshold
        if probability < threshold:
            return decision.withhold(probability)
        return replace(decision, confidence=probability)

    def _provisional(self, decision: Decision) -> Provisional:
        """The extractive candidate as text, even one its confidence would withhold."""
        candidate = replace(decision, abstain_reason=None)
        return Provisional(self.extractive.compose(candidate, _number_passages(decision.sentences)),
                           tentative=decision.abstained)

    def _extractive(self, decision: Decision, retrieval: Retrieval):
        numbering = _number_passages(decision.sentences)
        text = self.extractive.compose(decision, numbering)
        for word in re.split(r"(?<= )", text):
            yield Token(word)
        return text, None

    def _llm(
        self,
        chat,
        question: str,
        retrieval: Retrieval,
        ranked: list[Sentence],
        decision: Decision,
        read: ModelRead,
        timings: dict[str, float],
    ):
        """The model's answer, checked, as tokens then (text, fallback reason); what the model
        judged and which sentences were attributed or dropped go into `read`."""
        from rag.answer import llm

        evidence = llm.select_evidence(
            retrieval.passages, ranked, self.settings.llm_evidence_sentences, self.settings.llm_evidence_chars
        )
        if self.settings.llm_check_answerable:
            checking = time.perf_counter()
            read.answerable = llm.judged_answerable(chat, question, evidence)
            timings["check_ms"] = _ms_since(checking)
            if read.answerable is not None and read.answerable < self.answerable_threshold:
                text = _refusal_because(llm.NOT_STATED)
                yield Token(text)
                return text, None
        draft = ""
        for piece in chat.stream(llm.build_messages(question, evidence)):
            draft += piece
            yield Token(piece)
        read.draft = draft
        if not self.settings.llm_check_claims:
            return llm.as_written(draft, evidence), None
        checked = llm.check_answer(draft, evidence)
        if checked.problem is None:
            read.attributed, read.dropped = checked.attributed, checked.dropped
            return checked.text, None
        if not self.settings.llm_fallback:
            withheld = _refusal_because(checked.problem)
            yield Replace(withheld, checked.problem)
            return withheld, None
        fallback_text, _ = _silently(self._extractive(decision, retrieval))
        yield Replace(fallback_text, checked.problem)
        return fallback_text, checked.problem

    def _check_filters(self, filters: Filters) -> None:
        """A filter that no article could ever pass is a mistake to point out, not a question to
        refuse ("Not in these articles" would blame the articles)."""
        if filters.date_from and filters.date_to and filters.date_from > filters.date_to:
            raise QuestionError(f"The 'from' date ({filters.date_from}) is after the 'to' date ({filters.date_to}).")
        if filters.publisher:
            known = self.retriever.refresh().publishers()
            if filters.publisher.casefold() not in {p.casefold() for p in known}:
                listing = f"the publishers are {', '.join(known)}" if known else "no article names its publisher"
                named = filters.publisher if len(filters.publisher) <= 80 else f"{filters.publisher[:77]}…"
                raise QuestionError(f"No article in the index is from {named!r}: {listing}.")

    def _spelled(self, question: str) -> str:
        """The question with its misspelt names corrected to the index's spelling (rag/answer/spelling.py)."""
        speller = self.retriever.name_speller(model_words(self.embedder.model_path))
        return speller.correct(question) if speller else question

    def _rewrite(self, question: str, history: list[str], chat) -> str:
        """A model rewrites follow-ups itself; the extractive answerer keeps the rule-based rewrite."""
        if chat is None:
            return rewrite_follow_up(question, history)
        from rag.answer import llm

        return llm.rewrite_question(chat, question, history)

    def _chat_backend(self, backend: Backend):
        from rag.answer import backends

        if backend not in self._chat_backends:
            self._chat_backends[backend] = backends.make_chat_backend(self.settings.with_overrides(llm=backend))
        return self._chat_backends[backend]

    def _finish(self, question, searched, text, retrieval, ranked, decision, backend, timings, fallback) -> Answer:
        refused = _is_refusal(text)
        text, citations = _renumber(text, retrieval.passages, searched)
        nearest = []
        if refused:
            nearest = [Citation.from_passage(0, p, _closest_sentence(i, ranked))
                       for i, p in enumerate(retrieval.passages[:NEAREST_ON_ABSTAIN])]
            citations = []
        return Answer(
            question=question,
            answer=text,
            abstained=refused,
            confidence=_shown_confidence(decision, refused),
            hidden_by_filter=decision.hidden_by_filter,
            citations=citations,
            backend=backend,
            timings=timings,
            searched=searched if searched != question else "",
            fallback=fallback,
            nearest=nearest,
        )


def _shown_confidence(decision: Decision, refused: bool) -> float:
    """The estimated chance that what is shown is right: the answer's own for an answer; for a
    refusal of a candidate, the chance that the candidate was wrong. The model's own answers and
    refusals are given their fitted chance instead (`Assistant._model_confidence`)."""
    if decision.hard or not refused:
        return round(decision.confidence, 3)
    return round(1.0 - decision.confidence, 3)


def _closest_sentence(passage: int, ranked: list[Sentence]) -> list[tuple[int, int]]:
    """The span of the passage's sentence ranked closest to the question: a refusal marks it in
    the passages it shows, so that a reader judging the refusal finds it at once."""
    best = next((s for s in ranked if s.passage == passage), None)
    return [(best.start, best.end)] if best else []


def _refusal_because(reason: str) -> str:
    return f"{REFUSAL} {reason[0].upper()}{reason[1:]}."


def _number_passages(sentences: list[Sentence]) -> dict[int, int]:
    """Passage index -> the number it is cited with in the composed text (retrieval order + 1)."""
    return {s.passage: s.passage + 1 for s in sentences}


def _renumber(text: str, passages: list[Passage], question: str) -> tuple[str, list[Citation]]:
    """Cite as [1], [2]... in order of first use, and build a citation for each, quoting the
    sentences of the passage that support the claims citing it."""
    order: dict[int, int] = {}
    for match in CITATION_RE.finditer(text):
        index = int(match.group(1)) - 1
        if 0 <= index < len(passages) and index not in order:
            order[index] = len(order) + 1
    spans: dict[int, list[tuple[int, int]]] = {index: [] for index in order}
    for claim in _claims(text):
        for index in {int(n) - 1 for n in CITATION_RE.findall(claim)} & set(order):
            for span in supporting_spans(claim, passages[index], question):
                if span not in spans[index]:
                    spans[index].append(span)
    renumbered = CITATION_RE.sub(lambda m: cite(order.get(int(m.group(1)) - 1, 0)), text)
    citations = [Citation.from_passage(n, passages[i], sorted(spans[i])) for i, n in order.items()]
    return renumbered, citations


def _claims(text: str) -> list[str]:
    """Answer sentences, each with the markers that follow it."""
    return [c for c in re.split(r"(?<=\])\s+(?=[^\[])", text) if c.strip()]


def _is_refusal(text: str) -> bool:
    return text.strip().startswith(REFUSAL)


def _first_token_timed(generator, timings: dict[str, float], started: float):
    """Pass the answer's events through, noting in `timings` when its first token came."""
    try:
        event = next(generator)
        while True:
            if isinstance(event, Token) and "first_token_ms" not in timings:
                timings["first_token_ms"] = _ms_since(started)
            yield event
            event = next(generator)
    except StopIteration as stop:
        return stop.value


def _silently(generator):
    """Run a sub-generator for its return value, dropping what it yields."""
    try:
        while True:
            next(generator)
    except StopIteration as stop:
        return stop.value


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)
