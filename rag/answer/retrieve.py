"""Hybrid retrieval: dense (Chroma) and keyword (BM25) rankings fused by reciprocal rank."""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import numpy as np

from rag.answer import text as textlib
from rag.answer.spelling import NameSpeller
from rag.answer.text import KeyTerm
from rag.index.embeddings import Embedder
from rag.index.keyword import KeywordIndex, tokenize
from rag.index.manifest import IndexDamaged, IndexUnusable, Manifest, manifest_stamp
from rag.index.sentence_vectors import SentenceVectorFiles
from rag.index.store import (
    IndexMismatch,
    StoredChunk,
    StoreUnavailable,
    VectorStore,
    is_chroma_error,
    open_vector_store,
)
from rag.settings import RetrievalMode, Settings

RRF_K = 60  # the usual reciprocal-rank constant: damps the difference between ranks 1 and 2
CANDIDATES_PER_RANKER = 4  # each ranker proposes this many times top_k before fusion
MENTION_PROBE = 20  # chunks read to tell whether any article mentions a term
# Beyond this many uncommitted chunks (a large ingest under way) a question's dense candidates may
# be fewer than asked for, rather than every question fetching thousands of neighbours.
MAX_UNCOMMITTED_LOOKED_PAST = 2000


class IndexMissing(IndexUnusable):
    pass


@dataclass(frozen=True)
class Filters:
    date_from: date | None = None
    date_to: date | None = None
    publisher: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> Filters:
        return cls(settings.date_from, settings.date_to, settings.publisher)

    def chroma_where(self) -> dict | None:
        clauses = []
        if self.date_from:
            clauses.append({"published_int": {"$gte": _day_number(self.date_from)}})
        if self.date_to:
            clauses.append({"published_int": {"$lte": _day_number(self.date_to)}})
        if self.date_to and not self.date_from:
            # An undated article (0) is not "before" a date: the keyword side leaves it out too.
            clauses.append({"published_int": {"$gt": 0}})
        if self.publisher:
            clauses.append({"publisher_key": {"$eq": self.publisher.casefold()}})
        if len(clauses) > 1:
            return {"$and": clauses}
        return clauses[0] if clauses else None

    def keyword_allowed(self) -> dict | None:
        allowed = {}
        low = _day_number(self.date_from) if self.date_from else 1
        high = _day_number(self.date_to) if self.date_to else 99991231
        if self.date_from or self.date_to:
            allowed["published_int"] = lambda v: (v >= low) & (v <= high)
        if self.publisher:
            key = self.publisher.casefold()
            allowed["publisher_key"] = lambda v: v == key
        return allowed or None


def _day_number(day: date) -> int:
    return day.year * 10000 + day.month * 100 + day.day


@dataclass
class Passage:
    chunk_id: str
    text: str
    source: str
    title: str
    publisher: str
    published: str
    url: str
    start: int
    end: int
    similarity: float  # cosine between question and chunk
    lede: str = ""  # the article's opening sentences
    fused: float = 0.0  # reciprocal-rank score that decided the order
    ranks: dict[str, int] = field(default_factory=dict)  # ranker -> 1-based rank

    @classmethod
    def from_stored(cls, chunk: StoredChunk, similarity: float) -> Passage:
        meta = chunk.metadata
        return cls(
            chunk_id=chunk.id,
            text=chunk.text,
            source=meta["source"],
            title=meta.get("title", ""),
            publisher=meta.get("publisher", ""),
            published=meta.get("published", ""),
            url=meta.get("url", ""),
            start=int(meta["start"]),
            end=int(meta["end"]),
            similarity=similarity,
            lede=meta.get("lede", ""),
        )


@dataclass
class Retrieval:
    question: str
    query_vector: np.ndarray
    passages: list[Passage]
    timings: dict[str, float]


class Retriever:
    """Reads the committed index. Before each question it looks at the manifest: when an ingest
    has committed since (in this process, or another: `rag ingest`, a rebuild), it reloads the
    keyword index and reopens the vector store, so new articles are searchable, deleted ones gone
    and a rebuilt collection read, without a restart."""

    def __init__(self, settings: Settings, embedder: Embedder):
        self.settings = settings
        self.embedder = embedder
        self._store: VectorStore | None = None
        self._retired: VectorStore | None = None  # the store before the last reload
        self._lock = threading.Lock()
        self._stamp: float | None = None
        self.manifest: Manifest | None = None
        self._keywords: KeywordIndex | None = None
        self._committed: set[str] = set()
        self.sentence_vectors: SentenceVectorFiles | None = None

    @property
    def store(self) -> VectorStore:
        if self._store is None:
            self.refresh()
        return self._store

    def refresh(self, reopen: bool = False) -> Manifest:
        """The committed manifest, with the index reloaded if it changed (or `reopen` asks)."""
        stamp = manifest_stamp(self.settings.index_dir)
        if stamp is None:
            raise IndexMissing(
                f"no index in {self.settings.index_dir}: run `rag ingest` first (it reads {self.settings.corpus_dir})"
            )
        with self._lock:
            if stamp != self._stamp or reopen:
                self._load_latest(stamp)
        return self.manifest

    def _load_latest(self, stamp: float) -> None:
        """Load the committed index. An ingest that commits again meanwhile deletes files the
        manifest being read names: that index is no longer current, so read the newer one."""
        while True:
            try:
                return self._load(stamp)
            except IndexDamaged:
                newer = manifest_stamp(self.settings.index_dir)
                if newer is None or newer == stamp:
                    raise
                stamp = newer

    def _load(self, stamp: float) -> None:
        manifest = Manifest.load(self.settings.index_dir)
        if manifest is None:
            raise IndexMissing(f"no index in {self.settings.index_dir}: run `rag ingest` first")
        try:
            keywords = KeywordIndex.load(self.settings.index_dir / manifest.keyword_dir)
        except Exception as exc:
            raise IndexDamaged(
                f"the keyword index in {self.settings.index_dir / manifest.keyword_dir} cannot be read "
                f"({type(exc).__name__}: {exc})"
            ) from exc
        committed = manifest.chunk_ids()
        store = self._reopened_store(manifest)
        # Cheap checks that catch a damaged index before it answers "Not in these articles": the
        # store may hold more than the manifest lists (an ingest may be writing), never fewer.
        stored = store.count()
        if set(keywords.ids) != committed or stored < len(committed):
            raise IndexDamaged(
                f"the index in {self.settings.index_dir} is inconsistent: the manifest lists "
                f"{len(committed)} chunks, the keyword index {len(keywords.ids)}, the vector store {stored}"
            )
        self.manifest, self._keywords, self._committed = manifest, keywords, committed
        self.sentence_vectors = _sentence_vector_files(self.settings.index_dir, manifest)
        self._retire(store)
        self._stamp = stamp

    def _retire(self, fresh: VectorStore) -> None:
        """Serve from `fresh`, and close the store replaced one reload ago: questions that began on
        it have long finished (and one that has not is retried on the fresh store)."""
        if self._retired is not None:
            self._retired.close()
        self._retired, self._store = self._store, fresh

    def _reopened_store(self, manifest: Manifest) -> VectorStore:
        """The manifest's collection, read anew from disk."""
        try:
            return open_vector_store(self.settings, self.embedder.name, manifest.collection, create=False)
        except (IndexDamaged, IndexMismatch, StoreUnavailable):
            raise
        except Exception as exc:
            raise IndexDamaged(
                f"the vector store in {self.settings.chroma_url or self.settings.index_dir / 'chroma'} cannot "
                f"be read ({type(exc).__name__}: {exc})"
            ) from exc

    def name_speller(self, known_words: frozenset[str]) -> NameSpeller | None:
        """Spells names as the committed index does (rag/answer/spelling.py); None when there is no index."""
        try:
            self.refresh()
        except IndexMissing:
            return None
        return NameSpeller(self._keywords, self.chunk_text, known_words)

    def chunk_text(self, chunk_id: str) -> str:
        return next((chunk.text for chunk in self.store.get([chunk_id])), "")

    def search(
        self,
        question: str,
        k: int | None = None,
        filters: Filters | None = None,
        mode: RetrievalMode | None = None,
        query_vector: np.ndarray | None = None,
    ) -> Retrieval:
        self.refresh()
        try:
            return self._search(question, k, filters, mode, query_vector)
        except Exception as exc:
            if not (isinstance(exc, IndexDamaged) or is_chroma_error(exc)):
                raise
            # An ingest in another process committed, and deleted what it replaced, after this
            # question looked at the manifest; or a rebuild dropped the collection. Read the index
            # anew and ask once more: a damaged index fails again, loudly.
            self.refresh(reopen=True)
            try:
                return self._search(question, k, filters, mode, query_vector)
            except Exception as again:
                if is_chroma_error(again):  # its files are damaged: say so, and how to fix it
                    raise IndexDamaged(
                        f"the vector store in {self.store.location} cannot be searched "
                        f"({type(again).__name__}: {again})"
                    ) from again
                raise

    def _search(self, question, k, filters, mode, query_vector) -> Retrieval:
        k = k or self.settings.top_k
        mode = mode or self.settings.retrieval
        filters = filters or Filters.from_settings(self.settings)
        timings: dict[str, float] = {}
        started = time.perf_counter()
        if query_vector is None:
            query_vector = self.embedder.embed_one(question)
        timings["embed_ms"] = _ms_since(started)
        candidates = k * CANDIDATES_PER_RANKER
        rankings: dict[str, list[str]] = {}
        if mode in ("dense", "hybrid"):
            started = time.perf_counter()
            rankings["dense"] = self._dense(query_vector, candidates, filters)
            timings["dense_ms"] = _ms_since(started)
        if mode in ("keyword", "hybrid"):
            started = time.perf_counter()
            hits = self._keywords.search(question, candidates, filters.keyword_allowed())
            rankings["keyword"] = [cid for cid, _ in hits if cid in self._committed]
            timings["keyword_ms"] = _ms_since(started)
        started = time.perf_counter()
        passages = self._fuse(rankings, query_vector, k)
        timings["fuse_ms"] = _ms_since(started)
        return Retrieval(question, query_vector, passages, timings)

    def _dense(self, vector: np.ndarray, n: int, filters: Filters) -> list[str]:
        """The n committed chunks nearest the question. The store may also hold chunks an ingest
        has written but not committed (or a killed one left): when any comes back, ask again for
        as many more as there are, so that they cannot push committed chunks out of the n, and
        the answer is the committed index's. (Counting them before every question cost 3.7 ms at
        99k chunks, more than the search.)"""
        hits = self.store.nearest(vector, n, filters.chroma_where())
        committed = [cid for cid, _ in hits if cid in self._committed]
        if len(committed) == len(hits):
            return committed
        stored = self.store.count()
        uncommitted = min(max(stored - len(self._committed), 0), MAX_UNCOMMITTED_LOOKED_PAST)
        hits = self.store.nearest(vector, min(n + uncommitted, max(stored, 1)), filters.chroma_where())
        return [cid for cid, _ in hits if cid in self._committed][:n]

    def _fuse(self, rankings: dict[str, list[str]], query_vector, k: int) -> list[Passage]:
        fused: dict[str, float] = {}
        ranks: dict[str, dict[str, int]] = {}
        for ranker, ids in rankings.items():
            for rank, cid in enumerate(ids, 1):
                fused[cid] = fused.get(cid, 0.0) + 1.0 / (RRF_K + rank)
                ranks.setdefault(cid, {})[ranker] = rank
        best = sorted(fused, key=fused.get, reverse=True)[:k]
        passages = self._passages(best, query_vector)
        for passage in passages:
            passage.fused, passage.ranks = fused[passage.chunk_id], ranks[passage.chunk_id]
        return passages

    def with_neighbours(self, retrieval: Retrieval, top: int = 3) -> Retrieval:
        """The retrieval plus the chunk after each of the `top` passages, appended at the end.
        An answer often sits in the sentence after the one that matches the question best
        ("...signed eleven frameworks. These frameworks aim to..."), across a chunk boundary."""
        present = {p.chunk_id for p in retrieval.passages}
        wanted = []
        for passage in retrieval.passages[:top]:
            following = _next_chunk_id(passage.chunk_id)
            if following in self._committed and following not in present:
                wanted.append(following)
                present.add(following)
        if not wanted:
            return retrieval
        extra = self._passages(wanted, retrieval.query_vector)
        return Retrieval(
            retrieval.question, retrieval.query_vector, retrieval.passages + extra, retrieval.timings
        )

    def _passages(self, ids: list[str], query_vector: np.ndarray) -> list[Passage]:
        """The chunks with these ids from the store, in this order, scored by cosine similarity."""
        chunks = self.store.get(ids)
        if len(chunks) < len(ids):
            raise IndexDamaged(
                f"the vector store in {self.store.location} lacks {len(ids) - len(chunks)} of the chunks "
                "the manifest lists"
            )
        return [Passage.from_stored(chunk, float(chunk.vector @ query_vector)) for chunk in chunks]


class CorpusView:
    """The whole index as the answerer may consult it beyond the retrieved passages: does any
    article mention a name, how rare is a word. It answers for one question's filters."""

    def __init__(self, retriever: Retriever, filters: Filters):
        self.retriever = retriever
        self.filters = filters

    def mentions(self, term: KeyTerm, filtered: bool) -> bool:
        allowed = self.filters.keyword_allowed() if filtered else None
        if filtered and allowed is None:
            return self.mentions(term, filtered=False)
        year = _year(term)
        if year and self._published_in(year, allowed):
            return True
        # The chunks that BM25 ranks best for the term hold it if any chunk does; the text check
        # then allows the forms news writing uses ("Mr Blair" for Tony Blair, "UK" for Britain).
        retriever = self.retriever
        retriever.refresh()
        if not tokenize([term.text])[0]:
            return True  # nothing the keyword index can look up ("L", "X"): absence is unproven
        hits = retriever._keywords.search(term.text, MENTION_PROBE, allowed)
        ids = [cid for cid, _ in hits if cid in retriever._committed]
        for chunk in retriever.store.get(ids):
            meta = chunk.metadata
            about = f"{meta.get('title', '')}\n{meta.get('publisher', '')}\n{meta.get('lede', '')}"
            if textlib.mentions(f"{about}\n{chunk.text}", term):
                return True
        return False

    def filtering(self) -> bool:
        return self.filters != Filters()

    def spelled_like(self, text: str) -> str | None:
        """A close spelling the index has of a name it lacks ("Tony Blare" -> "Tony Blair")."""
        speller = self.retriever.name_speller(frozenset())
        return speller.suggest(text) if speller else None

    def sentence_vectors(self, chunk_id: str) -> np.ndarray | None:
        self.retriever.refresh()
        return self.retriever.sentence_vectors.for_chunk(chunk_id)

    def _published_in(self, year: int, allowed: dict | None) -> bool:
        days = self.retriever._keywords.field_values("published_int")
        mask = (days // 10000) == year
        for name, predicate in (allowed or {}).items():
            mask &= predicate(self.retriever._keywords.field_values(name))
        return bool(mask.any())

    def idf(self, stems: set[str]) -> dict[str, float]:
        keywords = self.retriever._keywords
        n = len(keywords)
        return {w: math.log(1 + n / (1 + df)) for w, df in keywords.document_frequencies(stems).items()}

    def filter_description(self) -> str:
        """The filters in words: "filter (published on or before 2024-12-31, from Reuters)"."""
        low, high = self.filters.date_from, self.filters.date_to
        parts = []
        if low and high:
            parts.append(f"published {low} to {high}")
        elif low or high:
            parts.append(f"published on or {'after' if low else 'before'} {low or high}")
        if self.filters.publisher:
            parts.append(f"from {self.filters.publisher}")
        return "filter (" + ", ".join(parts) + ")"


def _year(term: KeyTerm) -> int | None:
    values = textlib.numbers(term.text) if term.kind == "number" else set()
    years = [int(v) for v in values if v == int(v) and 1900 <= v <= 2100]
    return years[0] if len(years) == 1 and len(values) == 1 else None


def _next_chunk_id(chunk_id: str) -> str:
    prefix, index = chunk_id.rsplit("-", 1)
    return f"{prefix}-{int(index) + 1:0{len(index)}d}"


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)


def _sentence_vector_files(index_dir: Path, manifest: Manifest) -> SentenceVectorFiles:
    files = {
        entry.chunk_ids[0].rpartition("-")[0]: entry.sentence_file
        for entry in manifest.documents.values()
        if entry.sentence_file and entry.chunk_ids
    }
    return SentenceVectorFiles(index_dir, files)
