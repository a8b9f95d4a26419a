"""The same pipeline against a real `chroma run` chroma_server instead of the embedded store."""

import pytest

from rag.assistant import Assistant
from rag.index.ingestor import Ingestor
from rag.index.store import StoreUnavailable
from tests.conftest import make_project

QUESTION = "What did EXIM approve under Project Vault?"


def test_ingest_and_ask_through_a_chroma_server(tmp_path, chroma_server):
    settings = make_project(tmp_path / "project", chroma_url=chroma_server.url)
    report = Ingestor(settings).run(show_progress=False)
    assert len(report.added) == 5
    assert not (settings.index_dir / "chroma").exists(), "vectors live on the chroma_server, not in the index folder"
    assistant = Assistant(settings)
    first = assistant.ask(QUESTION)
    assert "10 billion" in first.answer and not first.abstained
    again = Ingestor(settings).run(show_progress=False)
    assert not again.changed

    chroma_server.stop()
    chroma_server.start()
    after_restart = Assistant(settings).ask(QUESTION)
    assert after_restart.answer == first.answer
    assert [c.chunk_id for c in after_restart.citations] == [c.chunk_id for c in first.citations]


def test_a_lost_server_gives_one_clear_error_then_recovers(tmp_path, chroma_server):
    settings = make_project(tmp_path / "project", chroma_url=chroma_server.url)
    Ingestor(settings).run(show_progress=False)
    assistant = Assistant(settings)
    expected = assistant.ask(QUESTION).answer
    chroma_server.stop(kill=True)
    with pytest.raises(StoreUnavailable, match="not answering"):
        assistant.ask(QUESTION)
    chroma_server.start()
    assert assistant.ask(QUESTION).answer == expected
