"""The query encoder on ONNX Runtime against the numpy forward pass it replaced and against
sentence-transformers: `python -m bench.onnx_encoder` (about 5 minutes on 2 busy cores).

Real text: sentences, ~600-character chunks with their title, and whole articles (past the
model's 256 tokens, so truncation is compared too) from the BBC corpus in ../shared/corpora/bbc.
Every step runs in a fresh process; within one, the encoders take turns (A B B A) so that a change
in the machine's load weighs on all alike. The numpy encoder is read from the last commit that
had it when rag/numpy_bert.py is gone.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import CACHE, ROOT, in_fresh_process, load_average, log, memory_mb, summary

BBC = ROOT.parent / "shared" / "corpora" / "bbc"
NUMPY_BERT_COMMIT = "6c6ac48"  # the last commit with rag/numpy_bert.py
EXPORT_DIR = CACHE / "onnx"
QUESTION_FILES = ("evals/questions.jsonl", "evals/suites/bbc/questions.jsonl")


def bbc_articles(count: int, seed: int = 13) -> list[tuple[str, str]]:
    files = sorted(BBC.glob("*/*.txt"))
    picked = random.Random(seed).sample(files, count)
    return [tuple(f.read_text(errors="replace").strip().split("\n", 1)) for f in picked]


def bbc_sentences(count: int) -> list[str]:
    from rag.ingest.chunking import split_sentences

    found = [body[s.start : s.end] for _, body in bbc_articles(200) for s in split_sentences(body)]
    found = [s for s in found if len(s) > 15]
    random.Random(5).shuffle(found)
    return found[:count]


def bbc_chunks(count: int) -> list[str]:
    from rag.ingest.chunking import chunk_text

    chunks = [f"{title}\n{c.text}" for title, body in bbc_articles(400, seed=21) for c in chunk_text(body.strip(), 600)]
    return chunks[:count]


def mixed_texts(count: int) -> list[str]:
    """Three fifths sentences, a quarter chunks, the rest whole articles (most over 256 tokens)."""
    articles = [f"{title}\n{body}" for title, body in bbc_articles(count // 6)]
    return bbc_sentences(count * 3 // 5) + bbc_chunks(count // 4) + articles[: count - count * 3 // 5 - count // 4]


def questions(count: int) -> list[str]:
    found = [json.loads(line)["question"] for name in QUESTION_FILES for line in (ROOT / name).open()]
    random.Random(3).shuffle(found)
    return found[:count]


def numpy_bert():
    try:
        return importlib.import_module("rag.numpy_bert")
    except ModuleNotFoundError:
        source = subprocess.run(["git", "show", f"{NUMPY_BERT_COMMIT}:rag/numpy_bert.py"], cwd=ROOT,
                                capture_output=True, text=True, check=True).stdout
        path = CACHE / "numpy_bert_old.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source)
        spec = importlib.util.spec_from_file_location("numpy_bert_old", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module


def encoder(kind: str):
    """"numpy", "ort" (the project's settings) or "ort-t2" (two intra-op threads)."""
    from rag.index.embeddings import default_model_path
    from rag.index.onnx_encoder import OnnxEncoder

    if kind == "numpy":
        return numpy_bert().NumpyBertEncoder(default_model_path())
    return OnnxEncoder(default_model_path(), EXPORT_DIR, threads=2 if kind == "ort-t2" else 1)


# --- steps, each run in a fresh process -------------------------------------------------------


def vectors(count: int) -> dict:
    """Cosine of each encoder's vectors to sentence-transformers' on the same real texts."""
    from sentence_transformers import SentenceTransformer

    from rag.index.embeddings import default_model_path

    texts = mixed_texts(count)
    reference = SentenceTransformer(str(default_model_path()), device="cpu")
    expected = reference.encode(texts, batch_size=64, normalize_embeddings=True)
    long = sum(len(ids) > reference.max_seq_length for ids in reference.tokenizer(texts)["input_ids"])
    found = {"texts": len(texts), "over_max_tokens": long, "max_tokens": reference.max_seq_length}
    for kind in ("numpy", "ort"):
        cosine = (encoder(kind).embed(texts) * expected).sum(1)
        found[kind] = {"min_cosine": float(cosine.min()), "mean_cosine": float(cosine.mean())}
    return found


def export_cost() -> dict:
    """The one-time export into an empty cache (torch imported, model loaded, traced, checked)."""
    from rag.index.embeddings import default_model_path
    from rag.index.onnx_encoder import OnnxEncoder

    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        made = OnnxEncoder(default_model_path(), Path(folder))
        seconds = time.perf_counter() - started
        EXPORT_DIR.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(EXPORT_DIR / made.export_dir.name, ignore_errors=True)
        shutil.copytree(made.export_dir, EXPORT_DIR / made.export_dir.name)
        size = sum(f.stat().st_size for f in made.export_dir.iterdir())
        return {"seconds": seconds, "mb": size / 2**20, **memory_mb()}


def cold_start(kind: str) -> dict:
    """What a question pays in a fresh process: imports, loading, the first embedding."""
    started = time.perf_counter()
    if kind == "numpy":
        numpy_bert()
        import safetensors.numpy  # noqa: F401
        import threadpoolctl  # noqa: F401
    else:
        import onnxruntime  # noqa: F401

        import rag.index.onnx_encoder  # noqa: F401
    import tokenizers  # noqa: F401

    from rag.index.embeddings import default_model_path  # noqa: F401

    imported = time.perf_counter()
    model = encoder(kind)
    loaded = time.perf_counter()
    rss_after_load = memory_mb()["rss_mb"]
    model.embed(["What did EXIM approve under Project Vault?"])
    done = time.perf_counter()
    return {"import_s": imported - started, "load_s": loaded - imported, "first_embed_s": done - loaded,
            "in_process_s": done - started, "rss_after_load_mb": rss_after_load}


def warm(question_count: int, batch_rounds: int, kinds: list[str]) -> dict:
    """One question at a time, and batches of 40 sentences (what the answerer embeds per question)."""
    models = {kind: encoder(kind) for kind in kinds}
    asked, sentences = questions(question_count), bbc_sentences(40 * batch_rounds)
    for model in models.values():
        model.embed(sentences[:40])  # first-run allocations are the cold figure's, not the warm one's
    timings = {kind: {"question_ms": [], "batch40_ms": []} for kind in kinds}
    for at, question in enumerate(asked):
        _take_turns(models, at, timings, "question_ms", [question])
    for at in range(batch_rounds):
        _take_turns(models, at, timings, "batch40_ms", sentences[40 * at : 40 * (at + 1)])
    return {kind: {name: summary(samples) for name, samples in found.items()} for kind, found in timings.items()}


def ingest(batches: int, kinds: list[str]) -> dict:
    """Chunks/s over batches of 64 chunks (~600 characters and their title): torch against ONNX."""
    from sentence_transformers import SentenceTransformer

    from rag.index.embeddings import default_model_path

    chunks = bbc_chunks(64 * batches)
    torch_model = SentenceTransformer(str(default_model_path()), device="cpu")
    models = {"torch": _Encoding(torch_model)} | {kind: encoder(kind) for kind in kinds}
    for model in models.values():
        model.embed(chunks[:64])
    timings = {kind: {"batch64_ms": []} for kind in models}
    for at in range(batches):
        _take_turns(models, at, timings, "batch64_ms", chunks[64 * at : 64 * (at + 1)])
    found = {kind: summary(t["batch64_ms"]) for kind, t in timings.items()}
    for figures in found.values():
        figures["chunks_per_s"] = 64 * 1000 / figures["mean"]
    return {**found, **memory_mb()}


class _Encoding:
    def __init__(self, model):
        self.model = model

    def embed(self, texts):
        return self.model.encode(texts, batch_size=64, normalize_embeddings=True, show_progress_bar=False)


def _take_turns(models: dict, at: int, timings: dict, key: str, texts: list[str]) -> None:
    order = list(models) if at % 2 == 0 else list(models)[::-1]
    for kind in order:
        started = time.perf_counter()
        models[kind].embed(texts)
        timings[kind][key].append((time.perf_counter() - started) * 1000)


# --- the run ----------------------------------------------------------------------------------


def cold(runs: int) -> dict:
    """Fresh processes in A B B A order; wall time includes starting the interpreter."""
    found = {"numpy": [], "ort": []}
    for at in range(runs):
        for kind in ("numpy", "ort") if at % 2 == 0 else ("ort", "numpy"):
            started = time.perf_counter()
            result = in_fresh_process("bench.onnx_encoder:cold_start", kind=kind)
            found[kind].append({**result, "wall_s": time.perf_counter() - started})
    return {kind: {key: summary([r[key] for r in rows]) for key in rows[0]} for kind, rows in found.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--texts", type=int, default=500)
    parser.add_argument("--questions", type=int, default=200)
    parser.add_argument("--batches", type=int, default=30, help="rounds of 40 sentences, and of 64 chunks")
    parser.add_argument("--cold-runs", type=int, default=6)
    args = parser.parse_args(argv)
    results = {"load_average_start": load_average()}
    steps = {
        "export": lambda: in_fresh_process("bench.onnx_encoder:export_cost"),
        "vectors": lambda: in_fresh_process("bench.onnx_encoder:vectors", count=args.texts),
        "cold": lambda: cold(args.cold_runs),
        "warm": lambda: in_fresh_process("bench.onnx_encoder:warm", question_count=args.questions,
                                         batch_rounds=args.batches, kinds=["numpy", "ort", "ort-t2"]),
        "ingest": lambda: in_fresh_process("bench.onnx_encoder:ingest", batches=args.batches, kinds=["ort", "ort-t2"]),
    }
    for name, step in steps.items():
        log(f"{name} (load average {load_average()})")
        results[name] = {**step(), "load_average_after": load_average()}
    out = CACHE / "onnx_encoder.json"
    out.write_text(json.dumps(results, indent=1))
    print(json.dumps(results, indent=1))
    log(f"wrote {out}")


if __name__ == "__main__":
    main(sys.argv[1:])
