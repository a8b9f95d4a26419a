r"""LangChain interfaces: the hybrid retriever as a `BaseRetriever`, and the whole question ->
cited answer as a `Runnable`.

Both take their settings from the `RAG_*` environment variables, as the CLI does, when none are
given, and build the `Assistant` on first use.

- `NewsRetriever()` returns the ranked passages as `Document`s: `page_content` is the chunk's
  text; `metadata` holds source, title, published, publisher, url, chunk_id, score (the cosine
  similarity of question and chunk), start and end (the chunk's offsets in the cleaned article).
- `answer_chain()` takes a question, or {"question", "history", "k", "date_from", "date_to",
  "publisher"}, and returns the `rag ask --json` object (`Answer.to_dict()`). Its `.stream()`
  yields {"token": piece} as the answer is written, and last the answer object itself.

The retriever in an LCEL chain of your own (add your model at the end: `chain | ChatOpenAI()`):

```python
from langchain_core.runnables import RunnableParallel, RunnablePassthrough

from rag.langchain import NewsRetriever


def format_docs(docs):
    return "\n\n".join(f"[{d.metadata['publisher'] or d.metadata['source']}] {d.page_content}" for d in docs)


def build_prompt(x):
    return f"Answer from these passages only.\n\n{x['context']}\n\nQuestion: {x['question']}"


chain = RunnableParallel(context=NewsRetriever(k=3) | format_docs, question=RunnablePassthrough()) | build_prompt
print(chain.invoke("What did EXIM approve under Project Vault?"))
```

The cited answer, whole or streamed:

```python
from rag.langchain import answer_chain

chain = answer_chain()
print(chain.invoke("What did EXIM approve under Project Vault?")["answer"])
follow_up = {"question": "And how much went to Brazil?", "history": ["What did EXIM approve under Project Vault?"]}
for chunk in chain.stream(follow_up):
    if "token" in chunk:
        print(chunk["token"], end="", flush=True)  # the answer as it is written
    elif "answer" in chunk:
        answer = chunk  # last: the `rag ask --json` object
print("\n\n" + answer["answer"], [c["source"] for c in answer["citations"]])
```
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from datetime import date
from typing import TYPE_CHECKING, Any, Required

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import Runnable, RunnableConfig
from langchain_core.runnables.utils import AddableDict
from pydantic import Field, PrivateAttr
from typing_extensions import TypedDict  # pydantic reads a TypedDict from here before Python 3.12

from rag.settings import Settings

if TYPE_CHECKING:
    from rag.answer.retrieve import Filters
    from rag.assistant import Assistant

__all__ = ["AnswerChain", "AnswerInput", "NewsRetriever", "answer_chain"]


class AnswerInput(TypedDict, total=False):
    """The dict form of `answer_chain`'s input; only "question" is required."""

    question: Required[str]
    history: list[str]  # the earlier questions, oldest first, for follow-ups
    k: int | None  # passages retrieved; None = the settings' top_k
    date_from: date | str | None  # a date or "YYYY-MM-DD"; None = the settings' default filter
    date_to: date | str | None
    publisher: str | None


INPUT_KEYS = AnswerInput.__required_keys__ | AnswerInput.__optional_keys__

_BUILDING = threading.Lock()  # one Assistant per retriever or chain, even when .batch() starts in threads


def _build_assistant(settings: Settings | None) -> Assistant:
    from rag.assistant import Assistant

    return Assistant.from_settings(settings or Settings())


def _assistant_of(holder) -> Assistant:
    """The holder's `Assistant` (its `_assistant`), built once from its `settings` on first use."""
    if holder._assistant is None:
        with _BUILDING:
            if holder._assistant is None:
                holder._assistant = _build_assistant(holder.settings)
    return holder._assistant


def _filters(settings: Settings, date_from: Any, date_to: Any, publisher: str | None) -> Filters:
    """The filters asked for; each one not given (None or "") is the settings' default
    (`RAG_DATE_FROM`, `RAG_DATE_TO`, `RAG_PUBLISHER`; unset unless configured)."""
    from rag.answer.retrieve import Filters

    start = _as_date(date_from, "date_from") or settings.date_from
    end = _as_date(date_to, "date_to") or settings.date_to
    if start and end and start > end:
        raise ValueError(f"date_from ({start}) is after date_to ({end}).")
    return Filters(start, end, publisher or settings.publisher)


def _as_date(value: Any, name: str) -> date | None:
    if value in (None, ""):
        return None
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value).strip())
    except ValueError:
        raise ValueError(f"{name} must be a date (YYYY-MM-DD), not {value!r}.") from None


def _as_k(value: Any) -> int | None:
    if value in (None, ""):
        return None
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"k must be a whole number, not {value!r}.")
    try:
        k = int(value)
    except ValueError:
        raise ValueError(f"k must be a whole number, not {value!r}.") from None
    if not 1 <= k <= 50:
        raise ValueError(f"k (the number of passages) must be between 1 and 50, not {k}.")
    return k


class NewsRetriever(BaseRetriever):
    """The project's retriever (dense + BM25, fused by reciprocal rank) as a LangChain retriever.

    `NewsRetriever().invoke(question)` returns the `k` best passages as `Document`s, best first,
    with `id` and `metadata["chunk_id"]` the chunk's id and `metadata["score"]` its cosine
    similarity to the question (rounded as in `rag ask --json`). Fields left at None take the
    settings' values: `k` the settings' `top_k`, each filter the settings' default filter.
    `settings=None` reads the `RAG_*` environment variables, like the CLI.
    """

    k: int | None = Field(None, ge=1, le=50, description="passages to return; None = the settings' top_k")
    date_from: date | None = None
    date_to: date | None = None
    publisher: str | None = None
    settings: Settings | None = None

    _assistant: Assistant | None = PrivateAttr(default=None)

    @property
    def assistant(self) -> Assistant:
        """The `Assistant` searched, built on first use."""
        return _assistant_of(self)

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        assistant = self.assistant
        filters = _filters(assistant.settings, self.date_from, self.date_to, self.publisher)
        retrieval = assistant.search(query, k=self.k, filters=filters)
        return [
            Document(
                id=p.chunk_id,
                page_content=p.text,
                metadata={
                    "source": p.source,
                    "title": p.title,
                    "published": p.published,
                    "publisher": p.publisher,
                    "url": p.url,
                    "chunk_id": p.chunk_id,
                    "score": round(p.similarity, 4),
                    "start": p.start,
                    "end": p.end,
                },
            )
            for p in retrieval.passages
        ]


class AnswerChain(Runnable[str | AnswerInput, dict[str, Any]]):
    """Question -> cited answer, as a Runnable over `Assistant.stream`.

    Input: a question string, or a dict with "question" and optionally "history" (the earlier
    questions, oldest first, so that a follow-up is understood), "k", "date_from", "date_to"
    (dates or "YYYY-MM-DD") and "publisher". A filter not given is the settings' default.

    `.invoke()` (and `.batch()`, which invokes in threads) returns the `rag ask --json` object,
    `Answer.to_dict()`.

    `.stream()` streams for real, as the answer is written:

    - `{"token": piece}` for each piece of the answer's text (`Assistant.stream`'s `Token` events);
      the pieces join into the answer as written, with its `[n]` markers numbered in retrieval
      order: the final answer renumbers them in order of first use;
    - `{"replace": text, "reason": why}` when an LLM's streamed draft failed validation and the
      extractive answer `text` replaces it (LLM backends only);
    - last, the answer object itself, the same dict `.invoke()` returns.

    A chunk with a "token" key is text; the last chunk is the answer. The chunks are
    `AddableDict`s, so a step after this one in a streamed LCEL chain receives their sum: the
    answer object plus "token", the whole streamed text. `.ainvoke()` and `.astream()` use
    LangChain's defaults (the answer is computed in a thread and `.astream()` yields it whole).
    """

    def __init__(self, settings: Settings | None = None):
        self.settings = settings
        self._assistant: Assistant | None = None

    @property
    def assistant(self) -> Assistant:
        """The `Assistant` answering, built on first use (settings from the environment if none)."""
        return _assistant_of(self)

    def invoke(
        self, input: str | AnswerInput, config: RunnableConfig | None = None, **kwargs: Any
    ) -> dict[str, Any]:
        return self._call_with_config(self._answer, input, config)

    def stream(
        self, input: str | AnswerInput, config: RunnableConfig | None = None, **kwargs: Any
    ) -> Iterator[dict[str, Any]]:
        # The default `transform` (an earlier step streaming into this one) gathers its input and
        # calls this method, so a chain ending here streams too.
        yield from self._transform_stream_with_config(iter([input]), self._events, config)

    def _answer(self, input: str | AnswerInput) -> dict[str, Any]:
        question, options = self._options(input)
        return self.assistant.ask(question, **options).to_dict()

    def _events(self, inputs: Iterator[str | AnswerInput]) -> Iterator[AddableDict]:
        from rag.assistant import Final, Replace, Token

        for input in inputs:
            question, options = self._options(input)
            for event in self.assistant.stream(question, **options):
                if isinstance(event, Token):
                    yield AddableDict(token=event.text)
                elif isinstance(event, Replace):
                    yield AddableDict(replace=event.text, reason=event.reason)
                elif isinstance(event, Final):
                    yield AddableDict(event.answer.to_dict())

    def _options(self, input: str | Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        """The question and the keyword arguments of `Assistant.stream` for one input."""
        if isinstance(input, str):
            return input, {}
        if not isinstance(input, Mapping):
            raise TypeError(f"expected a question or a dict with a 'question', not {type(input).__name__}")
        unknown = set(input) - INPUT_KEYS
        if unknown:
            raise ValueError(f"unknown input keys {sorted(unknown)}; expected some of {sorted(INPUT_KEYS)}")
        if not isinstance(input.get("question"), str):
            raise ValueError("the input needs a 'question' string")
        history = input.get("history") or []
        if isinstance(history, str) or not all(isinstance(h, str) for h in history):
            raise ValueError("history must be a list of the earlier questions, oldest first")
        filters = _filters(
            self.assistant.settings, input.get("date_from"), input.get("date_to"), input.get("publisher")
        )
        return input["question"], {"history": list(history), "k": _as_k(input.get("k")), "filters": filters}


def answer_chain(settings: Settings | None = None) -> AnswerChain:
    """The whole question -> cited answer as a Runnable (see `AnswerChain`): `.invoke()` returns
    `Answer.to_dict()`, `.stream()` yields {"token": piece}... then that dict. Settings are read
    from the `RAG_*` environment variables when none are given, like the CLI."""
    return AnswerChain(settings)
