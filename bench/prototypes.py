"""Prototypes of changes the benchmarks recommend, measured against the current code in one run.
Nothing here is used by the project; rag/ is left as it is.

1. `NumpyMiniLM`: the bundled MiniLM's forward pass in numpy (tokenizers + safetensors, no torch, no
   sentence-transformers). A fresh `rag ask` spends most of its time importing sentence-transformers
   (torch, transformers, scikit-learn, scipy, pandas); this needs none of them for a question.
2. `BatchedSentenceRanker`: the SentenceRanker embedding the sentences of all the passages it has
   not seen in one `embed` call, instead of one call per passage.
3. `cached_sidecar_entry`: the ingest's scan reading each folder's metadata.json once, not once per file.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from bench import synthetic
from bench.common import ROOT, ms_since, summary
from bench.indexes import bench_settings

# --- 1. the query encoder without torch ------------------------------------------------------------


def _erf(x: np.ndarray) -> np.ndarray:
    """Abramowitz & Stegun 7.1.26 (error < 1.5e-7, below float32's resolution here)."""
    sign = np.sign(x)
    x = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * x)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    return sign * (1.0 - poly * np.exp(-x * x))


class NumpyMiniLM:
    """A BERT encoder + mean pooling + L2 normalisation, as the sentence-transformers folder says."""

    def __init__(self, model_path: Path, max_tokens: int = 256):
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        config = json.loads((model_path / "config.json").read_text())
        self.heads = config["num_attention_heads"]
        self.layers = config["num_hidden_layers"]
        self.eps = config["layer_norm_eps"]
        self.name = model_path.name if model_path.name != "model" else model_path.parent.name
        self.dimension = config["hidden_size"]
        weights = load_file(str(model_path / "model.safetensors"))
        # Linear layers as (in, out), ready for x @ w.
        self.w = {k: (np.ascontiguousarray(v.T) if k.endswith("dense.weight") or k.endswith(("query.weight",
                  "key.weight", "value.weight")) else v) for k, v in weights.items()}
        self.tokenizer = Tokenizer.from_file(str(model_path / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_tokens)

    def _norm(self, x, prefix):
        mean = x.mean(-1, keepdims=True)
        var = ((x - mean) ** 2).mean(-1, keepdims=True)
        return (x - mean) / np.sqrt(var + self.eps) * self.w[prefix + ".weight"] + self.w[prefix + ".bias"]

    def _linear(self, x, prefix):
        return x @ self.w[prefix + ".weight"] + self.w[prefix + ".bias"]

    def embed(self, texts: list[str], show_progress: bool = False) -> np.ndarray:
        """One padded batch through the encoder; padding is masked out of attention and pooling."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        encoded = [e.ids for e in self.tokenizer.encode_batch(texts)]
        b, n = len(encoded), max(len(ids) for ids in encoded)
        ids = np.zeros((b, n), dtype=np.int64)
        mask = np.zeros((b, n), dtype=np.float32)
        for row, tokens in enumerate(encoded):
            ids[row, : len(tokens)] = tokens
            mask[row, : len(tokens)] = 1.0
        w = self.w
        x = (w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][:n]
             + w["embeddings.token_type_embeddings.weight"][0])
        x = self._norm(x, "embeddings.LayerNorm")
        size = x.shape[-1] // self.heads
        blocked = (1.0 - mask)[:, None, None, :] * -1e9
        for i in range(self.layers):
            p = f"encoder.layer.{i}."
            q, k, v = (self._linear(x, p + f"attention.self.{name}").reshape(b, n, self.heads, size)
                       .transpose(0, 2, 1, 3) for name in ("query", "key", "value"))
            scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(size) + blocked
            scores = np.exp(scores - scores.max(-1, keepdims=True))
            context = ((scores / scores.sum(-1, keepdims=True)) @ v).transpose(0, 2, 1, 3).reshape(b, n, -1)
            x = self._norm(x + self._linear(context, p + "attention.output.dense"), p + "attention.output.LayerNorm")
            hidden = self._linear(x, p + "intermediate.dense")
            hidden = 0.5 * hidden * (1.0 + _erf(hidden / math.sqrt(2.0)))
            x = self._norm(x + self._linear(hidden, p + "output.dense"), p + "output.LayerNorm")
        pooled = (x * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)
        return (pooled / np.linalg.norm(pooled, axis=1, keepdims=True)).astype(np.float32)

    def embed_one(self, text: str) -> np.ndarray:
        return self.embed([text])[0]


def agreement(samples: int = 40) -> dict:
    """How far the numpy encoder's vectors are from sentence-transformers' (questions and chunks)."""
    from rag.embeddings import load_embedder, resolve_model_path

    texts = synthetic.questions(5, samples // 2) + [a.body[:600] for a in synthetic.articles(5, samples // 2)]
    reference = load_embedder(None).embed(texts)
    mine = NumpyMiniLM(resolve_model_path(None)).embed(texts)
    cosine = (mine * reference).sum(1)
    return {"texts": len(texts), "max_abs_diff": float(np.abs(mine - reference).max()),
            "min_cosine": float(cosine.min())}


def ask(question: str, index_dir: str, corpus_dir: str, light: bool) -> None:
    """What `rag ask --json` does, with the numpy encoder when `light`; prints the answer."""
    import rag.assistant

    if light:
        from rag.embeddings import resolve_model_path

        encoder = NumpyMiniLM(resolve_model_path(None))
        rag.assistant.load_embedder = lambda *_args, **_kwargs: encoder
    assistant = rag.assistant.Assistant.from_settings(bench_settings(ROOT / index_dir, ROOT / corpus_dir))
    answer = assistant.ask(question)
    modules = sorted(m for m in ("torch", "sentence_transformers", "sklearn", "scipy", "pandas") if m in sys.modules)
    print(json.dumps({**answer.to_dict(), "heavy_modules": modules}))


def _env(kind: str) -> dict:
    """numpy's OpenBLAS spins up a thread per core for these small matrices; on two shared cores
    the threads wait on each other (as torch's OpenMP does without OMP_WAIT_POLICY=PASSIVE)."""
    import os

    return {**os.environ, "OPENBLAS_NUM_THREADS": "1"} if kind == "numpy" else dict(os.environ)


def cold_ab(index_dir: str, corpus_dir: str, runs: int = 5) -> dict:
    """Fresh processes answering a question, alternating the current encoder and the numpy one."""
    from bench.ask_bench import eval_questions

    walls: dict[str, list[float]] = {"current": [], "numpy": []}
    inside: dict[str, list[float]] = {"current": [], "numpy": []}
    answers: dict[str, list[str]] = {"current": [], "numpy": []}
    loaded = {}
    for number, question in enumerate(eval_questions()[:runs]):
        order = ("current", "numpy") if number % 2 == 0 else ("numpy", "current")
        for kind in order:
            started = time.perf_counter()
            done = subprocess.run([sys.executable, "-m", "bench.prototypes", kind, question, index_dir, corpus_dir],
                                  cwd=ROOT, capture_output=True, text=True, check=True, env=_env(kind))
            walls[kind].append(ms_since(started) / 1000)
            result = json.loads(done.stdout.splitlines()[-1])
            answers[kind].append(result["answer"])
            inside[kind].append(result["timings"]["total_ms"])
            loaded[kind] = result["heavy_modules"]
    same = sum(a == b for a, b in zip(answers["current"], answers["numpy"], strict=True))
    return {"wall_s": {k: summary(v) for k, v in walls.items()},
            "first_answer_ms_inside": {k: summary(v) for k, v in inside.items()}, "same_answers": f"{same}/{runs}",
            "heavy_modules_loaded": loaded, "agreement": agreement()}


# --- 2. one embedding call per answer in the SentenceRanker ---------------------------------------


def batched_ranker_class():
    from rag.chunking import split_sentences
    from rag.extractive import SentenceRanker

    class BatchedSentenceRanker(SentenceRanker):
        def _sentences(self, passages):
            with self._lock:
                missing = list({p.chunk_id: p for p in passages if p.chunk_id not in self._cache}.values())
            if missing:
                spans = [split_sentences(p.text) for p in missing]
                texts = [p.text[s.start : s.end] for p, found in zip(missing, spans, strict=True) for s in found]
                vectors = self.embedder.embed(texts)
                at = 0
                with self._lock:
                    for passage, found in zip(missing, spans, strict=True):
                        if len(self._cache) >= self._cache_size:
                            self._cache.pop(next(iter(self._cache)))
                        self._cache[passage.chunk_id] = (found, vectors[at : at + len(found)])
                        at += len(found)
            return super()._sentences(passages)

    return BatchedSentenceRanker


def ranker_ab(index_dir: str, corpus_dir: str, questions: int = 40, seed: int = 1) -> dict:
    """The same questions answered with the current and the batched ranker (each with its own
    sentence cache), alternating which goes first."""
    from bench.ingest_bench import RecordingEmbedder
    from rag.assistant import Assistant
    from rag.extractive import SentenceRanker

    assistant = Assistant.from_settings(bench_settings(ROOT / index_dir, ROOT / corpus_dir))
    rankers = {"current": SentenceRanker(RecordingEmbedder(assistant.embedder)),
               "batched": batched_ranker_class()(RecordingEmbedder(assistant.embedder))}
    asked = synthetic.questions(seed + 3000, questions + 2)
    for ranker in rankers.values():  # warm both up on their own questions
        assistant.ranker = ranker
        assistant.ask(asked[0])
    results: dict[str, dict[str, list[float]]] = {
        k: {"answer_ms": [], "rank_ms": [], "embedding_in_rank_ms": [], "sentences_embedded": []} for k in rankers}
    answers: dict[str, list[str]] = {k: [] for k in rankers}
    for number, question in enumerate(asked[2:]):
        for kind in list(rankers)[:: 1 if number % 2 == 0 else -1]:
            assistant.ranker = recorder = rankers[kind]
            before, texts = recorder.embedder.seconds, len(recorder.embedder.texts)
            started = time.perf_counter()
            answer = assistant.ask(question)
            results[kind]["answer_ms"].append(ms_since(started))
            results[kind]["rank_ms"].append(answer.timings["rank_ms"])
            results[kind]["embedding_in_rank_ms"].append((recorder.embedder.seconds - before) * 1000)
            results[kind]["sentences_embedded"].append(len(recorder.embedder.texts) - texts)
            answers[kind].append(answer.answer)
    same = sum(a == b for a, b in zip(answers["current"], answers["batched"], strict=True))
    return {kind: {name: summary(values) for name, values in series.items()} for kind, series in results.items()} | {
        "same_answers": f"{same}/{questions}"}


if __name__ == "__main__":
    ask(sys.argv[2], sys.argv[3], sys.argv[4], light=sys.argv[1] == "numpy")


# --- 3. the sidecar read once per folder ----------------------------------------------------------


def cached_sidecar_entry():
    """A drop-in for rag.ingest._sidecar_entry that parses each metadata.json once (until it changes)."""
    from functools import lru_cache

    from rag.ingest import SIDECAR_NAME

    @lru_cache(maxsize=64)
    def parsed(sidecar: Path, _stamp: int) -> dict:
        return json.loads(sidecar.read_text())

    def sidecar_entry(path: Path) -> dict:
        sidecar = path.parent / SIDECAR_NAME
        if not sidecar.exists():
            return {}
        try:
            return parsed(sidecar, sidecar.stat().st_mtime_ns).get(path.name, {})
        except json.JSONDecodeError as exc:
            raise ValueError(f"{sidecar} is not valid JSON: {exc}") from exc

    return sidecar_entry


# --- 4. the dense ranking without the payloads of its 4k candidates -------------------------------


def lean_retriever_class():
    """A Retriever whose dense query asks Chroma for ids and distances only; the texts and metadata
    are fetched for the k fused winners alone (`_fuse` already does that for keyword-only hits)."""
    import time as clock

    from rag.retrieve import CANDIDATES_PER_RANKER, Filters, Retrieval, Retriever, _ms_since

    class LeanRetriever(Retriever):
        def search(self, question, k=None, filters=None, mode=None, query_vector=None):
            self.refresh()
            k = k or self.settings.top_k
            mode = mode or self.settings.retrieval
            filters = filters or Filters.from_settings(self.settings)
            timings: dict[str, float] = {}
            started = clock.perf_counter()
            if query_vector is None:
                query_vector = self.embedder.embed_one(question)
            timings["embed_ms"] = _ms_since(started)
            candidates = k * CANDIDATES_PER_RANKER
            rankings: dict[str, list[str]] = {}
            if mode in ("dense", "hybrid"):
                started = clock.perf_counter()
                n = min(candidates, max(len(self._committed), 1))
                found = self.store._collection.query(query_embeddings=[query_vector], n_results=n,
                                                     where=filters.chroma_where(), include=["distances"])
                rankings["dense"] = [cid for cid in found["ids"][0] if cid in self._committed]
                timings["dense_ms"] = _ms_since(started)
            if mode in ("keyword", "hybrid"):
                started = clock.perf_counter()
                hits = self._keywords.search(question, candidates, filters.keyword_allowed())
                rankings["keyword"] = [cid for cid, _ in hits if cid in self._committed]
                timings["keyword_ms"] = _ms_since(started)
            started = clock.perf_counter()
            passages = self._fuse(rankings, {}, query_vector, k)
            timings["fuse_ms"] = _ms_since(started)
            return Retrieval(question, query_vector, passages, timings)

    return LeanRetriever


def lean_retriever_ab(index_dir: str, corpus_dir: str, queries: int = 300, seed: int = 1) -> dict:
    """Hybrid retrieval, current against lean, beside the raw engines, alternating per question."""
    import bm25s
    import Stemmer

    from bench.retrieval_bench import QUESTION_SEED_OFFSET
    from rag.embeddings import load_embedder
    from rag.retrieve import Retriever

    settings = bench_settings(ROOT / index_dir, ROOT / corpus_dir)
    embedder = load_embedder(settings.embed_model, settings.embed_batch_size)
    current, lean = Retriever(settings, embedder), lean_retriever_class()(settings, embedder)
    manifest = current.refresh()
    lean.refresh()
    collection = current.store._collection
    bm25 = bm25s.BM25.load(str(settings.index_dir / manifest.keyword_dir), mmap=False, show_progress=False)
    stemmer = Stemmer.Stemmer("english")
    questions = synthetic.questions(seed + QUESTION_SEED_OFFSET, queries + 10)
    vectors = embedder.embed(questions)

    def raw(q, v):
        collection.query(query_embeddings=[v], n_results=5)
        tokens = bm25s.tokenize([q], stopwords="en", stemmer=stemmer, return_ids=False, show_progress=False)
        bm25.retrieve(tokens, k=5, show_progress=False)

    calls = {"raw_sum": raw,
             "current": lambda q, v: current.search(q, 5, mode="hybrid", query_vector=v),
             "lean": lambda q, v: lean.search(q, 5, mode="hybrid", query_vector=v)}
    samples: dict[str, list[float]] = {name: [] for name in calls}
    same = 0
    for number, (question, vector) in enumerate(zip(questions, vectors, strict=True)):
        names = list(calls)[number % 3:] + list(calls)[: number % 3]
        got = {}
        for name in names:
            started = time.perf_counter()
            got[name] = calls[name](question, vector)
            if number >= 10:
                samples[name].append(ms_since(started))
        same += [p.chunk_id for p in got["current"].passages] == [p.chunk_id for p in got["lean"].passages]
    return {"chunks": len(manifest.chunk_ids()), "latency_ms": {k: summary(v) for k, v in samples.items()},
            "same_passages": f"{same}/{len(questions)}"}


# --- 5. bigger embedding windows in the ingest ------------------------------------------------------


def window_ab(index_dir: str, window: int = 256, rounds: int = 2) -> dict:
    """Raw encode of an index's chunk texts in one call against windows of `window` texts, as
    Ingestor._stage hands them to the embedder (EMBED_BATCH_CHUNKS). sentence-transformers sorts
    by length within a call, so smaller windows pad more; the padding is counted with the tokenizer."""
    from sentence_transformers import SentenceTransformer

    from rag.embeddings import resolve_model_path
    from rag.keyword import KeywordIndex
    from rag.manifest import Manifest
    from rag.settings import Settings

    folder = ROOT / index_dir
    texts = KeywordIndex.load(folder / Manifest.load(folder).keyword_dir).texts  # title + "\n" + chunk
    batch = Settings().embed_batch_size
    model = SentenceTransformer(str(resolve_model_path(None)), device="cpu")
    lengths = [len(ids) for ids in model.tokenizer(texts, truncation=True, max_length=model.max_seq_length)["input_ids"]]

    def padded(size: int) -> int:
        total = 0
        for at in range(0, len(lengths), size):
            ordered = sorted(lengths[at : at + size], reverse=True)
            total += sum(max(ordered[b : b + batch]) * len(ordered[b : b + batch]) for b in range(0, len(ordered), batch))
        return total

    def encode(size: int) -> float:
        started = time.perf_counter()
        for at in range(0, len(texts), size):
            model.encode(texts[at : at + size], batch_size=batch, normalize_embeddings=True, show_progress_bar=False)
        return time.perf_counter() - started

    model.encode(texts[:batch], batch_size=batch)
    seconds: dict[str, list[float]] = {"one call": [], f"windows of {window}": []}
    for number in range(rounds):
        for name in list(seconds)[:: 1 if number % 2 == 0 else -1]:
            seconds[name].append(encode(len(texts) if name == "one call" else window))
    return {"texts": len(texts), "tokens": sum(lengths), "batch_size": batch,
            "padded_tokens": {"one call": padded(len(texts)), f"windows of {window}": padded(window)},
            "seconds": seconds}
