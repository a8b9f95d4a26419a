"""Ingest throughput: `Ingestor.run` end to end against a raw `SentenceTransformer.encode` of the
same texts, with the same batch size, in one process, on generated articles or on a sample of the
BBC News corpus.

The ingest stores each chunk's sentence vectors too (`Embedder.embed_with_sentences`: the chunk and
its sentences from one forward pass), so the ratio to raw encode includes them. The rounds run
A B B A (ingest, raw, raw, ingest, ...) so that a change in the machine's load during the run weighs
on both sides alike. The ingest's own stages are timed by wrapping the Ingestor's methods, which
shows where any time beyond the encoding goes.
"""

from __future__ import annotations

import functools
import importlib
import random
import time
from collections import defaultdict
from pathlib import Path

from bench import synthetic
from bench.common import CACHE, log, memory_mb
from bench.indexes import bbc_corpus, bench_settings

# Stages timed by wrapping them: (module, attribute). The embedding itself is timed by
# RecordingEmbedder; the sentence pooling runs inside it, the sentence files' writing after it.
STAGES = (
    ("rag.index.ingestor", "Ingestor._reconcile"),
    ("rag.index.ingestor", "Ingestor._scan"),
    ("rag.index.ingestor", "Ingestor._prepare"),
    ("rag.index.embeddings", "_pooled"),
    ("rag.index.store", "VectorStore.upsert"),
    ("rag.index.sentence_vectors", "save"),
    ("rag.index.ingestor", "Ingestor._commit"),
    ("rag.index.ingestor", "Ingestor._clean_up"),
)


class RecordingEmbedder:
    """Passes through to the project's Embedder, keeping the texts it was asked to embed, how many
    sentence vectors it returned and the time."""

    def __init__(self, inner):
        self.inner = inner
        self.name = inner.name
        self.dimension = inner.dimension
        self.reset()

    def reset(self) -> None:
        self.texts: list[str] = []
        self.sentences = 0
        self.seconds = 0.0

    def embed_with_sentences(self, texts: list[str], sentence_spans: list[list[tuple[int, int]]]):
        started = time.perf_counter()
        vectors, sentences = self.inner.embed_with_sentences(texts, sentence_spans)
        self.seconds += time.perf_counter() - started
        self.texts.extend(texts)
        self.sentences += sum(len(s) for s in sentences)
        return vectors, sentences

    def embed(self, texts: list[str]):
        return self.inner.embed(texts)  # not called by the Ingestor: it embeds with the sentences

    def embed_one(self, text: str):
        return self.inner.embed_one(text)


def _time_stages(totals: dict[str, float]) -> None:
    for module, attribute in STAGES:
        owner = importlib.import_module(module)
        *path, name = attribute.split(".")
        for part in path:
            owner = getattr(owner, part)
        original = getattr(owner, name)

        @functools.wraps(original)
        def timed(*args, _original=original, _key=attribute, **kwargs):
            started = time.perf_counter()
            try:
                return _original(*args, **kwargs)
            finally:
                totals[_key] += time.perf_counter() - started

        setattr(owner, name, timed)


def _synthetic_sample(chunks: int, seed: int) -> tuple[Path, list[Path]]:
    corpus = CACHE / f"ingest-corpus-seed{seed}-{chunks}"
    synthetic.write_corpus(corpus, seed, synthetic.articles_for_chunks(seed, chunks))
    return corpus, [corpus]


def _bbc_sample(chunks: int, seed: int, chunk_chars: int) -> tuple[Path, list[Path]]:
    """Seeded random BBC articles, read where they lie, until their chunks reach about `chunks`."""
    from rag.ingest.chunking import chunk_text

    corpus = bbc_corpus()
    files = sorted(corpus.glob("*/*.txt"))
    random.Random(seed).shuffle(files)
    picked, total = [], 0
    for path in files:
        if total >= chunks:
            break
        picked.append(path)
        total += len(chunk_text(path.read_text(errors="replace"), chunk_chars))
    return corpus, picked


def run(chunks: int = 1000, seed: int = 7, repeats: int = 2, corpus: str = "synthetic") -> dict:
    """Run in a fresh process (it patches the Ingestor to time its stages). `corpus` is
    "synthetic" (generated articles) or "bbc" (a sample of the BBC corpus)."""
    from sentence_transformers import SentenceTransformer

    from rag.index.embeddings import load_embedder, resolve_model_path
    from rag.index.ingestor import Ingestor

    if corpus == "bbc" and bbc_corpus() is None:
        return {"missing": "the BBC corpus (evals/suites.json) is not on this machine"}
    probe = bench_settings(CACHE / "unused", CACHE)
    folder, paths = (_bbc_sample(chunks, seed, probe.chunk_chars) if corpus == "bbc"
                     else _synthetic_sample(chunks, seed))
    settings = bench_settings(CACHE / f"ingest-index-{corpus}", folder)
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
                embedder.reset()
                stages.clear()
                cpu = time.process_time()
                report = Ingestor(settings, embedder=embedder).run(paths, rebuild=True, show_progress=False)
                texts = list(embedder.texts)
                ingest = {"chunks": report.chunks_added, "seconds": report.seconds,
                          "cpu_seconds": time.process_time() - cpu, "sentences": embedder.sentences,
                          "embed_seconds": embedder.seconds, "stages": dict(stages)}
                if number == 0:
                    after_ingest = memory_mb()  # before the raw model is loaded: the ingest's own peak
                log(f"ingest round {number} ({corpus}): {report.chunks_added} chunks in {report.seconds:.1f}s")
            else:
                if raw is None:
                    raw = SentenceTransformer(str(resolve_model_path(settings.embed_model)), device="cpu")
                    raw.encode(["warm up the model"] * settings.embed_batch_size)
                started, cpu = time.perf_counter(), time.process_time()
                raw.encode(texts, batch_size=settings.embed_batch_size, normalize_embeddings=True,
                           convert_to_numpy=True, show_progress_bar=False)
                raw_seconds = time.perf_counter() - started
                raw_cpu_seconds = time.process_time() - cpu
                log(f"raw encode round {number} ({corpus}): {len(texts)} texts in {raw_seconds:.1f}s")
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
        "corpus": corpus,
        "articles": report.documents,
        "chunks": report.chunks,
        "batch_size": settings.embed_batch_size,
        "rounds": rounds,
        "rss_before_ingest_mb": before["rss_mb"],
        "ingest_peak_rss_mb": after_ingest["peak_rss_mb"],
        "peak_rss_mb": memory_mb()["peak_rss_mb"],
    }


def sidecar_scan(counts: tuple[int, ...] = (250, 1000, 4000), seed: int = 9) -> list[dict]:
    """`Ingestor._scan` over one folder of N articles, with and without a metadata.json sidecar
    that lists them all (a sidecar that grows with the folder must not make the scan quadratic)."""
    import json

    from rag.index.ingestor import Ingestor, IngestReport
    from rag.index.manifest import Manifest

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
    from rag.index.keyword import KeywordIndex
    from rag.index.manifest import Manifest

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
