"""Can a shared Chroma server hold the keyword side too? A probe for issue 13 (see bench/scale-out.md).

    python -m bench.scale_out_probe [--index DIR] [--questions FILE] [--corpus DIR --build]

It copies a built index (by default the BBC eval suite's), starts its own `chroma run` on a free
127.0.0.1 port, and measures, on the same chunks and questions:
- whether the server accepts a BM25 sparse index, `Search()` and `Rrf` (Chroma documents them);
  when it does, the sparse ranking is compared with bm25s as the rest is;
- inserting the chunks (stored vectors, no embedding) into the server: chunks/s, disk, server RSS;
- keyword top-10 from bm25s (rag.index.keyword) against the only keyword search this server answers,
  its full-text index (`where_document` `$contains`), ranked here by the IDF of the words matched;
- recall@5 of the gold article for the project's hybrid retrieval, and for the same fusion with the
  dense side on the server and the keyword side from bm25s or from the server;
- what sharing the bm25s files would cost each process: load time and RSS, with and without mmap.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from bench.common import ROOT, percentile

DEFAULT_INDEX = ROOT / "evals/.cache/bbc/index"
DEFAULT_QUESTIONS = ROOT / "evals/suites/bbc/questions.jsonl"
DEFAULT_CORPUS = ROOT.parent / "shared/corpora/bbc"
COLLECTION = "probe"
BATCH = 1000
TOP = 10  # keyword rankings compared at this depth
CANDIDATES = 20  # per ranker before fusion, as rag.answer.retrieve asks for k=5
RRF_K = 60
WORD = re.compile(r"\w+")


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    index = _find_index(args)
    if index is None:
        return 0
    with tempfile.TemporaryDirectory(prefix="scale-out-") as work:
        copy = Path(work) / "index"
        shutil.copytree(index, copy, ignore=shutil.ignore_patterns(".ingest.lock"))
        results = run_probe(copy, Path(work) / "server", args)
    results["load_average"] = {"start": args.load_at_start, "end": os.getloadavg()}
    print(json.dumps(results, indent=1))
    return 0


def _parse(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--index", type=Path, default=DEFAULT_INDEX, help="a built index folder (read, never written)"
    )
    parser.add_argument("--questions", type=Path, default=DEFAULT_QUESTIONS)
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument(
        "--build", action="store_true", help="build the index from --corpus when it is missing"
    )
    parser.add_argument(
        "--keyword-scale",
        type=int,
        default=0,
        help="also time bm25s at this many chunks (1000000: ~3 GB RAM)",
    )
    parser.add_argument("--chunk-queries", type=int, default=100, help="extra queries taken from chunk texts")
    args = parser.parse_args(argv)
    args.load_at_start = os.getloadavg()
    return args


def _find_index(args) -> Path | None:
    if (args.index / "manifest.json").exists():
        return args.index
    if not args.build or not args.corpus.is_dir():
        print(
            f"skipped: no index at {args.index} (build it with `rag eval` on the bbc suite, or pass "
            f"--build with --corpus pointing at the BBC articles; {args.corpus} "
            f"{'exists' if args.corpus.is_dir() else 'is absent'})"
        )
        return None
    from rag.index.ingestor import Ingestor
    from rag.settings import Settings

    print(
        f"building an index of {args.corpus} in {args.index} (minutes: every chunk is embedded)",
        file=sys.stderr,
    )
    Ingestor(Settings(corpus_dir=args.corpus, index_dir=args.index, chroma_url=None)).run(show_progress=False)
    return args.index


def run_probe(index: Path, server_path: Path, args) -> dict:
    from rag.index.keyword import KeywordIndex

    chunks = read_chunks(index)
    manifest = json.loads((index / "manifest.json").read_text())
    keyword_dir = index / manifest["keyword_dir"]
    keywords = KeywordIndex.load(keyword_dir)
    questions = [json.loads(line) for line in args.questions.read_text().splitlines() if line.strip()]
    queries = [q["question"] for q in questions] + chunk_queries(chunks, args.chunk_queries)
    results = {"chunks": len(chunks["ids"]), "bm25s_sharing": bm25s_sharing(keyword_dir, queries)}
    with chroma_server(server_path) as (client, pid):
        results["features"] = feature_check(client)
        collection, results["insert"] = insert_chunks(client, chunks, server_path, pid)
        sparse = sparse_collection(client, chunks) if results["features"]["sparse_index"] == "ok" else None
        results["keyword"] = compare_keyword(collection, keywords, queries, len(questions), sparse)
        results["hybrid"] = compare_hybrid(collection, keywords, index, questions, chunks)
        results["server_after_queries"] = server_memory(pid)
    if args.keyword_scale:
        results["bm25s_at_scale"] = bm25s_at_scale(
            index / manifest["keyword_dir"], args.keyword_scale, queries
        )
    return results


# -- the data -------------------------------------------------------------------------------------


def read_chunks(index: Path) -> dict:
    """Every chunk of the index's Chroma collection, with its stored vector: nothing is embedded."""
    import chromadb
    from chromadb.config import Settings

    manifest = json.loads((index / "manifest.json").read_text())
    client = chromadb.PersistentClient(
        path=str(index / "chroma"), settings=Settings(anonymized_telemetry=False)
    )
    collection = client.get_collection(manifest.get("collection") or "articles", embedding_function=None)
    chunks = {"ids": [], "embeddings": [], "documents": [], "metadatas": []}
    while True:
        page = collection.get(
            limit=5000, offset=len(chunks["ids"]), include=["embeddings", "documents", "metadatas"]
        )
        for key in chunks:
            chunks[key].extend(page[key])
        if len(page["ids"]) < 5000:
            break
    # Title and text, as bm25s indexed them (rag.index.ingestor), so both keyword sides see the same words.
    chunks["texts"] = [
        f"{m.get('title', '')}\n{d}" for m, d in zip(chunks["metadatas"], chunks["documents"], strict=True)
    ]
    return chunks


def chunk_queries(chunks: dict, n: int) -> list[str]:
    """Queries that certainly have keyword matches: ten words from the middle of a random chunk."""
    rng = np.random.default_rng(13)
    picked = rng.choice(len(chunks["ids"]), size=min(n, len(chunks["ids"])), replace=False)
    queries = []
    for i in picked:
        words = chunks["documents"][i].split()
        middle = max(0, len(words) // 2 - 5)
        queries.append(" ".join(words[middle : middle + 10]))
    return queries


# -- the server -----------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def chroma_server(path: Path):
    import chromadb
    from chromadb.config import Settings

    port = _free_port()
    chroma = Path(sys.executable).parent / "chroma"
    log = open(path.parent / "chroma.log", "w")  # noqa: SIM115 - closed below, after the server
    env = {**os.environ, "ANONYMIZED_TELEMETRY": "False"}
    server = subprocess.Popen(
        [str(chroma), "run", "--path", str(path), "--host", "127.0.0.1", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    try:
        _wait_for(port, server)
        client = chromadb.HttpClient(
            host="127.0.0.1", port=port, settings=Settings(anonymized_telemetry=False)
        )
        yield client, server.pid
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


def _wait_for(port: int, server, seconds: float = 60) -> None:
    from urllib.request import urlopen

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"`chroma run` exited with {server.returncode}")
        try:
            urlopen(f"http://127.0.0.1:{port}/api/v2/heartbeat", timeout=2).close()
            return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError("`chroma run` did not answer within a minute")


def server_memory(pid: int) -> dict:
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = round(int(rest.split()[0]) / 1024, 1)
    return {"rss_mb": values.get("VmRSS"), "peak_rss_mb": values.get("VmHWM")}


def _du_mb(path: Path) -> float:
    return round(sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20, 1)


# -- what the server supports ---------------------------------------------------------------------


def _outcome(call) -> str:
    try:
        call()
        return "ok"
    except Exception as exc:
        return f"{type(exc).__module__}.{type(exc).__name__}: {exc}"


def _bm25_schema():
    from chromadb import Schema, SparseVectorIndexConfig

    schema = Schema()
    # Our own sparse vectors (the project's tokens), with Chroma applying BM25's IDF at query time.
    schema.create_index(config=SparseVectorIndexConfig(bm25=True), key="bm25")
    return schema


def feature_check(client) -> dict:
    """Each documented call once, on a tiny collection: "ok" or the server's exact error."""
    from chromadb import Knn, Rrf, Search
    from chromadb.base_types import SparseVector

    dense = client.get_or_create_collection("feature-check", embedding_function=None)
    dense.upsert(ids=["a", "b"], embeddings=[[1.0, 0.0], [0.0, 1.0]], documents=["alpha", "beta"])
    both = [Knn(query=[1.0, 0.0], return_rank=True), Knn(query=[0.0, 1.0], return_rank=True)]
    return {
        "chromadb": client.get_version() + " (server), " + __import__("chromadb").__version__ + " (client)",
        "sparse_index": _outcome(
            lambda: client.create_collection("feature-check-bm25", schema=_bm25_schema())
        ),
        "sparse_vector_in_metadata": _outcome(
            lambda: dense.upsert(
                ids=["c"],
                embeddings=[[0.5, 0.5]],
                metadatas=[{"bm25": SparseVector(indices=[1], values=[1.0])}],
            )
        ),
        "search_dense_knn": _outcome(lambda: dense.search(Search().rank(Knn(query=[1.0, 0.0])).limit(2))),
        "search_rrf": _outcome(lambda: dense.search(Search().rank(Rrf(both)).limit(2))),
        "where_document_contains": _outcome(lambda: dense.get(where_document={"$contains": "alp"})),
    }


# -- inserting ------------------------------------------------------------------------------------


def insert_chunks(client, chunks: dict, server_path: Path, pid: int):
    collection = client.get_or_create_collection(
        COLLECTION, embedding_function=None, configuration={"hnsw": {"space": "cosine"}}
    )
    started = time.perf_counter()
    for at in range(0, len(chunks["ids"]), BATCH):
        window = slice(at, at + BATCH)
        collection.add(
            ids=chunks["ids"][window],
            embeddings=chunks["embeddings"][window],
            documents=chunks["texts"][window],
            metadatas=chunks["metadatas"][window],
        )
    seconds = time.perf_counter() - started
    # The server indexes asynchronously: the first query waits for what is still unindexed.
    started_query = time.perf_counter()
    collection.query(query_embeddings=[chunks["embeddings"][0]], n_results=1, include=[])
    return collection, {
        "seconds": round(seconds, 2),
        "chunks_per_s": round(len(chunks["ids"]) / seconds, 1),
        "first_query_ms": round((time.perf_counter() - started_query) * 1000, 1),
        "server_disk_mb": _du_mb(server_path),
        "server": server_memory(pid),
    }


def sparse_collection(client, chunks: dict):
    """Only reached on a server that accepts the sparse index (none released for local use yet)."""
    from chromadb.base_types import SparseVector

    from rag.index.keyword import tokenize

    collection = client.create_collection(f"{COLLECTION}-bm25", schema=_bm25_schema())
    for at in range(0, len(chunks["ids"]), BATCH):
        window = slice(at, at + BATCH)
        vectors = [_sparse(tokens, SparseVector) for tokens in tokenize(chunks["texts"][window])]
        collection.add(
            ids=chunks["ids"][window],
            embeddings=chunks["embeddings"][window],
            metadatas=[{"bm25": v} for v in vectors],
        )
    return collection


def _sparse(tokens: list[str], vector_type, k1: float = 1.2, b: float = 0.75, avg_len: float = 60.0):
    """A document's BM25 term weights (the idf is the server's), keyed by a hash of the stem."""
    from chromadb.utils.embedding_functions.schemas.bm25_tokenizer import Murmur3AbsHasher

    hasher, counts = Murmur3AbsHasher(), Counter(tokens)
    weights = {
        hasher.hash(t): tf * (k1 + 1) / (tf + k1 * (1 - b + b * len(tokens) / avg_len))
        for t, tf in counts.items()
    }
    keys = sorted(weights)
    return vector_type(indices=keys, values=[weights[key] for key in keys])


# -- the keyword side -----------------------------------------------------------------------------


class ServerKeywords:
    """Keyword ranking from the server's full-text index, the one keyword search it answers today.
    `$contains` is a case-sensitive substring match with no scores, so each query word is looked
    up as written, lower-case and capitalised, and a chunk scores the IDF of the words it holds."""

    def __init__(self, collection, size: int):
        self.collection = collection
        self.size = size

    def search(self, query: str, k: int) -> list[str]:
        from bm25s.stopwords import STOPWORDS_EN

        words = {w for w in WORD.findall(query) if w.lower() not in STOPWORDS_EN and len(w) > 1}
        scores: Counter = Counter()
        for word in words:
            forms = sorted({word, word.lower(), word.capitalize()})
            where = {"$or": [{"$contains": f} for f in forms]} if len(forms) > 1 else {"$contains": forms[0]}
            ids = self.collection.get(where_document=where, include=[])["ids"]
            idf = math.log(1 + (self.size - len(ids) + 0.5) / (len(ids) + 0.5))
            for cid in ids:
                scores[cid] += idf
        return [cid for cid, _ in scores.most_common(k)]


def sparse_search(collection, query: str, k: int) -> list[str]:
    from chromadb import Knn, Search
    from chromadb.base_types import SparseVector

    from rag.index.keyword import tokenize

    counts = Counter(tokenize([query])[0])
    keys = sorted(_sparse(list(counts), SparseVector).indices)
    rank = Knn(query=SparseVector(indices=keys, values=[1.0] * len(keys)), key="bm25")
    return [row["id"] for row in collection.search(Search().rank(rank).limit(k)).rows()[0]]


def _timed(search, queries: list[str]) -> tuple[list[list[str]], dict]:
    rankings, times = [], []
    for query in queries:
        started = time.perf_counter()
        rankings.append(search(query))
        times.append((time.perf_counter() - started) * 1000)
    return rankings, {"p50_ms": round(percentile(times, 50), 2), "p95_ms": round(percentile(times, 95), 2)}


def _overlap(ours: list[list[str]], reference: list[list[str]]) -> float:
    """Mean share of the reference's top ids that the other ranking also has in its top."""
    shares = [len(set(a) & set(b)) / len(b) for a, b in zip(ours, reference, strict=True) if b]
    return round(float(np.mean(shares)), 3) if shares else float("nan")


def compare_keyword(collection, keywords, queries: list[str], n_questions: int, sparse) -> dict:
    bm25s_top, bm25s_time = _timed(lambda q: [cid for cid, _ in keywords.search(q, TOP)], queries)
    server = ServerKeywords(collection, len(keywords))
    fts_top, fts_time = _timed(lambda q: server.search(q, TOP), queries)
    result = {
        "queries": {"questions": n_questions, "from_chunks": len(queries) - n_questions},
        "bm25s": bm25s_time,
        "server_fulltext": {
            **fts_time,
            "top10_overlap_with_bm25s": {
                "questions": _overlap(fts_top[:n_questions], bm25s_top[:n_questions]),
                "from_chunks": _overlap(fts_top[n_questions:], bm25s_top[n_questions:]),
            },
        },
    }
    if sparse is not None:
        sparse_top, sparse_time = _timed(lambda q: sparse_search(sparse, q, TOP), queries)
        result["server_sparse_bm25"] = {
            **sparse_time,
            "top10_overlap_with_bm25s": _overlap(sparse_top, bm25s_top),
        }
    return result


# -- hybrid ---------------------------------------------------------------------------------------


def _fuse(*rankings: list[str], k: int = 5) -> list[str]:
    fused: Counter = Counter()
    for ranking in rankings:
        for rank, cid in enumerate(ranking, 1):
            fused[cid] += 1.0 / (RRF_K + rank)
    return [cid for cid, _ in fused.most_common(k)]


def compare_hybrid(collection, keywords, index: Path, questions: list[dict], chunks: dict) -> dict:
    """recall@5 of the gold article: the project's Retriever on the copied index, and the same
    fusion with the dense side on the server (what RAG_CHROMA_URL serves) and either keyword side."""
    from rag.answer.retrieve import Retriever
    from rag.index.embeddings import load_embedder
    from rag.settings import Settings

    gold = [q for q in questions if q.get("gold_sources") and not q.get("abstain")]
    embedder = load_embedder(None)
    vectors = embedder.embed([q["question"] for q in gold])
    source = {cid: m["source"] for cid, m in zip(chunks["ids"], chunks["metadatas"], strict=True)}
    retriever = Retriever(Settings(index_dir=index, chroma_url=None), embedder)
    server = ServerKeywords(collection, len(keywords))

    def dense(i):
        return collection.query(query_embeddings=[vectors[i]], n_results=CANDIDATES, include=[])["ids"][0]

    def bm25s(i):
        return [cid for cid, _ in keywords.search(gold[i]["question"], CANDIDATES)]

    ways = {
        "project_hybrid_local": lambda i: [
            p.chunk_id
            for p in retriever.search(gold[i]["question"], 5, mode="hybrid", query_vector=vectors[i]).passages
        ],
        "server_dense_only": lambda i: dense(i)[:5],
        "server_dense+bm25s": lambda i: _fuse(dense(i), bm25s(i)),
        "server_dense+server_fulltext": lambda i: _fuse(
            dense(i), server.search(gold[i]["question"], CANDIDATES)
        ),
    }
    result = {"questions": len(gold)}
    for name, way in ways.items():
        top, timing = _timed(way, list(range(len(gold))))
        ranks = [_gold_rank(ids, q["gold_sources"], source) for ids, q in zip(top, gold, strict=True)]
        result[name] = {
            "recall@1": round(sum(r == 1 for r in ranks) / len(gold), 3),
            "recall@5": round(sum(r is not None for r in ranks) / len(gold), 3),
            "mrr@5": round(sum(1 / r for r in ranks if r) / len(gold), 3),
            **timing,
        }
    return result


def _gold_rank(ids: list[str], gold: list[str], source: dict) -> int | None:
    return next((rank for rank, cid in enumerate(ids, 1) if source[cid] in gold), None)


# -- sharing the bm25s files ----------------------------------------------------------------------


def bm25s_sharing(folder: Path, queries: list[str]) -> dict:
    """What each app process pays to hold the keyword index, loaded whole or memory-mapped."""
    return {
        "disk_mb": _du_mb(folder),
        **{way: _load_and_query(folder, way, queries) for way in ("in_ram", "mmap")},
    }


def bm25s_at_scale(folder: Path, size: int, queries: list[str]) -> dict:
    """bm25s over `size` chunks made from the index's own: each copy renames a third of its words,
    so the vocabulary grows with the corpus as a news archive's does (an assumption, not data)."""
    from rag.index.keyword import KeywordIndex

    tokens = [t for t, _ in KeywordIndex.saved_entries(folder).values()]
    corpus = [
        [f"{w}{copy}" if copy and hash(w) % 3 == 0 else w for w in tokens[i % len(tokens)]]
        for copy, i in ((i // len(tokens), i) for i in range(size))
    ]
    started = time.perf_counter()
    built = KeywordIndex.build([f"c{i}" for i in range(size)], corpus, {"published_int": [0] * size})
    build_s = time.perf_counter() - started
    del corpus
    saved = folder.parent / f"keyword-scale-{size}"
    built.save(saved)
    del built
    return {"chunks": size, "build_s": round(build_s, 1), **bm25s_sharing(saved, queries)}


def _load_and_query(folder: Path, way: str, queries: list[str]) -> dict:
    """In a fresh interpreter, so that its RSS is the index's alone."""
    code = (
        "import json, sys, time, bm25s\n"
        "from pathlib import Path\n"
        "from rag.index.keyword import KeywordIndex\n"
        "from bench.common import percentile\n"
        "def rss():\n"
        "    return int(next(l for l in Path('/proc/self/status').read_text().splitlines() if l.startswith('VmRSS')).split()[1]) / 1024\n"
        "folder, queries = Path(sys.argv[1]), json.loads(sys.stdin.read())\n"
        "before = rss(); t = time.perf_counter()\n"
        "saved = json.loads((folder / 'chunks.json').read_text())\n"
        "index = KeywordIndex(bm25s.BM25.load(str(folder), mmap=sys.argv[2] == 'mmap', show_progress=False), saved['ids'], saved['fields'])\n"
        "load_s, loaded = time.perf_counter() - t, rss() - before\n"
        "times = []\n"
        "for q in queries:\n"
        "    t = time.perf_counter(); index.search(q, 20); times.append((time.perf_counter() - t) * 1000)\n"
        "print(json.dumps({'load_s': round(load_s, 2), 'rss_mb_after_load': round(loaded), 'rss_mb_after_queries': round(rss() - before),\n"
        "                  'p50_ms': round(percentile(times, 50), 2), 'p95_ms': round(percentile(times, 95), 2)}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(folder), way],
        input=json.dumps(queries),
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    return json.loads(out.stdout)


if __name__ == "__main__":
    raise SystemExit(main())
