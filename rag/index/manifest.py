"""The index manifest: the one file that says what the index holds.

Ingest writes chunks to Chroma and a new keyword index first, then replaces this file in one
atomic rename. That rename is the commit: a reader trusts only chunks the manifest lists, and the
next ingest removes anything an interrupted run left behind.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

MANIFEST_NAME = "manifest.json"
FORMAT_VERSION = 1


class IndexUnusable(RuntimeError):
    """No question can be answered from this index (missing or damaged); the message says why and
    which command fixes it. Never an abstention: "Not in these articles" would read as an answer."""


class IndexDamaged(IndexUnusable):
    """The index cannot be trusted: a file is unreadable, or its parts disagree. The message says
    what is wrong and ends with the command that fixes it."""

    def __init__(self, problem: str):
        super().__init__(f"{problem}. Run `rag ingest --rebuild` to rebuild the index from the corpus.")


@dataclass
class DocumentEntry:
    sha256: str
    content_sha256: str
    doc_id: str
    title: str
    publisher: str | None
    published: str | None
    url: str | None
    chunk_ids: list[str]
    text_file: str  # the cleaned article text, relative to the index folder
    sentence_file: str | None = None  # its sentence vectors (rag.index.sentence_vectors); None before they were stored


@dataclass
class Manifest:
    embed_model: str
    chunk_chars: int
    chunk_overlap_sentences: int
    generation: int = 0
    keyword_dir: str | None = None
    collection: str | None = None  # the Chroma collection; None: the configured one (Settings.collection)
    # Names this index's collections apart from other indexes' on a shared `chroma run` server;
    # None for an index built before it was kept (its collection is the configured name alone).
    index_id: str | None = None
    documents: dict[str, DocumentEntry] = field(default_factory=dict)  # keyed by source path

    def chunk_ids(self) -> set[str]:
        return {cid for entry in self.documents.values() for cid in entry.chunk_ids}

    def publishers(self) -> list[str]:
        return sorted({e.publisher for e in self.documents.values() if e.publisher})

    @classmethod
    def load(cls, index_dir: Path) -> Manifest | None:
        check_index_folder(index_dir)
        path = index_dir / MANIFEST_NAME
        if not path.exists():
            return None
        try:
            raw = json.loads(path.read_text())
            if raw.pop("format_version", None) != FORMAT_VERSION:
                raise IndexDamaged(f"{path} was written by another version of this tool")
            documents = {source: DocumentEntry(**entry) for source, entry in raw.pop("documents").items()}
            return cls(**raw, documents=documents)
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:  # unreadable, bad JSON, or not a manifest's
            raise IndexDamaged(f"the index manifest {path} is damaged ({type(exc).__name__}: {exc})") from exc

    def save(self, index_dir: Path) -> None:
        index_dir.mkdir(parents=True, exist_ok=True)
        staged = index_dir / (MANIFEST_NAME + ".tmp")
        payload = {"format_version": FORMAT_VERSION, **asdict(self)}
        with open(staged, "w") as out:
            json.dump(payload, out, indent=1)
            out.flush()
            os.fsync(out.fileno())
        os.replace(staged, index_dir / MANIFEST_NAME)


def check_index_folder(index_dir: Path) -> None:
    """A file where the index folder should be is the user's to move: no rebuild may delete it."""
    if index_dir.exists() and not index_dir.is_dir():
        raise IndexUnusable(
            f"RAG_INDEX_DIR {index_dir} is a file, not a folder: set RAG_INDEX_DIR (or --index-dir) to a "
            "folder, which is created if missing, or move the file away"
        )


def salvaged_index_id(index_dir: Path) -> str | None:
    """The id a damaged manifest still shows (it is written near the top, so a truncated one
    keeps it): a rebuild keeps it, and with it finds the old collections on a shared server."""
    try:
        found = re.search(r'"index_id": "([0-9a-f]{16})"', (index_dir / MANIFEST_NAME).read_text(errors="replace"))
    except OSError:
        return None
    return found and found[1]


def new_index_id() -> str:
    return uuid.uuid4().hex[:16]


def manifest_stamp(index_dir: Path) -> float | None:
    """Cheap change detection for readers: the manifest's modification time."""
    check_index_folder(index_dir)
    try:
        return (index_dir / MANIFEST_NAME).stat().st_mtime_ns
    except FileNotFoundError:
        return None
