"""Sentence embeddings through ONNX Runtime, for questions and small batches without torch.

A fresh `rag ask` spent 5 of its 7.5 s importing sentence-transformers and torch just to embed
one question. This encoder needs only onnxruntime and tokenizers: the model is exported to ONNX
once, from its local weights (rag.index.onnx_export, which does import torch), and cached under
`.models/onnx/` in the project. It covers the common sentence-transformers layout (a BERT encoder,
then mean pooling); any other model is left to sentence-transformers.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from pathlib import Path

import numpy as np

from rag.index import onnx_export  # light: it imports torch and onnx only when it exports

log = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CACHE_DIR = PROJECT_ROOT / ".models" / "onnx"
EXPORT_FORMAT = 2  # part of the cache key: raise it when rag.index.onnx_export writes a different graph
MEAN_POOLING_ONLY = {
    "pooling_mode_mean_tokens": True,
    "pooling_mode_cls_token": False,
    "pooling_mode_max_tokens": False,
    "pooling_mode_mean_sqrt_len_tokens": False,
}
SUB_BATCH = 16  # texts of similar length run together, so little compute goes to padding
# One thread: on these two shared cores a second one made answers slower at p95 whenever other
# work was running (bench/findings.md, "The query encoder on ONNX Runtime").
THREADS = 1


def supports(model_path: Path) -> bool:
    """True when the folder is a BERT encoder followed by mean pooling (and optionally Normalize)."""
    try:
        config = json.loads((model_path / "config.json").read_text())
        modules = json.loads((model_path / "modules.json").read_text())
        kinds = [m["type"].rsplit(".", 1)[-1] for m in modules]
        pooling = json.loads((model_path / modules[1]["path"] / "config.json").read_text())
    except (OSError, ValueError, KeyError, IndexError, TypeError):
        return False
    return (
        config.get("model_type") == "bert"
        and kinds in (["Transformer", "Pooling"], ["Transformer", "Pooling", "Normalize"])
        and all(pooling.get(key, False) == wanted for key, wanted in MEAN_POOLING_ONLY.items())
        and (model_path / "tokenizer.json").exists()
    )


class OnnxEncoder:
    """Normalised mean-pooled embeddings from the cached ONNX export, made on first use."""

    def __init__(self, model_path: Path, cache_dir: Path = DEFAULT_CACHE_DIR, threads: int = THREADS):
        from tokenizers import Tokenizer

        self.dimension = json.loads((model_path / "config.json").read_text())["hidden_size"]
        self.tokenizer = Tokenizer.from_file(str(model_path / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(_max_tokens(model_path))
        self.threads = threads
        self.export_dir = cache_dir / f"{_model_name(model_path)}-{_fingerprint(model_path)}"
        self.session = self._open_checked() or self._export_and_open(model_path)

    def embed(self, texts: list[str]) -> np.ndarray:
        token_ids = [encoding.ids for encoding in self.tokenizer.encode_batch(texts)]
        vectors = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for rows, (batch,) in self._run(token_ids, ["embedding"]):
            vectors[rows] = batch
        return vectors

    def token_states(self, texts: list[str]) -> list[tuple[np.ndarray, np.ndarray]]:
        """Each text's last hidden states (tokens x dimension) and each token's character range in
        the text ((0, 0) for the special tokens)."""
        encodings = self.tokenizer.encode_batch(texts)
        states: list = [None] * len(texts)
        for rows, (batch,) in self._run([e.ids for e in encodings], ["token_states"]):
            for at, row in enumerate(rows):
                states[row] = batch[at, : len(encodings[row].ids)]
        return [(states[i], np.asarray(encodings[i].offsets, dtype=np.int64)) for i in range(len(texts))]

    def _run(self, token_ids: list[list[int]], outputs: list[str]):
        """(rows, outputs) per sub-batch of texts of similar length."""
        by_length = sorted(range(len(token_ids)), key=lambda i: len(token_ids[i]))
        for start in range(0, len(by_length), SUB_BATCH):
            rows = by_length[start : start + SUB_BATCH]
            input_ids, attention_mask = _padded([token_ids[i] for i in rows])
            yield rows, self.session.run(outputs, {"input_ids": input_ids, "attention_mask": attention_mask})

    def _export_and_open(self, model_path: Path):
        log.warning("exporting the embedding model to ONNX, once (into %s)", self.export_dir)
        onnx_export.export(model_path, self.export_dir)
        session = self._open_checked()
        if session is None:
            raise RuntimeError(f"the ONNX export in {self.export_dir} does not give the model's vectors")
        return session

    def _open_checked(self):
        """The session, or None when the export is missing, unreadable or gives another vector for
        the probe text stored in it (a damaged file: it is deleted, to be exported again)."""
        import onnxruntime

        model_file = self.export_dir / onnx_export.MODEL_FILE
        if not model_file.exists():
            return None
        try:
            session = onnxruntime.InferenceSession(
                str(model_file), _session_options(self.threads), providers=["CPUExecutionProvider"]
            )
            if _probe_matches(session, self.tokenizer):
                return session
            log.warning("the cached ONNX export in %s gives other vectors: exporting it again", self.export_dir)
        except Exception as exc:  # onnxruntime's errors share no base class but Exception
            log.warning("the cached ONNX export in %s is damaged (%s): exporting it again", self.export_dir, exc)
        shutil.rmtree(self.export_dir, ignore_errors=True)
        return None


def _session_options(threads: int):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    # The export already holds the extended fusions (bias + GELU, fused matmuls): optimising again
    # at every start only costs time. The transformer optimizer's fused Attention was not faster.
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_BASIC
    # Spinning threads take a core from other work on these two shared cores for nothing.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3  # warnings about unused initialisers are noise here
    return options


def _probe_matches(session, tokenizer) -> bool:
    stored = session.get_modelmeta().custom_metadata_map[onnx_export.PROBE_KEY]
    expected = np.array(json.loads(stored), dtype=np.float32)
    input_ids, attention_mask = _padded([tokenizer.encode(onnx_export.PROBE_TEXT).ids])
    got = session.run(["embedding"], {"input_ids": input_ids, "attention_mask": attention_mask})[0][0]
    return got.shape == expected.shape and float(got @ expected) >= 0.99999


def _model_name(model_path: Path) -> str:
    return model_path.name if model_path.name != "model" else model_path.parent.name


def _fingerprint(model_path: Path) -> str:
    """Changes with the model's files (path, sizes, modification times), without reading them, and
    with onnxruntime's version, whose own operators the optimised export holds."""
    import onnxruntime

    files = sorted(p for p in model_path.iterdir() if p.is_file())
    facts = [str(model_path.resolve()), EXPORT_FORMAT, onnxruntime.__version__]
    facts += [(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in files]
    return hashlib.sha1(json.dumps(facts).encode()).hexdigest()[:12]


def _max_tokens(model_path: Path) -> int:
    """sentence-transformers truncates at max_seq_length; so must this, or long texts differ."""
    try:
        settings = json.loads((model_path / "sentence_bert_config.json").read_text())
        return int(settings["max_seq_length"])
    except (OSError, ValueError, KeyError):
        return int(json.loads((model_path / "config.json").read_text())["max_position_embeddings"])


def _padded(token_ids: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    length = max(len(ids) for ids in token_ids)
    input_ids = np.zeros((len(token_ids), length), dtype=np.int64)
    attention_mask = np.zeros((len(token_ids), length), dtype=np.int64)
    for row, tokens in enumerate(token_ids):
        input_ids[row, : len(tokens)] = tokens
        attention_mask[row, : len(tokens)] = 1
    return input_ids, attention_mask
