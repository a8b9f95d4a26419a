"""Retrieval latency: `Retriever.search` in each mode against the raw engines under it, on one index.

For every question, in an order that rotates from one question to the next, it times:
- `raw_chroma`: `collection.query` with the question's vector, k results (Chroma's own API);
- `raw_bm25`: `bm25s.tokenize` + `BM25.retrieve`, k results, on the same saved keyword index;
- the same two with the 4k candidates the Retriever asks each ranker for (`*_x4`);
- `dense`, `keyword`, `hybrid`: `Retriever.search(question, k, mode=..., query_vector=vector)`;
- `hybrid+embed`: `Retriever.search(question, k, mode="hybrid")`, which embeds the question too;
- `embed`: the question's embedding alone.
The raw calls get the precomputed vector, so the ratios compare like with like.
"""

from __future__ import annotations

from bench import synthetic
from bench.common import ROOT, memory_mb, ms_since, summary
from bench.indexes import bench_settings

WARM_UP = 10
QUESTION_SEED_OFFSET = 1000  # questions use their own random stream, apart from the articles'


def run(index_dir: str, corpus_dir: str, queries: int = 200, seed: int = 1, k: int = 5) -> dict:
    """Run in a fresh process, one per index."""
    import time

    import bm25s
    import Stemmer

    from rag.answer.retrieve import CANDIDATES_PER_RANKER, Retriever
    from rag.index.embeddings import load_embedder
    from rag.index.store import open_vector_store

    settings = bench_settings(ROOT / index_dir, ROOT / corpus_dir)
    embedder = load_embedder(settings.embed_model, settings.embed_batch_size)
    retriever = Retriever(settings, embedder)
    manifest = retriever.refresh()
    collection = open_vector_store(settings, embedder.name, manifest.collection, create=False).collection
    bm25 = bm25s.BM25.load(str(settings.index_dir / manifest.keyword_dir), mmap=False, show_progress=False)
    stemmer = Stemmer.Stemmer("english")
    questions = synthetic.questions(seed + QUESTION_SEED_OFFSET, queries + WARM_UP)
    vectors = embedder.embed(questions)
    wide = k * CANDIDATES_PER_RANKER

    def raw_chroma(n):
        return lambda q, v: collection.query(query_embeddings=[v], n_results=n)

    def raw_bm25(n):
        def call(q, v):
            tokens = bm25s.tokenize([q], stopwords="en", stemmer=stemmer, return_ids=False, show_progress=False)
            return bm25.retrieve(tokens, k=n, show_progress=False)

        return call

    def search(mode, with_vector=True):
        return lambda q, v: retriever.search(q, k, mode=mode, query_vector=v if with_vector else None)

    calls = {
        "raw_chroma": raw_chroma(k),
        "raw_bm25": raw_bm25(k),
        "raw_chroma_x4": raw_chroma(wide),
        "raw_bm25_x4": raw_bm25(wide),
        "dense": search("dense"),
        "keyword": search("keyword"),
        "hybrid": search("hybrid"),
        "hybrid+embed": search("hybrid", with_vector=False),
        "embed": lambda q, v: embedder.embed_one(q),
    }
    names = list(calls)
    samples: dict[str, list[float]] = {name: [] for name in names}
    stages: dict[str, list[float]] = {}
    returned = []
    for number, (question, vector) in enumerate(zip(questions, vectors, strict=True)):
        shift = number % len(names)
        for name in names[shift:] + names[:shift]:
            started = time.perf_counter()
            result = calls[name](question, vector)
            elapsed = ms_since(started)
            if number < WARM_UP:
                continue
            samples[name].append(elapsed)
            if name == "hybrid":
                returned.append(len(result.passages))
                for stage, value in result.timings.items():
                    stages.setdefault(stage, []).append(value)
    raw_sum = [c + b for c, b in zip(samples["raw_chroma"], samples["raw_bm25"], strict=True)]
    return {
        "index_dir": index_dir,
        "chunks": len(manifest.chunk_ids()),
        "articles": len(manifest.documents),
        "queries": queries,
        "k": k,
        "latency_ms": {name: summary(values) for name, values in samples.items()},
        "raw_sum_ms": summary(raw_sum),
        "hybrid_stages_ms": {stage: summary(values) for stage, values in stages.items()},
        "hybrid_passages_mean": sum(returned) / len(returned),
        "process_rss_mb": memory_mb()["rss_mb"],
    }
