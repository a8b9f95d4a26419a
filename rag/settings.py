"""One typed settings object, shared by the CLI, the chat and the eval.

Every field reads from a `RAG_<NAME>` environment variable; the CLI overrides them with flags.
Named presets are small sets of overrides, used by `rag eval --compare`.
"""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

RetrievalMode = Literal["hybrid", "dense", "keyword"]
Backend = Literal["extractive", "openai", "llamacpp", "auto"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RAG_", extra="ignore", validate_assignment=True)

    corpus_dir: Path = Path("corpus")
    index_dir: Path = Path("index")
    chroma_url: str | None = None
    collection: str = "articles"
    embed_model: str | None = Field(None, description="local sentence-transformers folder; unset = MiniLM")
    embed_batch_size: int = 64
    max_file_bytes: int = 20 * 1024 * 1024
    # The longest news features run to some 20,000 words (about 120,000 characters); a text far
    # longer is a book or a dump, and would take an hour to embed while holding up uploads.
    max_article_chars: int = Field(300_000, ge=1000, description="longer articles are skipped, with the reason")
    ingest_commit_chunks: int = Field(
        2000, ge=1, description="an ingest commits after about this many chunks: a kill loses at most that much work"
    )

    chunk_chars: int = Field(600, ge=100, description="target chunk size in characters")
    chunk_overlap_sentences: int = Field(1, ge=0)

    top_k: int = Field(5, ge=1, le=50)
    retrieval: RetrievalMode = "hybrid"
    date_from: date | None = None
    date_to: date | None = None
    publisher: str | None = None
    min_confidence: float | None = Field(
        None, ge=0, le=1, description="withhold answers below this confidence; unset = the fitted threshold"
    )

    # auto: a configured endpoint or GGUF, else a model server already running on 127.0.0.1 at
    # local_llm_ports, else the extractive answerer. Runs that must be extractive say so.
    llm: Backend = "auto"
    openai_base_url: str | None = None
    openai_api_key: str | None = None
    openai_model: str | None = None
    gguf_path: Path | None = None
    # Where RAG_LLM=auto looks for a model server on this machine: Ollama, LM Studio, llama.cpp.
    local_llm_ports: list[int] = [11434, 1234, 8080]
    llm_max_tokens: int = 256
    # What the model is shown: the best-ranked sentences, at most this many and this many
    # characters. A CPU model spends most of its time reading them (about 45 tokens a second on 2 cores).
    llm_evidence_sentences: int = Field(5, ge=1, le=15)
    llm_evidence_chars: int = Field(1100, ge=100, le=6000)
    # Before writing, the model is asked whether the passages state the answer; a "no" abstains.
    llm_check_answerable: bool = True
    llm_answerable_threshold: float | None = Field(
        None, ge=0, le=1, description="the model's chance of yes below which it declines; unset = the fitted threshold"
    )
    # After writing, each sentence is checked against the passages it cites; an answer that fails
    # is replaced by the extractive one (llm_fallback), or withheld.
    llm_check_claims: bool = True
    llm_fallback: bool = True
    llm_timeout_s: float = 120.0

    max_question_chars: int = 2000
    ui_auth: str | None = None
    feedback_file: Path = Path("feedback.jsonl")

    # `rag model install` puts models here (LLMs in llm/, with the registry of what is installed).
    models_dir: Path = Path(".models")
    # Ollama's API, for `rag model list` and `rag model install ollama:NAME`.
    ollama_url: str = "http://127.0.0.1:11434"

    def with_overrides(self, **overrides) -> Settings:
        """A copy with some fields replaced; None values are ignored so CLI flags can pass through."""
        return self.replaced(**{k: v for k, v in overrides.items() if v is not None})

    def replaced(self, **fields) -> Settings:
        """A copy with these fields replaced, None included (to unset one), validated anew."""
        return type(self)(**{**self.model_dump(), **fields})

    @property
    def project_root(self) -> Path:
        """The folder `source` paths are relative to: the corpus folder's parent. Made absolute
        without following links, so "../shared/corpora/bbc" gives sources like "bbc/sport/001.txt"."""
        return Path(os.path.abspath(self.corpus_dir)).parent


PRESETS: dict[str, dict] = {
    "default": {},
    "dense": {"retrieval": "dense"},
    "bm25": {"retrieval": "keyword"},
    "hybrid": {"retrieval": "hybrid"},
    "k3": {"top_k": 3},
    "k8": {"top_k": 8},
    "chunk400": {"chunk_chars": 400},
    "chunk1000": {"chunk_chars": 1000},
    "extractive": {"llm": "extractive"},
    "openai": {"llm": "openai"},
    "llamacpp": {"llm": "llamacpp"},
    "unchecked": {"llm_check_answerable": False},
    "claims-unchecked": {"llm_check_claims": False},
    "no-fallback": {"llm_fallback": False},
    "withhold-nothing": {"min_confidence": 0.0},
    # The baseline: the same evidence and prompt, the model's reply shown as written.
    "plain": {"llm_check_answerable": False, "llm_check_claims": False},
    # A sixth fewer tokens for the model to read (four sentences, 800 characters): answers sooner, and
    # fewer right on every suite (evals/runs/committed/llm/README.md), so not the default.
    "short-evidence": {"llm_evidence_sentences": 4, "llm_evidence_chars": 800},
}

# Presets that change how chunks are cut need an index of their own.
INDEX_SHAPING_FIELDS = ("chunk_chars", "chunk_overlap_sentences", "embed_model")


def preset(name: str, base: Settings | None = None) -> Settings:
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose from {', '.join(PRESETS)}")
    return (base or Settings()).with_overrides(**PRESETS[name])
