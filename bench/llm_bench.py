"""The LLM path's time: questions answered through `RAG_LLM=openai` by Qwen2.5-Coder-1.5B served by
llama.cpp's OpenAI-compatible server (llama-cpp-python), started here on a free local port.

Each question is asked under each preset compared (`PRESETS_COMPARED`, in turn, the order
alternating from one question to the next), so their times are compared within one run on a
shared machine. Per question it records the Assistant's own `Answer.timings` (first_token_ms,
check_ms, total_ms) and, by wrapping the chat backend the Assistant makes (`rag.answer.backends.make_chat_backend`), each request
to the model: the answerability check (one token) and the streamed answer (time to its first piece,
then the generation). Prompt and completion tokens are counted with the model's own tokenizer and
chat template (the GGUF's, loaded without weights), as the server tokenizes them; the server's log
says how many of them it evaluated, the rest being the prefix it kept from the previous request.
Nothing in rag/ is changed: what to cut is decided from these figures.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from bench.common import CACHE, ROOT, log, ms_since, summary
from rag.settings import PRESETS

MODEL_FILE = ".models/llm/qwen2.5-coder-1.5b.gguf"
ALIAS = "qwen"
SUITES = ("bundled", "bbc")  # answered over the eval suites' own indexes (evals/.cache/, built by `rag eval`)
# The default (the answerability verdict, then the answer, checked) beside the plain baseline (the answer alone).
PRESETS_COMPARED = ("default", "plain")
# Generous: on two cores shared with other work one request can take a minute; a timeout would
# turn a slow answer into a missing one.
TIMEOUT_S = 600.0
SERVER_LOG = CACHE / "llm-server.log"
_PREFIX_HIT = re.compile(r"(\d+) prefix-match hit, remaining (\d+) prompt tokens to eval")
_PROMPT_EVAL = re.compile(r"prompt eval time =\s*([\d.]+) ms /\s*(\d+) tokens")
_EVAL = re.compile(r"\beval time =\s*([\d.]+) ms /\s*(\d+) runs")


def model_path() -> Path | None:
    """The GGUF in this checkout's .models/, or in the main worktree's (a git worktree has none)."""
    common = subprocess.run(["git", "rev-parse", "--path-format=absolute", "--git-common-dir"], cwd=ROOT,
                            capture_output=True, text=True).stdout.strip()
    for base in (ROOT, Path(common).parent if common else ROOT):
        if (base / MODEL_FILE).exists():
            return base / MODEL_FILE
    return None


class TokenCounter:
    """Tokens as the server counts them: the chat template applied, then the tokenizer."""

    def __init__(self, path: Path):
        from llama_cpp import Llama
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        self.llama = Llama(model_path=str(path), vocab_only=True, verbose=False)
        text_of = self.llama._model.token_get_text
        self.formatter = Jinja2ChatFormatter(
            template=self.llama.metadata["tokenizer.chat_template"], eos_token=text_of(self.llama.token_eos()),
            bos_token=text_of(self.llama.token_bos()),
        )

    def prompt(self, messages: list[dict[str, str]]) -> int:
        result = self.formatter(messages=messages)
        return len(self.llama.tokenize(result.prompt.encode(), add_bos=not result.added_special, special=True))

    def text(self, text: str) -> int:
        return len(self.llama.tokenize(text.encode(), add_bos=False, special=False))


class ServerLog:
    """What the server logged since the last look: how many prompt tokens it evaluated, and its own
    timing of the prompt's reading and of the generation (llama.cpp's perf lines)."""

    def __init__(self, path: Path):
        self.path = path
        self.seen = 0

    def read(self, prompt_tokens: int) -> dict:
        text = self.path.read_text(errors="replace")[self.seen :]
        self.seen += len(text)
        found = {"evaluated_tokens": self._evaluated(text, prompt_tokens)}
        if prompt := _PROMPT_EVAL.findall(text):
            found["server_prompt_ms"] = float(prompt[-1][0])
        if generation := _EVAL.findall(text):
            found["server_eval_ms"], found["server_eval_runs"] = float(generation[-1][0]), int(generation[-1][1])
        return found

    @staticmethod
    def _evaluated(text: str, prompt_tokens: int) -> int:
        if "full prompt already cached" in text:
            return 0
        hits = _PREFIX_HIT.findall(text)
        return int(hits[-1][1]) if hits else prompt_tokens  # no prefix kept: all of it


class RecordingChat:
    """The project's chat backend, each request timed and its tokens counted."""

    def __init__(self, inner, counter: TokenCounter, server_log: ServerLog, calls: list[dict]):
        self.inner = inner
        self.name = inner.name
        self.counter = counter
        self.server_log = server_log
        self.calls = calls  # shared with the bench, which empties it before each question

    def yes_probability(self, messages):
        started = time.perf_counter()
        try:
            return self.inner.yes_probability(messages)
        finally:
            self._record("check", messages, ms_since(started))

    def stream(self, messages):
        started = time.perf_counter()
        first, text = None, ""
        try:
            for piece in self.inner.stream(messages):
                first = first if first is not None else ms_since(started)
                text += piece
                yield piece
        finally:
            self._record("answer", messages, ms_since(started), first_piece_ms=first,
                         completion_tokens=self.counter.text(text))

    def _record(self, kind: str, messages, ms: float, **extra) -> None:
        tokens = self.counter.prompt(messages)
        self.calls.append({"kind": kind, "ms": ms, "prompt_tokens": tokens, **self.server_log.read(tokens), **extra})


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def llama_server(path: Path):
    """The llama.cpp server on a free local port, as evals/runs/committed/llm/ starts it: a thread per
    core (its default is half the cores), and no logits kept for every prompt token (the verdict is
    then read from the reply's first word): yields its API root and how long it took to answer;
    stopped on the way out."""
    port = _free_port()
    base_url = f"http://127.0.0.1:{port}/v1"
    command = [sys.executable, "-m", "llama_cpp.server", "--model", str(path), "--model_alias", ALIAS,
               "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "4096",
               "--n_threads", str(os.cpu_count()), "--logits_all", "false"]
    started = time.perf_counter()
    SERVER_LOG.parent.mkdir(parents=True, exist_ok=True)
    with open(SERVER_LOG, "w") as out:
        server = subprocess.Popen(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_for_models(base_url, server)
        ready_s = ms_since(started) / 1000
        log(f"llama.cpp server up on port {port} after {ready_s:.1f} s")
        yield base_url, ready_s
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def _wait_for_models(base_url: str, server: subprocess.Popen, timeout: float = 300) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the llama.cpp server exited with {server.returncode} (bench/cache/llm-server.log)")
        try:
            if httpx.get(f"{base_url}/models", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"the llama.cpp server did not answer at {base_url} within {timeout:.0f} s")


def _forget_the_last_prompt(base_url: str) -> None:
    """A one-token request with the system prompt and another question, so that the next question
    finds only the system prompt cached, as after any other question (the same question under the
    other preset would otherwise find its whole prompt cached)."""
    import httpx

    from rag.answer.llm import SYSTEM_PROMPT

    messages = [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": "Question: hello?"}]
    body = {"model": ALIAS, "messages": messages, "max_tokens": 1, "temperature": 0}
    httpx.post(f"{base_url}/chat/completions", json=body, timeout=TIMEOUT_S).raise_for_status()


def _ask(assistant, calls: list[dict], question: str) -> dict:
    """One question, streamed: the Answer's timings and the model requests it made."""
    from rag.answer.backends import LLMUnavailable
    from rag.assistant import Final

    calls.clear()
    started = time.perf_counter()
    try:
        final = next(e for e in assistant.stream(question) if isinstance(e, Final))
    except LLMUnavailable as exc:
        return {"question": question, "error": str(exc), "wall_ms": ms_since(started), "calls": list(calls)}
    answer = final.answer
    return {"question": question, "wall_ms": ms_since(started), "timings": answer.timings,
            "backend": answer.backend, "abstained": answer.abstained, "fallback": answer.fallback,
            "answerable": answer.answerable, "model_asked": bool(calls), "calls": list(calls)}


def _spread(questions: list[str], count: int) -> list[str]:
    """`count` questions spread over the file, so each kind of question the suite has is in."""
    return questions[:: max(1, len(questions) // count)][:count]


def run(questions: int = 20, presets: tuple[str, ...] = PRESETS_COMPARED) -> dict:
    """`questions` from each suite (bundled, and BBC when its corpus is here) through the LLM path,
    under each of `presets`. Run in a fresh process: it patches rag.answer.backends.make_chat_backend."""
    from rag.answer import backends

    path = model_path()
    if path is None:
        return {"missing": f"no {MODEL_FILE} here or in the main worktree (rag model install qwen2.5-coder-1.5b fetches it)"}
    counter = TokenCounter(path)
    calls: list[dict] = []
    make, reader = backends.make_chat_backend, ServerLog(SERVER_LOG)
    backends.make_chat_backend = lambda settings: RecordingChat(make(settings), counter, reader, calls)
    with llama_server(path) as (base_url, ready_s):
        suites = {suite: _suite(suite, base_url, calls, questions, presets) for suite in SUITES}
    every = {preset: [r for s in suites.values() for r in s.get(preset, {}).get("runs", [])]
             for preset in presets}
    return {"model": path.name, "server_ready_s": ready_s, "n_ctx": 4096, "presets": list(presets),
            "suites": suites, "summary": {preset: summarise(runs) for preset, runs in every.items()}}


def _suite(name: str, base_url: str, calls: list[dict], count: int, presets: tuple[str, ...]) -> dict:
    from rag.assistant import Assistant
    from rag.evals.suites import SUITES_FILE, SuiteError, pick_suites
    from rag.settings import Settings

    try:
        suite = next(iter(pick_suites([name], SUITES_FILE)))
        settings = suite.settings(Settings(llm="openai", openai_base_url=base_url, openai_model=ALIAS,
                                           llm_timeout_s=TIMEOUT_S))
        suite.prepare(settings)
    except SuiteError as exc:
        log(f"llm {name}: skipped, {exc}")
        return {"missing": str(exc)}
    first = Assistant.from_settings(settings.with_overrides(**PRESETS[presets[0]]))
    assistants = {preset: Assistant(settings.with_overrides(**PRESETS[preset]), retriever=first.retriever)
                  for preset in presets}
    every = [q.question for q in suite.questions()]
    for assistant in assistants.values():  # outside the sample: the model's pages read, the backend connected
        _ask(assistant, calls, every[-1])
    runs: dict[str, list[dict]] = {preset: [] for preset in presets}
    for number, question in enumerate(_spread(every, count), 1):
        order = presets if number % 2 else presets[::-1]
        for preset in order:
            _forget_the_last_prompt(base_url)
            runs[preset].append(_ask(assistants[preset], calls, question))
            log(f"llm {name} {preset} {number}/{count}: {runs[preset][-1]['wall_ms'] / 1000:.1f} s")
    return {preset: {"runs": runs[preset], "summary": summarise(runs[preset])} for preset in presets}


def summarise(runs: list[dict]) -> dict:
    """p50/p95 of each figure over the questions the model was asked, and where their time went."""
    asked = [r for r in runs if r.get("model_asked") and "error" not in r]
    checks = [c for r in asked for c in r["calls"] if c["kind"] == "check"]
    answers = [c for r in asked for c in r["calls"] if c["kind"] == "answer"]
    generation = [c["ms"] - c["first_piece_ms"] for c in answers if c["first_piece_ms"] is not None]
    generated = [c["completion_tokens"] for c in answers if c["first_piece_ms"] is not None]
    total = sum(r["timings"]["total_ms"] for r in asked) or float("nan")
    spent = {
        "retrieve and rank": sum(r["timings"]["retrieve_ms"] + r["timings"]["rank_ms"] for r in asked),
        "answerability check (prompt + 1 token)": sum(c["ms"] for c in checks),
        "answer: prompt to its first token": sum(c["first_piece_ms"] or c["ms"] for c in answers),
        "answer: generating the rest": sum(generation),
    }
    spent["other (validation, citing, Python)"] = total - sum(spent.values())
    return {
        "questions": len(runs),
        "model_asked": len(asked),
        "errors": sum("error" in r for r in runs),
        "refused_by_check": sum(1 for r in asked if not any(c["kind"] == "answer" for c in r["calls"])),
        "fallbacks": sum(1 for r in asked if r["fallback"]),
        "first_token_ms": summary([r["timings"]["first_token_ms"] for r in asked if "first_token_ms" in r["timings"]]),
        "total_ms": summary([r["timings"]["total_ms"] for r in asked]),
        "all_total_ms": summary([r["timings"]["total_ms"] for r in runs if "timings" in r]),
        "check_ms": summary([c["ms"] for c in checks]),
        "check_prompt_tokens": summary([c["prompt_tokens"] for c in checks]),
        "check_evaluated_tokens": summary([c["evaluated_tokens"] for c in checks]),
        "answer_prompt_tokens": summary([c["prompt_tokens"] for c in answers]),
        "answer_evaluated_tokens": summary([c["evaluated_tokens"] for c in answers]),
        "answer_first_piece_ms": summary([c["first_piece_ms"] for c in answers if c["first_piece_ms"] is not None]),
        "generation_ms": summary(generation),
        "completion_tokens": summary(generated),
        "prompt_tokens_per_s": _rate([c["evaluated_tokens"] for c in checks], [c["ms"] for c in checks]),
        "server_check_prompt_ms": summary([c["server_prompt_ms"] for c in checks if "server_prompt_ms" in c]),
        "server_prompt_tokens_per_s": _rate([c["evaluated_tokens"] for c in checks if "server_prompt_ms" in c],
                                            [c["server_prompt_ms"] for c in checks if "server_prompt_ms" in c]),
        "server_generated_tokens_per_s": _rate([c["server_eval_runs"] for c in answers if "server_eval_ms" in c],
                                               [c["server_eval_ms"] for c in answers if "server_eval_ms" in c]),
        "generated_tokens_per_s": _rate([t - 1 for t in generated], generation),
        "time_share": {name: ms / total for name, ms in spent.items()},
    }


def _rate(counts: list[float], ms: list[float]) -> float:
    return sum(counts) / (sum(ms) / 1000) if sum(ms) else float("nan")
