"""Question answering over news articles, with every claim cited to the passage it came from.

from rag import Assistant, Settings
answer = Assistant.from_settings(Settings()).ask("What did EXIM approve under Project Vault?")

The stages live in packages, in the order data flows: rag.ingest (files to articles and chunks),
rag.index (the persisted index), rag.answer (a question to a cited answer), rag.evals (question
suites scored). Tools outside rag/ (ui/, the CLI) use the names listed here, rag.assistant and
rag.settings, never the stages' modules.
"""

from importlib import import_module

from rag.settings import PRESETS, Settings, preset

# Imported on first use: loading torch and Chroma takes seconds that `rag --help` should not pay.
_LAZY = {
    "Assistant": "rag.assistant",
    "Answer": "rag.answer.result",
    "Citation": "rag.answer.result",
    "CITATION_RE": "rag.answer.citations",
    "REFUSAL": "rag.answer.citations",
    "Filters": "rag.answer.retrieve",
    "Passage": "rag.answer.retrieve",
    "IndexMissing": "rag.answer.retrieve",
    "IndexUnusable": "rag.index.manifest",
    "Manifest": "rag.index.manifest",
    "DocumentEntry": "rag.index.manifest",
    "Embedder": "rag.index.embeddings",
    "Ingestor": "rag.index.ingestor",
    "IngestReport": "rag.index.ingestor",
    "Example": "rag.index.examples",
    "EXAMPLE_COUNT": "rag.index.examples",
    "corpus_examples": "rag.index.examples",
    "SUPPORTED_SUFFIXES": "rag.ingest.documents",
}

__all__ = ["PRESETS", "Settings", "preset", *_LAZY]


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(name)
    return getattr(import_module(_LAZY[name]), name)
