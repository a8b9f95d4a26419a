"""The vector store: a Chroma collection, embedded in the index folder or on a `chroma run` server.

Both clients serve the same API, so everything after `open_vector_store` is one code path.
We always pass our own embeddings: a collection with Chroma's default embedding function
would try to download a model on its first add.
"""

from __future__ import annotations

import re
import shutil
import sqlite3
import threading
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import numpy as np

from rag.index.manifest import IndexDamaged, Manifest
from rag.settings import Settings

MAX_BATCH = 5000  # Chroma refuses more than 5,461 items in one call
_SEGMENT_FOLDER = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


class IndexMismatch(RuntimeError):
    pass


class StoreUnavailable(RuntimeError):
    pass


@dataclass
class StoredChunk:
    id: str
    text: str
    metadata: dict
    vector: np.ndarray | None = None


def _chroma_settings():
    from chromadb.config import Settings as ChromaSettings

    return ChromaSettings(anonymized_telemetry=False, allow_reset=False)


def _open_client(settings: Settings):
    """A client of the configured store, and the embedded store it alone uses (None for a server)."""
    import chromadb

    if not settings.chroma_url:
        return _open_private_store(local_store_path(settings))
    url = urlparse(settings.chroma_url)
    try:
        client = chromadb.HttpClient(
            host=url.hostname or "127.0.0.1",
            port=url.port or 8000,
            ssl=url.scheme == "https",
            settings=_chroma_settings(),
        )
    except Exception as exc:
        raise StoreUnavailable(f"cannot reach the Chroma server at {settings.chroma_url}: {exc}") from exc
    return client, None


# Chroma caches one embedded store per folder and process, shared by every client of that folder,
# and builds it without a lock. That cached copy never sees what another process wrote, and
# sharing it let an ingest pick up the store a reader was about to stop on its next reload (and
# a failed client stops the shared store for all). So each client reads the folder anew into a
# store of its own, taken out of the cache as soon as the client is built, under one lock.
_BUILDING_CLIENT = threading.Lock()


def _open_private_store(path: Path):
    import chromadb
    from chromadb.api.shared_system_client import SharedSystemClient

    path.mkdir(parents=True, exist_ok=True)
    with _BUILDING_CLIENT:
        _forget_cached_store(path)
        client = chromadb.PersistentClient(path=str(path), settings=_chroma_settings())
        system = SharedSystemClient._identifier_to_system.get(str(path))
        _forget_cached_store(path)
    return client, system


def _forget_cached_store(path: Path) -> None:
    """Take the folder's store out of Chroma's cache (chromadb 1.5 keeps it in SharedSystemClient,
    keyed by the folder), leaving it to the clients already built on it."""
    from chromadb.api.shared_system_client import SharedSystemClient

    with SharedSystemClient._refcount_lock:
        SharedSystemClient._identifier_to_system.pop(str(path), None)
        SharedSystemClient._identifier_to_refcount.pop(str(path), None)


@contextmanager
def chroma_client(settings: Settings):
    """A client of the configured store for a few calls; an embedded store is stopped after them."""
    client, system = _open_client(settings)
    try:
        yield client
    finally:
        if system is not None:
            system.stop()


def local_store_path(settings: Settings) -> Path:
    return settings.index_dir / "chroma"


class VectorStore:
    def __init__(self, collection, location: str, owned_system=None):
        self.collection = collection
        self.location = location
        self._owned_system = owned_system  # the embedded store only this one uses

    def close(self) -> None:
        """Stop the embedded store this opened, freeing its memory (some megabytes a reload)."""
        if self._owned_system is not None:
            self._owned_system.stop()
            self._owned_system = None

    def count(self) -> int:
        return self._guard(self.collection.count)

    def upsert(self, ids: list[str], vectors: np.ndarray, texts: list[str], metadatas: list[dict]) -> None:
        for at in range(0, len(ids), MAX_BATCH):
            window = slice(at, at + MAX_BATCH)
            self._guard(
                self.collection.upsert,
                ids=ids[window],
                embeddings=vectors[window],
                documents=texts[window],
                metadatas=metadatas[window],
            )

    def delete(self, ids: list[str]) -> None:
        for at in range(0, len(ids), MAX_BATCH):
            self._guard(self.collection.delete, ids=ids[at : at + MAX_BATCH])

    def all_ids(self) -> list[str]:
        ids: list[str] = []
        while True:
            page = self._guard(self.collection.get, include=[], limit=MAX_BATCH, offset=len(ids))
            ids.extend(page["ids"])
            if len(page["ids"]) < MAX_BATCH:
                return ids

    def get(self, ids: list[str]) -> list[StoredChunk]:
        """The chunks with these ids, in this order, with their stored vectors."""
        if not ids:
            return []
        found = self._guard(self.collection.get, ids=ids, include=["documents", "metadatas", "embeddings"])
        by_id = {
            cid: StoredChunk(cid, text, meta, vector=np.asarray(vector, dtype=np.float32))
            for cid, text, meta, vector in zip(
                found["ids"], found["documents"], found["metadatas"], found["embeddings"], strict=True
            )
        }
        return [by_id[cid] for cid in ids if cid in by_id]

    def get_all(self, ids: list[str]) -> list[StoredChunk]:
        """Like `get`, for any number of ids."""
        return [chunk for at in range(0, len(ids), MAX_BATCH) for chunk in self.get(ids[at : at + MAX_BATCH])]

    def check_readable(self) -> None:
        """Raise if the vectors cannot be searched: Chroma reads its vector index files only when
        first queried, and listing ids or counting reads only its database."""
        if self.count():
            self._guard(self.collection.query, query_embeddings=[self._any_vector()], n_results=1, include=[])

    def _any_vector(self) -> np.ndarray:
        stored = self._guard(self.collection.get, limit=1, include=["embeddings"])["embeddings"]
        return np.asarray(stored[0], dtype=np.float32)

    def nearest(self, vector: np.ndarray, k: int, where: dict | None = None) -> list[tuple[str, float]]:
        """The ids of the k closest chunks with their cosine similarity, best first. Only ids:
        fetching texts and metadata for every fusion candidate made a query 2-3x slower at 100k
        chunks, and the retriever needs them for the few passages it returns."""
        result = self._guard(
            self.collection.query,
            query_embeddings=[vector],
            n_results=k,
            where=where or None,
            include=["distances"],
        )
        return [(cid, 1.0 - distance) for cid, distance in zip(result["ids"][0], result["distances"][0], strict=True)]

    def _guard(self, call, *args, **kwargs):
        """Turn a lost server connection into one clear error instead of a deep traceback."""
        try:
            return call(*args, **kwargs)
        except Exception as exc:
            if _is_connection_error(exc):
                raise StoreUnavailable(
                    f"the Chroma server at {self.location} is not answering ({exc})"
                ) from exc
            raise


def is_chroma_error(exc: Exception) -> bool:
    """An error raised by Chroma itself (a missing collection, an id its index cannot find)."""
    return type(exc).__module__.startswith("chromadb")


def _is_connection_error(exc: Exception) -> bool:
    import httpx

    seen = exc
    while seen is not None:
        if isinstance(seen, httpx.TransportError | ConnectionError):
            return True
        seen = seen.__cause__ or seen.__context__
    return "Could not connect" in str(exc)


def open_vector_store(
    settings: Settings,
    model_name: str,
    collection: str | None = None,
    *,
    create: bool = True,
) -> VectorStore:
    """Open the collection (by default the one the committed manifest names), as it is on disk
    now, refusing one built with another embedding model: its vectors would not be comparable with
    the question's and every answer would be nonsense. Readers pass create=False: a missing
    collection is a damaged index, not an empty one."""
    client, system = _open_client(settings)
    try:
        found = _collection(client, settings, model_name, collection, create)
    except BaseException:
        if system is not None:
            system.stop()
        raise
    return VectorStore(found, settings.chroma_url or str(local_store_path(settings)), system)


def _collection(client, settings: Settings, model_name: str, collection: str | None, create: bool):
    location = settings.chroma_url or str(local_store_path(settings))
    name = collection or committed_collection(settings)
    try:
        if create:
            found = client.get_or_create_collection(
                name,
                embedding_function=None,
                configuration={"hnsw": {"space": "cosine"}},
                metadata={"embed_model": model_name},
            )
        else:
            found = client.get_collection(name, embedding_function=None)
    except Exception as exc:
        if _is_connection_error(exc):
            raise StoreUnavailable(f"cannot reach the Chroma server at {location}: {exc}") from exc
        if not create and type(exc).__name__ == "NotFoundError":
            raise IndexDamaged(f"the vector store at {location} has no collection {name!r}") from exc
        raise
    built_with = (found.metadata or {}).get("embed_model")
    if built_with != model_name:
        raise IndexMismatch(
            f"the index at {location} (collection {name!r}) was built with the embedding "
            f"model {built_with!r}, not {model_name!r}. Rebuild it with `rag ingest --rebuild`, or set "
            f"RAG_EMBED_MODEL back to the model it was built with."
        )
    return found


def committed_collection(settings: Settings) -> str:
    """The collection the committed manifest names: a rebuild writes a new one beside the old, so
    that readers keep answering from the old one until the new one is committed."""
    try:
        manifest = Manifest.load(settings.index_dir)
    except IndexDamaged:
        manifest = None
    return (manifest and manifest.collection) or settings.collection


def collection_family(settings: Settings, index_id: str | None) -> str:
    """The name this index's collections start with: the configured name and the index's own id,
    so that indexes sharing one `chroma run` server never touch each other's collections. An
    index built before it kept an id goes on using the configured name alone."""
    return f"{settings.collection}-{index_id}" if index_id else settings.collection


def drop_collections(settings: Settings, keep: str, family: str, replaced: str | None = None) -> None:
    """Delete this index's collections other than `keep`: the family's rebuilt generations, ones
    replaced by a rebuild or left by a rebuild killed before its commit, and `replaced` (the
    collection of an index rebuilt from before it kept an id). An embedded store is this index's
    alone, so everything else in it goes; a server's other collections belong to other indexes."""
    with chroma_client(settings) as client:
        for found in client.list_collections():
            ours = found.name in (family, replaced) or found.name.startswith(family + "-g")
            if (ours or not settings.chroma_url) and found.name != keep:
                client.delete_collection(found.name)
    if not settings.chroma_url:
        _remove_orphaned_vector_folders(local_store_path(settings))


def _remove_orphaned_vector_folders(path: Path) -> None:
    """Chroma (1.5) deletes a collection's rows but leaves its vector index folder, named by the
    segment's id, on disk: remove the folders no segment lists. Run under the ingest lock, the
    only place collections are made: a new one's folder appears after its segment row."""
    database = path / "chroma.sqlite3"
    if not database.is_file():
        return
    with closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as connection:
        listed = {row[0] for row in connection.execute("SELECT id FROM segments")}
    for folder in path.iterdir():
        if folder.is_dir() and _SEGMENT_FOLDER.fullmatch(folder.name) and folder.name not in listed:
            shutil.rmtree(folder, ignore_errors=True)


def reset_local_store(settings: Settings) -> None:
    """Delete an embedded store's files: the way back from a store Chroma cannot open any more."""
    path = local_store_path(settings)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)  # a file (or a link) where the store's folder should be
