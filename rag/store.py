"""The vector store: a Chroma collection, embedded in the index folder or on a `chroma run` server.

Both clients serve the same API, so everything after `open_vector_store` is one code path.
We always pass our own embeddings: a collection with Chroma's default embedding function
would try to download a model on its first add.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlparse

import numpy as np

from rag.settings import Settings

MAX_BATCH = 5000  # Chroma refuses more than 5,461 items in one call


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


def make_chroma_client(settings: Settings):
    import chromadb

    if settings.chroma_url:
        url = urlparse(settings.chroma_url)
        try:
            return chromadb.HttpClient(
                host=url.hostname or "127.0.0.1",
                port=url.port or 8000,
                ssl=url.scheme == "https",
                settings=_chroma_settings(),
            )
        except Exception as exc:
            raise StoreUnavailable(f"cannot reach the Chroma server at {settings.chroma_url}: {exc}") from exc
    path = settings.index_dir / "chroma"
    path.mkdir(parents=True, exist_ok=True)
    return chromadb.PersistentClient(path=str(path), settings=_chroma_settings())


class VectorStore:
    def __init__(self, collection, location: str):
        self._collection = collection
        self.location = location

    def count(self) -> int:
        return self._guard(self._collection.count)

    def upsert(self, ids: list[str], vectors: np.ndarray, texts: list[str], metadatas: list[dict]) -> None:
        for at in range(0, len(ids), MAX_BATCH):
            window = slice(at, at + MAX_BATCH)
            self._guard(
                self._collection.upsert,
                ids=ids[window],
                embeddings=vectors[window],
                documents=texts[window],
                metadatas=metadatas[window],
            )

    def delete(self, ids: list[str]) -> None:
        for at in range(0, len(ids), MAX_BATCH):
            self._guard(self._collection.delete, ids=ids[at : at + MAX_BATCH])

    def all_ids(self) -> list[str]:
        ids: list[str] = []
        while True:
            page = self._guard(self._collection.get, include=[], limit=MAX_BATCH, offset=len(ids))
            ids.extend(page["ids"])
            if len(page["ids"]) < MAX_BATCH:
                return ids

    def get(self, ids: list[str]) -> list[StoredChunk]:
        """The chunks with these ids, in this order, with their stored vectors."""
        if not ids:
            return []
        found = self._guard(self._collection.get, ids=ids, include=["documents", "metadatas", "embeddings"])
        by_id = {
            cid: StoredChunk(cid, text, meta, vector=np.asarray(vector, dtype=np.float32))
            for cid, text, meta, vector in zip(
                found["ids"], found["documents"], found["metadatas"], found["embeddings"], strict=True
            )
        }
        return [by_id[cid] for cid in ids if cid in by_id]

    def nearest(self, vector: np.ndarray, k: int, where: dict | None = None) -> list[tuple[str, float]]:
        """The ids of the k closest chunks with their cosine similarity, best first. Only ids:
        fetching texts and metadata for every fusion candidate made a query 2-3x slower at 100k
        chunks, and the retriever needs them for the few passages it returns."""
        result = self._guard(
            self._collection.query,
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


def _is_connection_error(exc: Exception) -> bool:
    import httpx

    seen = exc
    while seen is not None:
        if isinstance(seen, httpx.TransportError | ConnectionError):
            return True
        seen = seen.__cause__ or seen.__context__
    return "Could not connect" in str(exc)


def open_vector_store(settings: Settings, model_name: str) -> VectorStore:
    """Open (or create) the collection, refusing one built with another embedding model:
    its vectors would not be comparable with the question's and every answer would be nonsense."""
    client = make_chroma_client(settings)
    location = settings.chroma_url or str(settings.index_dir / "chroma")
    try:
        collection = client.get_or_create_collection(
            settings.collection,
            embedding_function=None,
            configuration={"hnsw": {"space": "cosine"}},
            metadata={"embed_model": model_name},
        )
    except Exception as exc:
        if _is_connection_error(exc):
            raise StoreUnavailable(f"cannot reach the Chroma server at {location}: {exc}") from exc
        raise
    built_with = (collection.metadata or {}).get("embed_model")
    if built_with != model_name:
        raise IndexMismatch(
            f"the index at {location} (collection {settings.collection!r}) was built with the embedding "
            f"model {built_with!r}, not {model_name!r}. Rebuild it with `rag ingest --rebuild`, or set "
            f"RAG_EMBED_MODEL back to the model it was built with."
        )
    return VectorStore(collection, location)


def drop_collection(settings: Settings) -> None:
    client = make_chroma_client(settings)
    if settings.collection in [c.name for c in client.list_collections()]:
        client.delete_collection(settings.collection)
