"""One index, many processes: a real `rag serve` keeps answering while real `rag ingest` and
`rag ingest --rebuild` processes change its index. After each commit the next question sees it
(new articles answerable, deleted ones gone, a rebuilt collection read), without a restart, and
no request fails, before, during or after."""

from __future__ import annotations

import random
import subprocess
import threading
import time

import pytest
from gradio_client.exceptions import AppError

pytest.register_assert_rewrite("tests.robustness")

from tests.conftest import make_project  # noqa: E402
from tests.processes import stop_process  # noqa: E402
from tests.robustness import (  # noqa: E402
    RAG,
    check_consistent,
    cli_env,
    generated_article,
    rag,
    snapshot_in_subprocess,
    writable_copy,
    write_generated_articles,
)

pytest_plugins = ["tests.ui_server"]

EXIM = "What did EXIM approve under Project Vault?"


def library_article(index: int, seed: int = 11) -> tuple[str, str, str, str]:
    """(file name, text, question, answer) of a generated library article (every eighth index
    from 2 is one): "the shelves hold N books" answers "How many books ... hold?"."""
    assert index % 8 == 2
    name, text = generated_article(index, random.Random(seed))
    town = text.split(" ", 1)[0]
    books = text.split("the shelves hold ")[1].split(" books")[0]
    return name, text, f"How many books do the shelves of the new library in {town} hold?", books


class Asker:
    """Asks questions over and over in a thread, recording every failure, until stopped."""

    def __init__(self, url: str, ui_client, question: str, expected: str):
        self.client = ui_client(url)
        self.question, self.expected = question, expected
        self.answers: list[dict] = []
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Asker:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=120)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                answer = self.client.predict(self.question, api_name="/ask")
                self.answers.append(answer)
                if self.expected not in answer["answer"]:
                    self.failures.append(f"wrong answer: {answer['answer'][:200]}")
            except Exception as exc:
                self.failures.append(f"{type(exc).__name__}: {exc}")
            time.sleep(0.2)


def ask(client, question: str) -> dict:
    return client.predict(question, api_name="/ask")


def test_ingest_and_rebuild_in_other_processes_reach_the_running_chat(tmp_path, launcher, ui_client):
    settings = writable_copy(make_project(tmp_path))
    assert rag(tmp_path, "ingest", "--quiet").returncode == 0
    server = launcher.serve(tmp_path)
    client = ui_client(server.url)
    assert "10 billion" in ask(client, EXIM)["answer"]

    name, text, question, books = library_article(2)
    before = ask(client, question)
    assert books not in before["answer"]

    # A new article, ingested by another process while questions keep coming.
    (settings.corpus_dir / name).write_text(text)
    with Asker(server.url, ui_client, EXIM, "10 billion") as asker:
        done = rag(tmp_path, "ingest", "--quiet")
        assert done.returncode == 0, done.stderr[-2000:]
        added = ask(client, question)
    assert books in added["answer"], added
    assert any(c["source"].endswith(name) for c in added["citations"])
    assert asker.answers and not asker.failures, asker.failures[:3]

    # A rebuild drops the collection the server had open and writes a new one.
    with Asker(server.url, ui_client, question, books) as asker:
        done = rag(tmp_path, "ingest", "--rebuild", "--quiet")
        assert done.returncode == 0, done.stderr[-2000:]
        rebuilt = ask(client, question)
        assert "10 billion" in ask(client, EXIM)["answer"]
    assert books in rebuilt["answer"]
    assert len(asker.answers) >= 3 and not asker.failures, asker.failures[:3]

    # Deleted, and committed by another process: gone from the next answer.
    (settings.corpus_dir / name).unlink()
    done = rag(tmp_path, "ingest", "--quiet")
    assert done.returncode == 0 and "1 removed" in done.stdout, done.stdout
    gone = ask(client, question)
    assert books not in gone["answer"]
    assert not any(c["source"].endswith(name) for c in gone["citations"] + gone["nearest"])
    assert "10 billion" in ask(client, EXIM)["answer"]
    assert "Traceback" not in server.log.read_text()

    # A damaged index: the chat says what is wrong and how to fix it, then heals with the rebuild.
    (settings.index_dir / "manifest.json").write_text("{")
    with pytest.raises(AppError, match="rag ingest --rebuild"):
        ask(client, EXIM)
    assert rag(tmp_path, "ingest", "--rebuild", "--quiet").returncode == 0
    assert "10 billion" in ask(client, EXIM)["answer"]


def test_two_ingests_at_once_take_turns_and_the_waiting_one_says_so(tmp_path):
    """Two real `rag ingest` processes over one index: the second waits for the first's lock and
    says so on stderr; both succeed, and the index is what one ingest would have built."""
    write_generated_articles(tmp_path / "corpus", 40)
    lock = tmp_path / "index" / ".ingest.lock"
    first = subprocess.Popen([*RAG, "ingest", "--quiet"], cwd=tmp_path, env=cli_env(tmp_path),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (lock.exists() and lock.read_text().startswith("pid")):  # the first holds the lock
            assert first.poll() is None and time.monotonic() < deadline, first.communicate()
            time.sleep(0.01)
        second = rag(tmp_path, "ingest", "--quiet")
        out, err = first.communicate(timeout=300)
    finally:
        stop_process(first, kill=True)
    assert first.returncode == 0 and "40 added" in out, err
    assert second.returncode == 0, second.stderr
    assert f"Waiting for another ingest of {tmp_path / 'index'} to finish (pid {first.pid})" in second.stderr
    assert "Index up to date" in second.stdout, second.stdout  # it saw the first's commit
    check_consistent(snapshot_in_subprocess(tmp_path))
