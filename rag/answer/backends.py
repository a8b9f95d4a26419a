"""The chat backends: a model answers through one of these, chosen by RAG_LLM.

A backend implements two methods, the same for an OpenAI-compatible server (`OpenAIChat`) and a
local GGUF file (`LlamaCppChat`): `stream(messages)`, yielding the answer's text as it is written,
and `yes_probability(messages)`, the chance that its reply to a yes/no question is yes.
`RAG_LLM=auto` uses a configured model, else the installed one (`rag model install`), else a
model server already running on this machine (`resolve_auto`). What the model is shown and how its
answer is checked is in llm.py.
"""

from __future__ import annotations

import math
import os
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

import numpy as np

from rag.models import default_model, runtime_ready
from rag.models.store import OLLAMA_PREFIX
from rag.settings import Settings

N_CTX = 4096  # llama-cpp-python defaults to 512, too small for prompt plus answer

REACHABILITY_TIMEOUT_S = 5.0

# GGUFs without a chat template: the format of their family, else ChatML.
FALLBACK_CHAT_FORMATS = {
    "gemma": "gemma",
    "gemma2": "gemma",
    "gemma3": "gemma",
    "llama": "llama-2",
    "mistral": "mistral-instruct",
    "qwen2": "chatml",
    "phi3": "chatml",
}


class LLMUnavailable(RuntimeError):
    """The configured model cannot be used; the message is one line meant for the user."""


class ChatBackend(Protocol):
    name: str

    def stream(self, messages: list[dict[str, str]]) -> Iterator[str]:
        """The reply to the messages, piece by piece as it is written."""
        ...

    def yes_probability(self, messages: list[dict[str, str]]) -> float | None:
        """The chance that the reply to a yes/no question is yes, read from the first token's
        log-probabilities, or from the reply's first word when the backend gives none (then 1.0
        or 0.0). None when the reply is neither."""
        ...


# First tokens that open a yes or a no (a model may start a no with the refusal phrase).
_YES_WORDS = frozenset({"yes"})

_NO_WORDS = frozenset({"no", "not"})

TOP_LOGPROBS = 10


def yes_share(first_tokens: dict[str, float]) -> float | None:
    """P(yes) / (P(yes) + P(no)) over the candidate first tokens and their probabilities."""
    yes = no = 0.0
    for token, probability in first_tokens.items():
        word = token.strip().strip(".,!\"'*").lower()
        yes += probability if word in _YES_WORDS else 0.0
        no += probability if word in _NO_WORDS else 0.0
    return yes / (yes + no) if yes + no > 0 else None


def _first_word_verdict(reply: str) -> float | None:
    words = reply.split()
    return yes_share({words[0]: 1.0}) if words else None


LOCAL_PROBE_TIMEOUT_S = 0.5


def find_local_server(ports: list[int]) -> str | None:
    """The first OpenAI-compatible server listing a model on one of these ports of 127.0.0.1.
    Only this machine is asked: `auto` never sends a question anywhere else on its own."""
    import httpx

    for port in ports:
        url = f"http://127.0.0.1:{port}/v1"
        try:
            reply = httpx.get(f"{url}/models", timeout=LOCAL_PROBE_TIMEOUT_S)
            if reply.status_code == 200 and reply.json().get("data"):
                return url
        except (httpx.HTTPError, ValueError, AttributeError):
            continue
    return None


def resolve_auto(settings: Settings) -> tuple[Settings | None, str]:
    """RAG_LLM=auto: the settings of the model to answer with (None: the extractive answerer),
    and why, in words for the user."""
    if settings.openai_base_url:
        return settings.with_overrides(llm="openai"), f"the configured endpoint {settings.openai_base_url}"
    if settings.gguf_path:
        return settings.with_overrides(llm="llamacpp"), f"the configured model file {settings.gguf_path}"
    installed = default_model(settings)
    installed_why = f"the installed model {installed.name} (rag model use to change)" if installed else ""
    if installed and installed.served_by_ollama:
        ollama_name = installed.name.removeprefix(OLLAMA_PREFIX)
        return settings.with_overrides(
            llm="openai", openai_base_url=f"{settings.ollama_url}/v1", openai_model=ollama_name
        ), installed_why
    if installed and runtime_ready():
        return settings.with_overrides(llm="llamacpp", gguf_path=installed.path), installed_why
    # An installed model that cannot run is named, so the user learns why another answers.
    not_runnable = (
        f"the installed model {installed.name} needs llama-cpp-python (python -m rag.models installs it); "
        if installed
        else ""
    )
    found = find_local_server(settings.local_llm_ports)
    if found:
        return settings.with_overrides(llm="openai", openai_base_url=found), f"{not_runnable}the model server found at {found}"
    ports = ", ".join(map(str, settings.local_llm_ports))
    return None, f"{not_runnable}no model is configured and no model server answered on 127.0.0.1 ports {ports}"


def make_chat_backend(settings: Settings) -> ChatBackend:
    if settings.llm == "openai":
        return OpenAIChat.from_settings(settings)
    if settings.llm == "llamacpp":
        return LlamaCppChat.from_settings(settings)
    raise LLMUnavailable(f"RAG_LLM={settings.llm} has no chat model: use openai or llamacpp")


class OpenAIChat:
    """Any OpenAI-compatible endpoint (OpenAI, vLLM, Ollama, LM Studio, llama.cpp's server),
    through langchain's ChatOpenAI."""

    def __init__(
        self, base_url: str, api_key: str | None, model: str | None, max_tokens: int, timeout_s: float
    ):
        from langchain_openai import ChatOpenAI

        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.timeout_s = timeout_s
        # One cheap request first, so an unreachable server fails in seconds with a clear reason.
        served = self._served_models()
        self.model = model or (served[0] if served else None)
        if not self.model:
            raise LLMUnavailable(f"the model server at {self.base_url} lists no models: set RAG_OPENAI_MODEL")
        self.name = f"openai:{self.model}"
        self._chat = ChatOpenAI(
            base_url=self.base_url,
            api_key=api_key or "not-needed",  # local servers ignore it; the client wants one
            model=self.model,
            temperature=0,
            timeout=timeout_s,
            max_retries=0,  # a retry would hide a dead server behind minutes of waiting
            # langchain sends max_completion_tokens, which llama.cpp's server and others ignore
            extra_body={"max_tokens": max_tokens},
        )
        # The yes/no of the answerability check: one token, with the probabilities of its rivals.
        self._judge = self._chat.model_copy(
            update={"logprobs": True, "top_logprobs": TOP_LOGPROBS, "extra_body": {"max_tokens": 1}}
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> OpenAIChat:
        if not settings.openai_base_url:
            raise LLMUnavailable(
                "RAG_LLM=openai needs RAG_OPENAI_BASE_URL, e.g. http://127.0.0.1:8080/v1 "
                "(https://api.openai.com/v1 with RAG_OPENAI_API_KEY for OpenAI itself)"
            )
        return cls(
            settings.openai_base_url,
            settings.openai_api_key,
            settings.openai_model,
            settings.llm_max_tokens,
            settings.llm_timeout_s,
        )

    def stream(self, messages: list[dict[str, str]]) -> Iterator[str]:
        with self._server_errors():
            for chunk in self._chat.stream(messages):
                if isinstance(chunk.content, str) and chunk.content:
                    yield chunk.content

    def yes_probability(self, messages: list[dict[str, str]]) -> float | None:
        with self._server_errors():
            reply = self._judged(messages)
        content = (reply.response_metadata.get("logprobs") or {}).get("content") or []
        if content and content[0].get("top_logprobs"):
            return yes_share({t["token"]: math.exp(t["logprob"]) for t in content[0]["top_logprobs"]})
        return _first_word_verdict(reply.content if isinstance(reply.content, str) else "")

    def _judged(self, messages: list[dict[str, str]]):
        """The judge's reply. A server that cannot give log-probabilities (llama-cpp-python's
        started with --logits_all false, which makes it faster) is asked, from then on, for a
        two-token reply whose first word is read."""
        import openai

        try:
            return self._judge.invoke(messages)
        except openai.APIStatusError as exc:
            if "logprobs" not in str(exc.message).lower():
                raise
            self._judge = self._chat.model_copy(update={"extra_body": {"max_tokens": 2}})
            return self._judge.invoke(messages)

    @contextmanager
    def _server_errors(self):
        """A failed request as LLMUnavailable, in one line that says what to check."""
        import httpx
        import openai

        try:
            yield
        except openai.APITimeoutError as exc:
            raise LLMUnavailable(
                f"the model server at {self.base_url} did not answer within "
                f"{self.timeout_s:g} s (RAG_LLM_TIMEOUT_S)"
            ) from exc
        except openai.APIStatusError as exc:
            raise LLMUnavailable(
                f"the model server at {self.base_url} refused the request: "
                f"{exc.status_code} {_one_line(exc.message)}"
            ) from exc
        except (openai.APIError, httpx.HTTPError, OSError) as exc:
            raise LLMUnavailable(
                f"lost the connection to the model server at {self.base_url}: "
                f"{_one_line(str(exc) or type(exc).__name__)}"
            ) from exc

    def _served_models(self) -> list[str]:
        import httpx

        url = f"{self.base_url}/models"
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        try:
            response = httpx.get(url, headers=headers, timeout=min(REACHABILITY_TIMEOUT_S, self.timeout_s))
        except httpx.TimeoutException as exc:
            raise LLMUnavailable(
                f"the model server at {self.base_url} did not answer within "
                f"{min(REACHABILITY_TIMEOUT_S, self.timeout_s):g} s"
            ) from exc
        except httpx.HTTPError as exc:
            raise LLMUnavailable(
                f"cannot reach the model server at {self.base_url} "
                f"({_one_line(str(exc) or type(exc).__name__)}): is it running? "
                "Check RAG_OPENAI_BASE_URL"
            ) from exc
        if response.status_code in (401, 403):
            raise LLMUnavailable(
                f"the model server at {self.base_url} rejected the API key "
                f"({response.status_code}): check RAG_OPENAI_API_KEY"
            )
        if response.status_code == 404:
            raise LLMUnavailable(
                f"{url} does not exist: RAG_OPENAI_BASE_URL should be the API root, usually ending in /v1"
            )
        if response.status_code >= 400:
            raise LLMUnavailable(
                f"the model server at {self.base_url} answered {response.status_code} to {url}"
            )
        try:
            return [m["id"] for m in response.json().get("data", []) if isinstance(m, dict) and "id" in m]
        except ValueError:
            return []


class LlamaCppChat:
    """A local GGUF model through llama-cpp-python, in this process."""

    def __init__(self, path: Path, max_tokens: int, timeout_s: float):
        self.path = path
        self.max_tokens = max_tokens
        self.timeout_s = timeout_s
        self.name = f"llamacpp:{path.name}"
        self._llama, self._has_template = _load_gguf(path)
        self._lock = threading.Lock()  # one llama.cpp context answers one question at a time

    @classmethod
    def from_settings(cls, settings: Settings) -> LlamaCppChat:
        if settings.gguf_path is None:
            raise LLMUnavailable("RAG_LLM=llamacpp needs RAG_GGUF_PATH, the path to a .gguf model file")
        path = Path(settings.gguf_path).expanduser()
        if not path.is_file():
            raise LLMUnavailable(f"no GGUF model file at {path}: check RAG_GGUF_PATH")
        return cls(path, settings.llm_max_tokens, settings.llm_timeout_s)

    def stream(self, messages: list[dict[str, str]]) -> Iterator[str]:
        return self._complete(messages, self.max_tokens)

    def _complete(self, messages: list[dict[str, str]], max_tokens: int, logits_processor=None) -> Iterator[str]:
        if not self._has_template:
            messages = _system_into_user(messages)
        with self._lock:
            started = time.monotonic()
            try:
                chunks = self._llama.create_chat_completion(
                    messages=messages, stream=True, temperature=0.0, max_tokens=max_tokens,
                    logits_processor=logits_processor,
                )
                for chunk in chunks:
                    piece = chunk["choices"][0]["delta"].get("content")
                    if piece:
                        yield piece
                    if time.monotonic() - started > self.timeout_s:
                        raise LLMUnavailable(
                            f"the local model {self.path.name} took longer than "
                            f"{self.timeout_s:g} s (RAG_LLM_TIMEOUT_S)"
                        )
            except LLMUnavailable:
                raise
            except (RuntimeError, ValueError) as exc:  # e.g. the prompt does not fit the context
                raise LLMUnavailable(
                    f"the local model {self.path.name} failed: {_one_line(str(exc))}"
                ) from exc

    def yes_probability(self, messages: list[dict[str, str]]) -> float | None:
        from llama_cpp import LogitsProcessorList

        # llama-cpp-python returns log-probabilities only from a model loaded with logits_all, which
        # costs time on every token; the first token's are read as it is chosen instead.
        first_token = FirstTokenChances(self._llama.detokenize)
        reply = "".join(self._complete(messages, max_tokens=1, logits_processor=LogitsProcessorList([first_token])))
        return yes_share(first_token.top) if first_token.top else _first_word_verdict(reply)


class FirstTokenChances:
    """A llama-cpp-python logits processor that keeps the TOP_LOGPROBS likeliest first tokens of a
    reply and their probabilities, as a server's `top_logprobs` gives them, and changes nothing."""

    def __init__(self, detokenize):
        self.detokenize = detokenize
        self.top: dict[str, float] = {}

    def __call__(self, input_ids, scores):
        if not self.top:
            logits = np.asarray(scores, dtype=np.float64)
            probabilities = np.exp(logits - logits.max())
            probabilities /= probabilities.sum()
            for token in np.argsort(-probabilities)[:TOP_LOGPROBS]:
                word = self.detokenize([int(token)]).decode("utf-8", errors="replace")
                self.top[word] = self.top.get(word, 0.0) + float(probabilities[token])
        return scores


def _load_gguf(path: Path):
    try:
        from llama_cpp import Llama
    except ImportError as exc:
        raise LLMUnavailable(
            "a local model needs its runtime, llama-cpp-python: python -m rag.models installs it (rag model install does too)"
        ) from exc
    try:
        # A thread per core for generation too (llama-cpp-python's default is half the cores; the
        # prompt is already read with all of them).
        llama = Llama(model_path=str(path), n_ctx=N_CTX, n_threads=os.cpu_count(), verbose=False)
    except (ValueError, RuntimeError, OSError) as exc:
        raise LLMUnavailable(f"could not load {path} as a GGUF model: {_one_line(str(exc))}") from exc
    has_template = "tokenizer.chat_template" in llama.metadata
    if not has_template:
        # llama-cpp-python would fall back to the llama-2 format whatever the model
        architecture = llama.metadata.get("general.architecture", "")
        llama.chat_format = FALLBACK_CHAT_FORMATS.get(architecture, "chatml")
    return llama, has_template


def _system_into_user(messages: list[dict[str, str]]) -> list[dict[str, str]]:
    """Formats without a system role (Gemma's drops it silently) get the instructions in the
    first user turn instead."""
    system = "\n".join(m["content"] for m in messages if m["role"] == "system")
    rest = [dict(m) for m in messages if m["role"] != "system"]
    if system and rest and rest[0]["role"] == "user":
        rest[0]["content"] = f"{system}\n\n{rest[0]['content']}"
    return rest or messages


def _one_line(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()[:300]
