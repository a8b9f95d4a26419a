"""Indexes to benchmark against, built once and kept in bench/cache/.

Each index is built by the project's own `Ingestor.run` over synthetic article files, so the
chunks, ids, metadata, keyword index and manifest are exactly what a user's ingest makes. Only the
embedding is cached: `CachingEmbedder` looks each chunk text up by its SHA-1 in
bench/cache/vectors/<model>-seed<seed>/ and encodes only the texts it has not seen. Corpora of one
seed are prefixes of each other, so the vectors embedded for 100k chunks serve 1k and 10k too.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import numpy as np

from bench import synthetic
from bench.common import CACHE, ROOT, log, memory_mb

FLUSH_ROWS = 4096


def bench_settings(index_dir: Path, corpus_dir: Path, **overrides):
    """Project settings pinned to the local store and the offline answerer, whatever RAG_* says."""
    from rag.settings import Settings

    return Settings(
        index_dir=index_dir, corpus_dir=corpus_dir, chroma_url=None, llm="extractive", retrieval="hybrid",
        top_k=5, date_from=None, date_to=None, publisher=None, **overrides,
    )


class CachingEmbedder:
    """Stands in for rag.index.embeddings.Embedder in the Ingestor: chunk vectors and each chunk's
    sentence vectors (`embed_with_sentences`, one forward pass) are cached together, keyed by the
    SHA-1 of the text and its sentence spans, so a change to the sentence splitting misses the cache
    instead of returning vectors for other sentences."""

    def __init__(self, inner, folder: Path):
        self.inner = inner
        self.name = inner.name
        self.dimension = inner.dimension
        self.folder = folder
        self.encoded = 0
        self.encode_seconds = 0.0
        self._rows: dict[bytes, tuple[np.ndarray, np.ndarray]] = {}
        self._pending: dict[bytes, tuple[np.ndarray, np.ndarray]] = {}
        for part in sorted(folder.glob("part-*.npz")):
            with np.load(part) as saved:
                sentences = np.split(saved["sentences"], np.cumsum(saved["counts"])[:-1])
                self._rows.update(zip(saved["keys"].tolist(), zip(saved["vectors"], sentences, strict=True),
                                      strict=True))

    @property
    def cached(self) -> int:  # not __len__: an empty cache must not be falsy (`embedder or load_embedder()`)
        return len(self._rows)

    def embed_with_sentences(self, texts: list[str], sentence_spans: list[list[tuple[int, int]]]):
        keys = [hashlib.sha1(f"{t}\0{spans}".encode()).digest() for t, spans in zip(texts, sentence_spans, strict=True)]
        missing = {k: (t, s) for k, t, s in zip(keys, texts, sentence_spans, strict=True) if k not in self._rows}
        if missing:
            started = time.perf_counter()
            vectors, sentences = self.inner.embed_with_sentences(*map(list, zip(*missing.values(), strict=True)))
            self.encode_seconds += time.perf_counter() - started
            self.encoded += len(missing)
            # float16, as rag.index.sentence_vectors stores them anyway: half the cache, the same index.
            fresh = {k: (v, s.astype(np.float16)) for k, v, s in zip(missing, vectors, sentences, strict=True)}
            self._rows.update(fresh)
            self._pending.update(fresh)
            if len(self._pending) >= FLUSH_ROWS:
                self.flush()
        if not keys:
            return np.zeros((0, self.dimension), dtype=np.float32), []
        rows = [self._rows[k] for k in keys]
        return np.stack([v for v, _ in rows]), [s.astype(np.float32) for _, s in rows]

    def embed(self, texts: list[str]) -> np.ndarray:
        return self.inner.embed(texts)  # the Ingestor embeds through embed_with_sentences only

    def embed_one(self, text: str) -> np.ndarray:
        return self.inner.embed_one(text)  # questions are never cached: their time is measured

    def flush(self) -> None:
        if not self._pending:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        number = len(list(self.folder.glob("part-*.npz")))
        staged = self.folder / f"tmp-{number:05d}.npz"
        vectors, sentences = zip(*self._pending.values(), strict=True)
        np.savez(staged, keys=np.array(list(self._pending), dtype="S20"), vectors=np.stack(vectors),
                 counts=np.array([len(s) for s in sentences], dtype=np.int32), sentences=np.vstack(sentences))
        staged.replace(self.folder / f"part-{number:05d}.npz")
        self._pending = {}


def synthetic_index(size: int, seed: int = 1) -> dict:
    """The index of the first articles of corpus `seed` that make about `size` chunks; built on the
    first call (embedding what the cache lacks), reused after. Run it in its own process: the
    build's peak RSS is reported."""
    from rag.index.embeddings import load_embedder
    from rag.index.ingestor import Ingestor

    corpus = CACHE / f"corpus-seed{seed}"
    count = synthetic.articles_for_chunks(seed, size)
    probe = bench_settings(CACHE / "unused", corpus)
    embedder = load_embedder(probe.embed_model, probe.embed_batch_size)
    index_dir = CACHE / f"index-{embedder.name}-seed{seed}-{size}"
    done = index_dir / "bench-build.json"
    if done.exists() and "sentence_files" in json.loads(done.read_text()):  # else built before sentence vectors
        return {**json.loads(done.read_text()), "cached": True}
    started = time.perf_counter()
    synthetic.write_corpus(corpus, seed, count)
    files = [corpus / f"part-{i // 1000:03d}" / a.name for i, a in enumerate(synthetic.articles(seed, count))]
    cached = CachingEmbedder(embedder, CACHE / "vectors" / f"{embedder.name}-seed{seed}-sentences")
    log(f"index {size}: {count} articles, {cached.cached} vectors cached; ingesting into {index_dir}")
    ingest_started = time.perf_counter()

    logged = [0]

    def progress(done_chunks: int, total: int, _source: str) -> None:
        if done_chunks - logged[0] >= 5000 or done_chunks == total:
            logged[0] = done_chunks
            rate = cached.encoded / cached.encode_seconds if cached.encode_seconds else 0
            log(f"index {size}: {done_chunks}/{total} chunks stored, {cached.encoded} encoded ({rate:.0f}/s)")

    try:
        report = Ingestor(bench_settings(index_dir, corpus), embedder=cached).run(
            files, show_progress=False, on_progress=progress
        )
    finally:
        cached.flush()
    seconds = time.perf_counter() - ingest_started
    stats = {
        "size": size,
        "seed": seed,
        "index_dir": str(index_dir.relative_to(ROOT)),
        "corpus_dir": str(corpus.relative_to(ROOT)),
        "model": embedder.name,
        "articles": report.documents,
        "chunks": report.chunks,
        "encoded_now": cached.encoded,
        "encode_seconds": round(cached.encode_seconds, 1),
        "ingest_seconds": round(seconds, 1),
        "ingest_seconds_without_encoding": round(seconds - cached.encode_seconds, 1),
        "total_seconds": round(time.perf_counter() - started, 1),
        "build_peak_rss_mb": round(memory_mb()["peak_rss_mb"], 1),
        "sentence_files": sentence_files(index_dir),
    }
    done.write_text(json.dumps(stats, indent=1))
    log(f"index {size}: {json.dumps(stats)}")
    return {**stats, "cached": False}


def sentence_files(index_dir: Path) -> dict:
    """How many of the manifest's articles list a sentence-vector file, and how many of those exist:
    an index without them would time the answerer embedding sentences at question time."""
    from rag.index.manifest import Manifest

    entries = Manifest.load(index_dir).documents.values()
    listed = [e.sentence_file for e in entries if e.sentence_file]
    return {"articles": len(entries), "listed": len(listed),
            "present": sum((index_dir / name).exists() for name in listed)}


def bundled_index() -> dict:
    """The index of the bundled corpus (corpus/), kept apart from the project's own index/ so that
    nobody else's ingest changes it mid-run."""
    return _real_index(CACHE / "index-bundled", ROOT / "corpus")


def bbc_corpus() -> Path | None:
    """The BBC News corpus the eval suite uses (evals/suites.json), read where it lies, or None."""
    suites = json.loads((ROOT / "evals" / "suites.json").read_text())
    folder = (ROOT / suites["bbc"]["corpus"]).resolve()
    return folder if folder.is_dir() else None


def bbc_index() -> dict:
    """The index of the whole BBC corpus, built by the real Ingestor on the first call (about 6 min
    on two cores), brought up to date after; never the eval suite's own index."""
    corpus = bbc_corpus()
    if corpus is None:
        return {"missing": "the BBC corpus (evals/suites.json) is not on this machine"}
    return _real_index(CACHE / "index-bbc", corpus)


def _real_index(index_dir: Path, corpus: Path) -> dict:
    from rag.index.ingestor import Ingestor

    report = Ingestor(bench_settings(index_dir, corpus)).run(show_progress=False)
    return {"index_dir": str(index_dir.relative_to(ROOT)), "corpus_dir": str(corpus),
            "articles": report.documents, "chunks": report.chunks, "ingest_seconds": round(report.seconds, 1),
            "chunks_added": report.chunks_added, "sentence_files": sentence_files(index_dir)}


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="Build (or check) the cached benchmark indexes.")
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--bbc", action="store_true", help="also the index of the BBC corpus")
    args = parser.parse_args()
    if args.bbc:
        print(json.dumps(bbc_index()))
    for wanted in sorted(int(s) for s in args.sizes.split(",") if s):
        print(json.dumps(synthetic_index(wanted, args.seed)))
