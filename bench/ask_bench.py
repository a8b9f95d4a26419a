"""End-to-end answers: warm `Assistant.stream` in a running process, cold `rag ask` processes, the
chat's streaming API (`rag serve` + gradio_client), and the memory of a serving process.

Every run uses the offline default answerer (extractive) and the bench's own copy of an index. The
questions come from an eval suite's file (`questions_file`, relative to the project): the bundled
corpus's evals/questions.jsonl by default, evals/suites/bbc/questions.jsonl for the BBC corpus.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

from bench import synthetic
from bench.common import CACHE, ROOT, log, memory_mb, ms_since, summary
from bench.indexes import bench_settings

QUESTIONS_FILE = "evals/questions.jsonl"
STAGES = ("embed_ms", "dense_ms", "keyword_ms", "fuse_ms", "retrieve_ms", "rank_ms", "generate_ms", "total_ms")
RAG = Path(sys.executable).parent / "rag"


def eval_questions(limit: int | None = None, questions_file: str = QUESTIONS_FILE) -> list[str]:
    lines = (ROOT / questions_file).read_text().splitlines()
    return [json.loads(line)["question"] for line in lines if line.strip()][:limit]


def _streamed(assistant, question: str) -> dict:
    """Milliseconds to the sources, to the first token and to the whole answer, and its timings."""
    from rag.assistant import Final, Sources, Token

    marks: dict[str, float] = {}
    started = time.perf_counter()
    for event in assistant.stream(question):
        if isinstance(event, Sources):
            marks.setdefault("sources_ms", ms_since(started))
        elif isinstance(event, Token):
            marks.setdefault("first_token_ms", ms_since(started))
        elif isinstance(event, Final):
            marks["answer_ms"] = ms_since(started)
            marks["timings"] = event.answer.timings
            marks["abstained"] = event.answer.abstained
    return marks


def _assistant(index_dir: str, corpus_dir: str):
    from rag.assistant import Assistant

    return Assistant.from_settings(bench_settings(ROOT / index_dir, ROOT / corpus_dir))


def warm(index_dir: str, corpus_dir: str, passes: int = 2, limit: int | None = None,
         questions_file: str = QUESTIONS_FILE) -> dict:
    """Every eval question, `passes` times, through one Assistant; run in a fresh process."""
    assistant = _assistant(index_dir, corpus_dir)
    questions = eval_questions(limit, questions_file)
    for question in questions[:3]:
        assistant.ask(question)
    runs = [_streamed(assistant, q) for _ in range(passes) for q in questions]
    return {
        "questions": len(questions),
        "asks": len(runs),
        "abstained": sum(r["abstained"] for r in runs),
        "latency_ms": {key: summary([r[key] for r in runs]) for key in ("sources_ms", "first_token_ms", "answer_ms")},
        "stages_ms": _stages(runs),
        **memory_mb(),
    }


def _stages(runs: list[dict]) -> dict:
    """p50/p95 of each `Answer.timings` stage, plus what the stage timers leave out: the question's
    clean-up and rewrite, and the answer's composition after the ranking."""
    stages = {name: [r["timings"][name] for r in runs if name in r["timings"]] for name in STAGES}
    stages["retrieve_other_ms"] = [
        r["timings"]["retrieve_ms"] - sum(r["timings"].get(s, 0.0) for s in STAGES[:4]) for r in runs
    ]
    stages["compose_ms"] = [r["timings"]["generate_ms"] - r["timings"]["rank_ms"] for r in runs]
    return {name: summary(values) for name, values in stages.items() if values}


def serving(index_dir: str, corpus_dir: str, questions: int = 20, seed: int = 1,
            questions_file: str | None = None) -> dict:
    """A serving process over one index: answer latency and memory after some questions (generated
    ones, or the first of an eval suite's file)."""
    started = time.perf_counter()
    assistant = _assistant(index_dir, corpus_dir)
    if questions_file:
        asked = eval_questions(questions + 3, questions_file)
    else:
        asked = synthetic.questions(seed + 2000, questions + 3)
    first = _streamed(assistant, asked[0])
    ready_s = ms_since(started) / 1000
    for question in asked[1:3]:
        assistant.ask(question)
    runs = [_streamed(assistant, q) for q in asked[3:]]
    return {
        "questions": len(runs),
        "ready_after_first_answer_s": ready_s,
        "first_answer_ms": first["answer_ms"],
        "answer_ms": summary([r["answer_ms"] for r in runs]),
        "stages_ms": _stages(runs),
        **memory_mb(),
    }


def _rag_env(index_dir: str, corpus_dir: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    return {**env, "RAG_INDEX_DIR": str(ROOT / index_dir), "RAG_CORPUS_DIR": str(ROOT / corpus_dir),
            "RAG_LLM": "extractive"}


def cold(index_dir: str, corpus_dir: str, runs: int = 5, questions_file: str = QUESTIONS_FILE) -> dict:
    """Fresh `rag ask QUESTION --json` processes, each a different question, timed from outside."""
    env = _rag_env(index_dir, corpus_dir)
    walls, inner = [], []
    questions = eval_questions(questions_file=questions_file)
    for question in questions[:: max(1, len(questions) // runs)][:runs]:
        started = time.perf_counter()
        done = subprocess.run([str(RAG), "ask", question, "--json"], env=env, cwd=ROOT,
                              capture_output=True, text=True, check=True)
        walls.append(ms_since(started) / 1000)
        inner.append(json.loads(done.stdout)["timings"]["total_ms"])
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    return {
        "runs": runs,
        "wall_s": summary(walls),
        "first_answer_ms_inside": summary(inner),
        "python_startup_s": ms_since(started) / 1000,
        "stages_s": _cold_stages(index_dir, corpus_dir, questions_file),
        "imports": import_profile(index_dir, corpus_dir, questions_file),
    }


def cold_stages(index_dir: str, corpus_dir: str, questions_file: str = QUESTIONS_FILE) -> dict:
    """Inside a fresh process: what `rag ask` does, step by step, in seconds."""
    marks = {}
    started = time.perf_counter()
    import rag.assistant  # noqa: F401  (the CLI's own import)

    marks["import_rag_assistant"] = time.perf_counter() - started
    step = time.perf_counter()
    assistant = _assistant(index_dir, corpus_dir)
    marks["load_model (Assistant.from_settings)"] = time.perf_counter() - step
    step = time.perf_counter()
    import chromadb  # noqa: F401

    marks["import_chromadb"] = time.perf_counter() - step
    step = time.perf_counter()
    question = eval_questions(1, questions_file)[0]
    assistant.ask(question)
    marks["first_ask (opens the store and keyword index)"] = time.perf_counter() - step
    step = time.perf_counter()
    assistant.ask(question)
    marks["second_ask"] = time.perf_counter() - step
    marks["total"] = time.perf_counter() - started
    heavy = ("torch", "sentence_transformers", "transformers", "sklearn", "scipy", "pandas")
    return {"seconds": marks, "heavy_modules_loaded": [name for name in heavy if name in sys.modules]}


def _cold_stages(index_dir: str, corpus_dir: str, questions_file: str) -> dict:
    from bench.common import in_fresh_process

    return in_fresh_process("bench.ask_bench:cold_stages", index_dir=index_dir, corpus_dir=corpus_dir,
                            questions_file=questions_file)


def import_profile(index_dir: str, corpus_dir: str, questions_file: str = QUESTIONS_FILE, top: int = 12) -> list[dict]:
    """`python -X importtime -m rag.cli ask ...`: import time by package, each module's own (self)
    time counted under the package it belongs to, whoever imported it. (-X importtime slows
    imports down, so the shares matter more than the sums.)"""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "rag.cli", "ask", eval_questions(1, questions_file)[0], "--json"],
        env=_rag_env(index_dir, corpus_dir), cwd=ROOT, capture_output=True, text=True, check=True,
    )
    totals: dict[str, float] = {}
    line_re = re.compile(r"import time:\s+(\d+) \|\s+\d+ \|\s*(\S+)")
    for line in done.stderr.splitlines():
        match = line_re.match(line)
        if match:
            package = match.group(2).split(".")[0]
            totals[package] = totals.get(package, 0.0) + int(match.group(1)) / 1e6
    ranked = sorted(totals.items(), key=lambda item: item[1], reverse=True)[:top]
    return [{"package": name, "seconds": seconds} for name, seconds in ranked]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_for(url: str, process: subprocess.Popen, timeout: float) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"rag serve exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)  # the first answer after the start is measured: poll finely
    raise TimeoutError(f"rag serve did not answer at {url} within {timeout:.0f}s")


def _process_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def ui(index_dir: str, corpus_dir: str, questions: int = 20, timeout: float = 240,
       questions_file: str = QUESTIONS_FILE, floor: bool = True) -> dict:
    """Time to the sources, the first token and the answer through the chat's `/ask` endpoint
    (gradio_client streaming), against a `rag serve` started here on a free local port, and how
    long after its start the first answer came; then the same against bench/gradio_floor.py, an
    endpoint of the same shape that computes nothing (`floor`; it does not depend on the index)."""
    env = {**_rag_env(index_dir, corpus_dir), "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1"}
    asked = eval_questions(questions + 2, questions_file)
    chat = _serve_and_time(lambda port: [str(RAG), "serve", "--host", "127.0.0.1", "--port", str(port)],
                           env, asked, timeout)
    if floor:
        chat["floor"] = _serve_and_time(lambda port: [sys.executable, "-m", "bench.gradio_floor", str(port)],
                                        env, asked, timeout)
    # The same questions in the same order through a fresh Assistant here: its caches start as cold
    # as the server's did, so the difference is the chat's own cost.
    assistant = _assistant(index_dir, corpus_dir)
    for question in asked[:2]:
        assistant.ask(question)
    runs = [_streamed(assistant, q) for q in asked[2:]]
    chat["in_process_ms"] = {key: summary([r[key] for r in runs]) for key in ("sources_ms", "first_token_ms", "answer_ms")}
    return chat


def _serve_and_time(command, env: dict, asked: list[str], timeout: float) -> dict:
    """Start the server, then: HTTP up, the first answer (asked[0]), one more question to warm up,
    and the rest timed; the server's RSS at the end."""
    from gradio_client import Client

    port = _free_port()
    url = f"http://127.0.0.1:{port}/"
    started = time.perf_counter()
    with open(CACHE / "ui-server.log", "a") as out:
        server = subprocess.Popen(command(port), env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_for(url, server, timeout)
        ready_s = ms_since(started) / 1000
        client = Client(url, verbose=False, download_files=False, analytics_enabled=False)
        first = _streamed_ui(client, asked[0])
        first_answer_s = ms_since(started) / 1000
        client.predict(asked[1], [], 5, "extractive", "", "", "", api_name="/ask")
        runs = [_streamed_ui(client, q) for q in asked[2:]]
        return {
            "server_ready_s": ready_s,
            "first_answer_after_start_s": first_answer_s,
            "first_answer_ms": first["answer_ms"],
            "questions": len(runs),
            "latency_ms": {key: summary([r[key] for r in runs if key in r])
                           for key in ("sources_ms", "first_token_ms", "answer_ms")},
            "server_rss_mb": _process_rss_mb(server.pid),
        }
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def _streamed_ui(client, question: str) -> dict:
    marks: dict[str, float] = {}
    started = time.perf_counter()
    job = client.submit(question, [], 5, "extractive", "", "", "", api_name="/ask")
    for output in job:
        event = output.get("event") if isinstance(output, dict) else None
        if event == "sources":
            marks.setdefault("sources_ms", ms_since(started))
        elif event == "token":
            marks.setdefault("first_token_ms", ms_since(started))
        elif isinstance(output, dict) and "answer" in output:
            marks["answer_ms"] = ms_since(started)
    marks.setdefault("answer_ms", ms_since(started))
    return marks


if __name__ == "__main__":
    log(json.dumps(warm("bench/cache/index-bundled", "corpus", passes=1, limit=10), indent=1))
