"""Ingest throughput: `Ingestor.run` end to end against a raw `SentenceTransformer.encode` of the
same texts, with the same batch size, in one process.

The rounds run A B B A (ingest, raw, raw, ingest, ...) so that a change in the machine's load
during the run weighs on both sides alike. The ingest's own stages are timed by wrapping the
Ingestor's methods, which shows where any time beyond the encoding goes.
"""

from __future__ import annotations

import functools
import time
from collections import defaultdict

from bench import synthetic
from bench.common import CACHE, log, memory_mb
from bench.indexes import bench_settings

# Ingest stages timed: (class path, method). The embedding is timed by RecordingEmbedder.
STAGES = (
    ("rag.ingest:Ingestor", "_reconcile"),
    ("rag.ingest:Ingestor", "_scan"),
    ("rag.ingest:Ingestor", "_prepare"),
    ("rag.store:VectorStore", "upsert"),
    ("rag.ingest:Ingestor", "_commit"),
    ("rag.ingest:Ingestor", "_clean_up"),
)


class RecordingEmbedder:
    """Passes through to the project's Embedder, keeping the texts it was asked to embed and the time."""

    def __init__(self, inner):
        self.inner = inner
        self.name = inner.name
        self.dimension = inner.dimension
        self.texts: list[str] = []
        self.seconds = 0.0

    def embed(self, texts: list[str], show_progress: bool = False):
        started = time.perf_counter()
        vectors = self.inner.embed(texts)
        self.seconds += time.perf_counter() - started
        self.texts.extend(texts)
        return vectors

    def embed_one(self, text: str):
        return self.inner.embed_one(text)


def _sentence_cost(raw, texts: list[str], batch_size: int, chunk_seconds: float) -> dict:
    """What embedding every chunk's sentences would add to an ingest (the answerer embeds ~30 of
    them per answer, at query time, when they are not cached)."""
    from rag.chunking import split_sentences

    sentences = list(dict.fromkeys(
        chunk[s.start : s.end] for text in texts for chunk in [text.split("\n", 1)[1]] for s in split_sentences(chunk)
    ))
    started = time.perf_counter()
    raw.encode(sentences, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True,
               show_progress_bar=False)
    seconds = time.perf_counter() - started
    return {"sentences": len(sentences), "seconds": seconds, "chunk_seconds": chunk_seconds,
            "relative_to_chunks": seconds / chunk_seconds}


def _time_stages(totals: dict[str, float]) -> None:
    import importlib

    for path, method in STAGES:
        module, name = path.split(":")
        cls = getattr(importlib.import_module(module), name)
        original = getattr(cls, method)

        @functools.wraps(original)
        def timed(*args, _original=original, _key=f"{name}.{method}", **kwargs):
            started = time.perf_counter()
            try:
                return _original(*args, **kwargs)
            finally:
                totals[_key] += time.perf_counter() - started

        setattr(cls, method, timed)


def run(chunks: int = 2000, seed: int = 7, repeats: int = 2) -> dict:
    """Run in a fresh process (it patches the Ingestor to time its stages)."""
    from sentence_transformers import SentenceTransformer

    from rag.embeddings import load_embedder, resolve_model_path
    from rag.ingest import Ingestor

    corpus = CACHE / f"ingest-corpus-seed{seed}-{chunks}"
    synthetic.write_corpus(corpus, seed, synthetic.articles_for_chunks(seed, chunks))
    settings = bench_settings(CACHE / "ingest-index", corpus)
    embedder = RecordingEmbedder(load_embedder(settings.embed_model, settings.embed_batch_size))
    embedder.inner.embed(["warm up the model"] * settings.embed_batch_size)
    stages: dict[str, float] = defaultdict(float)
    _time_stages(stages)
    before = memory_mb()
    raw = None
    rounds = []
    for number in range(repeats):
        for step in ("ingest", "raw") if number % 2 == 0 else ("raw", "ingest"):
            if step == "ingest":
                embedder.texts, embedder.seconds = [], 0.0
                stages.clear()
                cpu = time.process_time()
                report = Ingestor(settings, embedder=embedder).run([corpus], rebuild=True, show_progress=False)
                texts = list(embedder.texts)
                ingest = {"chunks": report.chunks_added, "seconds": report.seconds,
                          "cpu_seconds": time.process_time() - cpu,
                          "embed_seconds": embedder.seconds, "stages": dict(stages)}
                if number == 0:
                    after_ingest = memory_mb()  # before the raw model is loaded: the ingest's own peak
                log(f"ingest round {number}: {report.chunks_added} chunks in {report.seconds:.1f}s")
            else:
                if raw is None:
                    raw = SentenceTransformer(str(resolve_model_path(settings.embed_model)), device="cpu")
                    raw.encode(["warm up the model"] * settings.embed_batch_size)
                started, cpu = time.perf_counter(), time.process_time()
                raw.encode(texts, batch_size=settings.embed_batch_size, normalize_embeddings=True,
                           convert_to_numpy=True, show_progress_bar=False)
                raw_seconds = time.perf_counter() - started
                raw_cpu_seconds = time.process_time() - cpu
                log(f"raw encode round {number}: {len(texts)} texts in {raw_seconds:.1f}s")
                if number == 0:
                    sentences = _sentence_cost(raw, texts, settings.embed_batch_size, raw_seconds)
        rounds.append({
            "ingest_chunks_per_s": ingest["chunks"] / ingest["seconds"],
            "raw_chunks_per_s": len(texts) / raw_seconds,
            "ratio": (ingest["chunks"] / ingest["seconds"]) / (len(texts) / raw_seconds),
            # CPU time is far less disturbed by other processes on the machine than wall time.
            "cpu_ratio": (ingest["chunks"] / ingest["cpu_seconds"]) / (len(texts) / raw_cpu_seconds),
            "order": "ingest, raw" if number % 2 == 0 else "raw, ingest",
            **ingest,
            "raw_seconds": raw_seconds,
            "raw_cpu_seconds": raw_cpu_seconds,
        })
    return {
        "articles": report.documents,
        "chunks": report.chunks,
        "batch_size": settings.embed_batch_size,
        "rounds": rounds,
        "sentences": sentences,
        "rss_before_ingest_mb": before["rss_mb"],
        "ingest_peak_rss_mb": after_ingest["peak_rss_mb"],
        "peak_rss_mb": memory_mb()["peak_rss_mb"],
    }


def sidecar_scan(counts: tuple[int, ...] = (250, 1000, 4000), seed: int = 9) -> list[dict]:
    """`Ingestor._scan` over one folder of N articles, with and without a metadata.json sidecar
    that lists them all (a sidecar that grows with the folder must not make the scan quadratic)."""
    import json

    from rag.ingest import Ingestor, IngestReport
    from rag.manifest import Manifest

    rows = []
    for count in counts:
        folder = CACHE / f"sidecar-corpus-{count}"
        synthetic.write_corpus(folder, seed, count, per_folder=count)
        part = next(folder.iterdir())
        items = synthetic.articles(seed, count)
        sidecar = {a.name: {"title": a.title, "publisher": a.publisher, "published": a.published} for a in items}
        ingestor = Ingestor(bench_settings(CACHE / "unused-index", folder), embedder=object())
        row = {"files": count, "sidecar_kb": len(json.dumps(sidecar)) / 1024}
        for label in ("without_sidecar", "with_sidecar"):
            (part / "metadata.json").unlink(missing_ok=True)
            if label == "with_sidecar":
                (part / "metadata.json").write_text(json.dumps(sidecar))
            started = time.perf_counter()
            ingestor._scan([folder], Manifest("m", 600, 1), IngestReport())
            row[f"{label}_s"] = time.perf_counter() - started
        (part / "metadata.json").unlink(missing_ok=True)
        rows.append(row)
        log(f"sidecar scan: {row}")
    return rows


def keyword_rebuild(index_dir: str) -> dict:
    """What every ingest into this index pays for the keyword index, even for one new article:
    `Ingestor._commit` loads the previous one's saved tokens, rebuilds the index and saves it."""
    import shutil
    import tempfile
    from pathlib import Path

    from bench.common import ROOT
    from rag.keyword import KeywordIndex
    from rag.manifest import Manifest

    folder = ROOT / index_dir
    manifest = Manifest.load(folder)
    started = time.perf_counter()
    entries = KeywordIndex.saved_entries(folder / manifest.keyword_dir)
    load_s = time.perf_counter() - started
    ids = list(entries)
    tokens = [entries[cid][0] for cid in ids]
    fields = {name: [entries[cid][1][name] for cid in ids] for name in ("published_int", "publisher_key")}
    started = time.perf_counter()
    rebuilt = KeywordIndex.build(ids, tokens, fields)
    build_s = time.perf_counter() - started
    scratch = Path(tempfile.mkdtemp(dir=CACHE))
    try:
        started = time.perf_counter()
        rebuilt.save(scratch)
        save_s = time.perf_counter() - started
        size_mb = sum(f.stat().st_size for f in scratch.iterdir()) / 2**20
    finally:
        shutil.rmtree(scratch)
    return {"chunks": len(ids), "load_s": load_s, "build_s": build_s, "save_s": save_s,
            "total_s": load_s + build_s + save_s, "size_mb": size_mb, **memory_mb()}
