"""What the chat and its API do with a question, apart from Gradio's components.

Both go through `Assistant.stream` with the same option parsing. The chat turns the events into
what the page shows; the API turns them into JSON, ending with `Answer.to_dict()`.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from urllib.parse import quote

from rag import DocumentEntry, Example, Filters, IndexMissing, IndexUnusable, corpus_examples
from rag.assistant import (
    Assistant,
    Final,
    Provisional,
    QuestionError,
    Replace,
    Sources,
    Token,
    clean_question,
    is_valid_text,
)
from rag.settings import Settings
from ui import render
from ui.local_models import LocalModels
from ui.uploads import Library

log = logging.getLogger(__name__)
# Streaming every token to the browser costs more than it shows: redraw at most this often.
REDRAW_SECONDS = 0.05
ALL_PUBLISHERS = ""
MAX_PUBLISHER_CHARS = 200  # longer than any publisher's name
ARTICLE_PATH = "article"  # the article view's page, relative to the chat's address
# The conversation kept in the browser across reloads: enough to scroll back through, small enough
# for the browser's storage (each turn holds its sources' HTML).
SAVED_TURNS = 30


class Throttle:
    """Decides when a streamed change is worth sending: at once when urgent, else at most every
    REDRAW_SECONDS."""

    def __init__(self):
        self._last = 0.0

    def due(self, urgent: bool) -> bool:
        now = time.monotonic()
        if urgent or now - self._last >= REDRAW_SECONDS:
            self._last = now
            return True
        return False


class OptionError(ValueError):
    """A bad option (a date, a backend); the message is meant for the user."""


@dataclass(frozen=True)
class Options:
    k: int
    backend: str
    filters: Filters


@dataclass
class Turn:
    question: str
    answer: dict | None = None  # Answer.to_dict(); None when the question failed
    sources: str = ""  # this question's section of the sources panel
    vote: str = ""  # "up" or "down" once the thumbs under its answer were clicked


@dataclass
class ChatView:
    """Everything one step of a chat turn changes on the page."""

    messages: list[dict]
    panel: str
    turns: list[Turn]
    copy_text: str = ""
    done: bool = False  # the turn is over: the question box can take the next one
    hidden_by_filter: bool = False  # the answer was refused because the filters hid the articles
    respelled: str = ""  # the question with the names a refusal suggests ("did you mean ...?")


def saved_conversation(view: ChatView) -> dict:
    """What the browser keeps of a finished turn's page (gr.BrowserState holds JSON)."""
    turns = view.turns[-SAVED_TURNS:]
    # Every turn shows as two messages, the question and its answer.
    return {"messages": view.messages[-2 * len(turns):], "turns": [asdict(t) for t in turns],
            "copy_text": view.copy_text}


# How the chatbot's thumbs show a vote: one value per answer, in order.
_THUMBS = {"up": "Like", "down": "Dislike"}


def thumbs(turns: list[Turn]) -> list[str | None]:
    """The chatbot's feedback values for these turns, so a kept vote shows again after a reload."""
    return [_THUMBS.get(t.vote) for t in turns]


def with_vote(saved: object, turns: list[Turn]) -> dict:
    """The kept conversation with the turns' votes as they are now."""
    kept = dict(saved) if isinstance(saved, dict) else {}
    kept["turns"] = [asdict(t) for t in turns[-SAVED_TURNS:]]
    return kept


def restored_conversation(saved: object) -> ChatView:
    """The page as it was when `saved` was written; an empty chat when it is missing or not ours."""
    try:
        turns = [Turn(**t) for t in saved["turns"]]
        messages = list(saved["messages"])
        copy_text = str(saved.get("copy_text", ""))
    except (TypeError, KeyError, AttributeError):
        turns, messages, copy_text = [], [], ""
    panel = render.sources_panel([(t.question, t.sources) for t in turns if t.sources])
    return ChatView(messages, panel, turns, copy_text, done=True)


@dataclass
class _Draft:
    """A turn while its answer streams in."""

    index: int
    question: str
    passages: list = field(default_factory=list)
    searched: str = ""
    quick: Provisional | None = None  # the extractive answer, shown until the model's is checked
    text: str = ""
    note: str = ""

    def bubble(self) -> str:
        if self.quick:
            return render.provisional_bubble(self.quick.text, self.quick.tentative, self.text, self.index,
                                             len(self.passages), self.searched)
        return render.draft_bubble(self.text, self.index, len(self.passages), self.searched, self.note)


_SUGGESTION = re.compile(r"No article mentions (?P<typed>[^()]+?) \(did you mean (?P<meant>[^()]+?)\?\)", re.I)
_LIST_JOINS = re.compile(r", | and | or ")


def respelled_question(question: str, refusal: str) -> str:
    """The question with each name a refusal calls absent replaced by the name it suggests
    instead; "" when the refusal suggests none, or not one for each name."""
    match = _SUGGESTION.search(refusal)
    if not match:
        return ""
    typed, meant = _LIST_JOINS.split(match["typed"]), _LIST_JOINS.split(match["meant"])
    if len(typed) != len(meant):
        return ""
    for wrong, right in zip(typed, meant, strict=True):
        question = re.sub(rf"\b{re.escape(wrong)}\b", right, question)
    return question


def parse_date(value: object, label: str) -> date | None:
    if value in (None, ""):
        return None
    if isinstance(value, int | float):
        try:
            return datetime.fromtimestamp(value, UTC).date()
        except (OverflowError, OSError, ValueError):
            raise OptionError(f"The {label} date must be a date like 2025-01-31, not {value!r}.") from None
    try:
        return date.fromisoformat(str(value).strip()[:10])
    except ValueError:
        raise OptionError(f"The {label} date must look like 2025-01-31, not {str(value)[:40]!r}.") from None


def parse_publisher(value: object) -> str | None:
    """A publisher's name, or None for all. Its name is quoted back when no article is from it,
    so a very long one is refused with its start only."""
    if value in (None, ""):
        return None
    if not isinstance(value, str) or not is_valid_text(value):
        raise OptionError(f"The publisher must be one name as text, not {type(value).__name__} {str(value)[:40]!r}.")
    if len(value) > MAX_PUBLISHER_CHARS:
        raise OptionError(f"No publisher has a name {len(value):,} characters long ({value[:40]!r}...).")
    return value


def parse_history(value: object) -> list[str]:
    """Previous questions: a list (or its JSON) of strings or of {"role", "content"} messages."""
    if value in (None, ""):
        return []
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise OptionError("history must be a JSON list of the previous questions.") from None
    if not isinstance(value, list):
        raise OptionError("history must be a list of the previous questions.")
    questions = []
    for item in value:
        if isinstance(item, dict):
            if item.get("role") == "user":
                questions.append(str(item.get("content", "")))
        else:
            questions.append(str(item))
    # Only context for a follow-up: a character that is not valid text is dropped, not refused.
    return [q.encode("utf-8", "replace").decode() for q in questions]


class ChatService:
    def __init__(self, settings: Settings, assistant: Assistant | None = None):
        self.settings = settings
        self.assistant = assistant or Assistant.from_settings(settings)
        self.library = Library(settings, self.assistant.embedder)
        self.models = LocalModels(settings, self.assistant)
        self._feedback_lock = threading.Lock()
        self._examples: tuple[int, list[Example]] | None = None  # (manifest generation, examples)
        self._examples_lock = threading.Lock()

    # -- options ---------------------------------------------------------------------------------

    def backends(self) -> list[str]:
        """Extractive and auto always; a named LLM only when its settings say where it is."""
        offered = ["extractive", "auto"]
        if self.settings.openai_base_url and self.settings.openai_model:
            offered.append("openai")
        if self.settings.gguf_path:
            offered.append("llamacpp")
        return offered

    def options(self, k, backend, date_from, date_to, publisher) -> Options:
        try:
            k = int(k) if k not in (None, "") else self.settings.top_k
        except (TypeError, ValueError):
            raise OptionError(f"k must be a whole number, not {k!r}.") from None
        if not 1 <= k <= 50:
            raise OptionError("k (the number of passages) must be between 1 and 50.")
        backend = backend or self.models.backend
        if backend not in self.backends():
            raise OptionError(f"The backend {backend!r} is not available here; choose from {self.backends()}.")
        start, end = parse_date(date_from, "from"), parse_date(date_to, "to")
        if start and end and start > end:
            raise OptionError("The 'from' date is after the 'to' date.")
        return Options(k, backend, Filters(start, end, parse_publisher(publisher)))

    # -- the index -------------------------------------------------------------------------------

    def publishers(self) -> list[str]:
        try:
            return self.assistant.retriever.refresh().publishers()
        except IndexUnusable:
            return []

    def index_summary(self) -> str:
        try:
            manifest = self.assistant.retriever.refresh()
        except IndexMissing:
            return "The index is empty: add articles below."
        except IndexUnusable as exc:
            return f"The index cannot be used: {exc}"
        chunks = sum(len(e.chunk_ids) for e in manifest.documents.values())
        return f"Index: {len(manifest.documents)} articles, {chunks} passages."

    def filter_note(self) -> str:
        """Said beside the filters when the articles lack what they filter on (the BBC archive
        has neither dates nor publishers), since such a filter would hide every article."""
        try:
            documents = self.assistant.retriever.refresh().documents.values()
        except IndexUnusable:
            return ""
        lacking = [name for name, has in (("dates", any(e.published for e in documents)),
                                          ("publishers", any(e.publisher for e in documents))) if not has]
        if not documents or not lacking:
            return ""
        return (f"This index has no {' or '.join(lacking)}: "
                f"{'these filters' if len(lacking) > 1 else 'that filter'} would hide every article.")

    def warm_up(self) -> None:
        """Open the index and load the encoder and the entity tagger while Gradio starts, so the
        first question does not wait seconds for them (bench/findings.md). Working out the example
        questions does most of it, and the first page then finds them ready."""
        try:
            self.examples()
            self.assistant.warm_up()
            self.assistant.answerer()  # finds, and loads, the model that answers
        except Exception:  # noqa: BLE001 - the first question reports any problem, with its fix
            log.debug("warm-up failed", exc_info=True)

    def examples(self) -> list[Example]:
        """Example questions about the articles in the index, worked out once per index version."""
        try:
            manifest = self.assistant.retriever.refresh()
        except IndexUnusable:  # missing or damaged: no examples (the index summary says why)
            manifest = None
        generation = manifest.generation if manifest else -1
        with self._examples_lock:
            if self._examples is None or self._examples[0] != generation:
                chosen = corpus_examples(self.settings.corpus_dir, manifest, self._answers_well)
                self._examples = (generation, chosen)
            return self._examples[1]

    def _answers_well(self, example: Example) -> bool:
        """The extractive answerer (fast, and always there) answers it from the article it is about."""
        answer = self.assistant.ask(example.question, backend="extractive")
        return not answer.abstained and any(c.source == example.source for c in answer.citations)

    def article_link(self, source: str) -> str | None:
        """The article view's address for an indexed article: its id, never a path on this machine."""
        manifest = self.assistant.retriever.manifest
        entry = manifest.documents.get(source) if manifest else None
        return f"{ARTICLE_PATH}?doc={quote(entry.doc_id)}" if entry else None

    def article(self, doc_id: str) -> tuple[DocumentEntry, str] | None:
        """An indexed article and the index's own copy of its cleaned text, or None."""
        try:
            manifest = self.assistant.retriever.refresh()
        except IndexUnusable:
            return None
        entry = next((e for e in manifest.documents.values() if e.doc_id == doc_id), None)
        if entry is None:
            return None
        try:
            return entry, (self.settings.index_dir / entry.text_file).read_text(encoding="utf-8")
        except OSError:
            return None

    # -- the chat --------------------------------------------------------------------------------

    def converse(self, question, messages, turns, k, date_from, date_to, publisher) -> Iterator[ChatView]:
        question = (question or "").strip()
        asked = [*messages, {"role": "user", "content": render.user_bubble(question)}]
        turns = [*turns, Turn(question)]
        draft = _Draft(len(turns) - 1, question)
        yield self._view(asked, render.pending_bubble(), turns)
        history = [t.question for t in turns[:-1] if t.answer]
        try:
            options = self.options(k, "", date_from, date_to, publisher)
            events = self.assistant.stream(question, history=history, k=options.k, filters=options.filters,
                                           backend=options.backend)
            yield from self._follow(events, draft, asked, turns)
        except (QuestionError, OptionError, IndexUnusable) as exc:
            yield self._view(asked, render.error_bubble(str(exc)), turns, done=True)
        except Exception as exc:  # an LLM backend down, say: the page must say so, not hang
            log.exception("answering %r failed", question)
            yield self._view(asked, render.error_bubble(f"The answer failed: {exc}"), turns, done=True)

    def _follow(self, events, draft: _Draft, asked: list[dict], turns: list[Turn]) -> Iterator[ChatView]:
        throttle = Throttle()
        for event in events:
            if isinstance(event, Final):
                yield self._finish(event.answer, draft, asked, turns)
                return
            if throttle.due(urgent=self._apply(event, draft, turns)):
                yield self._view(asked, draft.bubble(), turns)

    def _apply(self, event, draft: _Draft, turns: list[Turn]) -> bool:
        """Take in one event; True when the page should show it at once (the sources, the quick
        answer, the first token, a replacement) rather than with the next redraw."""
        if isinstance(event, Sources):
            draft.passages = event.passages
            asked = clean_question(draft.question, self.settings.max_question_chars)
            draft.searched = event.searched if event.searched != asked else ""
            turns[-1].sources = render.retrieved_section(event.passages, draft.index, self.article_link)
            return True
        if isinstance(event, Provisional):
            draft.quick = event
            return True
        if isinstance(event, Replace):
            draft.quick, draft.text, draft.note = None, event.text, render.replaced_note(event.reason)
            return True
        first = not draft.text
        draft.text += event.text
        return first

    def _finish(self, answer, draft: _Draft, asked: list[dict], turns: list[Turn]) -> ChatView:
        turns[-1].answer = answer.to_dict()
        turns[-1].sources = render.answered_section(answer, draft.passages, draft.index, self.article_link)
        bubble = render.final_bubble(answer, draft.index)
        view = self._view(asked, bubble, turns, render.plain_answer(answer), done=True)
        view.hidden_by_filter = answer.hidden_by_filter
        view.respelled = respelled_question(draft.question, answer.answer) if answer.abstained else ""
        return view

    @staticmethod
    def _view(asked: list[dict], bubble: str, turns: list[Turn], copy_text: str = "", done: bool = False) -> ChatView:
        """The page after one step: the conversation so far plus this turn's answer bubble."""
        panel = render.sources_panel([(t.question, t.sources) for t in turns if t.sources])
        return ChatView([*asked, {"role": "assistant", "content": bubble}], panel, turns, copy_text, done)

    # -- the API ---------------------------------------------------------------------------------

    def ask(self, question, history, k, backend, date_from, date_to, publisher) -> Iterator[dict]:
        """Streams {"event": "sources"}, then, when a model answers, {"event": "provisional"} with
        the extractive answer shown until the model's is checked, then {"event": "token"} with the
        draft so far (now and then, not for every token), and ends with the `Answer.to_dict()` object."""
        options = self.options(k, backend, date_from, date_to, publisher)
        events = self.assistant.stream(question, history=parse_history(history), k=options.k,
                                       filters=options.filters, backend=options.backend)
        draft, throttle = "", Throttle()
        for event in events:
            if isinstance(event, Sources):
                yield {"event": "sources", "searched": event.searched,
                       "passages": [_passage_dict(p) for p in event.passages]}
            elif isinstance(event, Provisional):
                yield {"event": "provisional", "text": event.text, "tentative": event.tentative}
            elif isinstance(event, Token | Replace):
                urgent = not draft or isinstance(event, Replace)
                draft = draft + event.text if isinstance(event, Token) else event.text
                if throttle.due(urgent):
                    yield {"event": "token", "text": draft}
            elif isinstance(event, Final):
                yield event.answer.to_dict()

    # -- feedback --------------------------------------------------------------------------------

    def record_feedback(self, turn: Turn, vote: str) -> None:
        answer = turn.answer or {}
        line = {
            "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
            "vote": vote,
            "question": turn.question,
            "answer": answer.get("answer", ""),
            "abstained": answer.get("abstained"),
            "backend": answer.get("backend"),
            "searched": answer.get("searched", ""),
            "chunk_ids": [c["chunk_id"] for c in answer.get("citations", [])],
        }
        path = self.settings.feedback_file
        with self._feedback_lock:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "a", encoding="utf-8") as out:
                out.write(json.dumps(line, ensure_ascii=False) + "\n")


def _passage_dict(passage) -> dict:
    return {
        "chunk_id": passage.chunk_id,
        "source": passage.source,
        "title": passage.title,
        "publisher": passage.publisher,
        "published": passage.published,
        "text": passage.text,
        "score": round(passage.similarity, 4),
    }
