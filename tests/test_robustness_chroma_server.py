"""A `chroma run` server killed while questions are being answered (tests/test_chroma_server.py
covers a restart and a kill between questions): every question in flight fails with the one
clear StoreUnavailable error, none with a stray exception or a wrong answer, and after a restart
the same answers come back."""

from __future__ import annotations

import threading
import time

from rag.assistant import Assistant
from rag.index.ingestor import Ingestor
from rag.index.store import StoreUnavailable
from tests.chroma_server import ChromaServer
from tests.conftest import make_project

EXIM = "What did EXIM approve under Project Vault?"
ASKERS = 3


def test_a_server_killed_mid_query_gives_one_clear_error_then_recovers(tmp_path):
    data = tmp_path / "chroma-data"
    data.mkdir()
    server = ChromaServer(data).start()
    try:
        settings = make_project(tmp_path / "project", chroma_url=server.url)
        Ingestor(settings).run(show_progress=False)
        assistant = Assistant(settings)
        expected = assistant.ask(EXIM)
        answers, errors, stop = [], [], threading.Event()

        def keep_asking():
            while not stop.is_set():
                try:
                    answers.append(assistant.ask(EXIM).answer)
                except Exception as exc:  # what a caller of the API would see
                    errors.append(exc)

        askers = [threading.Thread(target=keep_asking) for _ in range(ASKERS)]
        for asker in askers:
            asker.start()
        time.sleep(1.5)
        answered_before_kill = len(answers)
        server.stop(kill=True)
        time.sleep(1.0)
        stop.set()
        for asker in askers:
            asker.join(timeout=60)

        assert answered_before_kill > 0 and errors, (answered_before_kill, errors)
        assert all(isinstance(e, StoreUnavailable) and "not answering" in str(e) for e in errors), {
            type(e).__name__: str(e)[:200] for e in errors
        }
        assert set(answers) == {expected.answer}
        print(
            f"\n{len(answers)} answers, then {len(errors)} questions refused with StoreUnavailable "
            f"({sorted({type(e.__cause__).__name__ for e in errors})})"
        )

        server.start()
        again = assistant.ask(EXIM)
        assert again.answer == expected.answer
        assert [c.chunk_id for c in again.citations] == [c.chunk_id for c in expected.citations]
    finally:
        server.stop()
