"""Each article's sentence vectors, written by the ingest beside the article's text.

The answerer ranks the sentences of the passages it retrieved by their similarity to the question.
Embedding them at question time cost a warm answer 200-400 ms on the BBC archive; read from here
it costs a file read. One file per article (the unit an ingest adds, replaces and deletes), named
after the article's text file, so it is written, committed by the manifest and cleaned up with it.
"""

from __future__ import annotations

import os
import threading
import zipfile
from collections import OrderedDict
from pathlib import Path

import numpy as np

SUFFIX = ".sentences.npz"
# Half the bytes of float32 on disk; the similarities the answerer reads from them move by less
# than 1e-3, which changed no answer of the eval suites (bench/findings.md).
STORED_DTYPE = np.float16


def file_for(text_file: str) -> str:
    """The sentence file of an article, from its text file's path (both relative to the index)."""
    return text_file.removesuffix(".txt") + SUFFIX


def save(path: Path, per_chunk: list[np.ndarray]) -> None:
    """Write atomically: an ingest killed mid-write leaves the old file or none, never half of one."""
    counts = np.array([len(vectors) for vectors in per_chunk], dtype=np.int32)
    vectors = np.vstack(per_chunk).astype(STORED_DTYPE)
    staged = path.with_name(path.name + ".tmp")
    with open(staged, "wb") as out:
        np.savez(out, vectors=vectors, counts=counts)
        out.flush()
        os.fsync(out.fileno())
    os.replace(staged, path)


def load(path: Path) -> list[np.ndarray]:
    """Each chunk's sentence vectors, in the article's chunk order."""
    with np.load(path) as saved:
        vectors, counts = saved["vectors"].astype(np.float32), saved["counts"]
    if counts.sum() != len(vectors):
        raise ValueError(f"{path}: {counts.sum()} sentences counted, {len(vectors)} stored")
    return np.split(vectors, np.cumsum(counts)[:-1])


def whole(path: Path) -> bool:
    """A cheap check, made for every article by each ingest: the file ends where a written one
    does (a zip's closing record), so it was not cut short or overwritten."""
    return zipfile.is_zipfile(path)


class SentenceVectorFiles:
    """The committed sentence vectors of an index, read on demand, the recent articles' kept."""

    def __init__(self, index_dir: Path, files_by_article: dict[str, str], keep: int = 256):
        self.index_dir = index_dir
        self.files_by_article = files_by_article  # chunk id without its number -> sentence file
        self.keep = keep
        self._loaded: OrderedDict[str, list[np.ndarray] | None] = OrderedDict()
        self._lock = threading.Lock()

    def for_chunk(self, chunk_id: str) -> np.ndarray | None:
        """The chunk's sentence vectors, or None when its article has none (an index built before
        they were stored, or a file that cannot be read): the answerer then embeds them itself."""
        article, _, number = chunk_id.rpartition("-")
        name = self.files_by_article.get(article)
        if name is None:
            return None
        chunks = self._article(name)
        position = int(number)
        return chunks[position] if chunks is not None and position < len(chunks) else None

    def _article(self, name: str) -> list[np.ndarray] | None:
        with self._lock:
            if name in self._loaded:
                self._loaded.move_to_end(name)
                return self._loaded[name]
        try:
            chunks = load(self.index_dir / name)
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
            chunks = None  # damaged or missing: `rag ingest` writes it again
        with self._lock:
            self._loaded[name] = chunks
            while len(self._loaded) > self.keep:
                self._loaded.popitem(last=False)
        return chunks
