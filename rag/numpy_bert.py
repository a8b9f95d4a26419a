"""A BERT sentence encoder in numpy, for embedding questions and a few sentences without torch.

A fresh `rag ask` spent 5 of its 7.5 s importing sentence-transformers (torch, transformers,
scikit-learn, scipy, pandas) just to embed one question. This forward pass needs only tokenizers
and safetensors, and its vectors match sentence-transformers' to about 1e-7. It covers the common
sentence-transformers layout (a BERT encoder, then mean pooling); any other model is left to
sentence-transformers.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

MEAN_POOLING_ONLY = {
    "pooling_mode_mean_tokens": True,
    "pooling_mode_cls_token": False,
    "pooling_mode_max_tokens": False,
    "pooling_mode_mean_sqrt_len_tokens": False,
}
SUB_BATCH = 16  # texts of similar length run together, so little compute goes to padding


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
        and config.get("hidden_act") == "gelu"
        and config.get("position_embedding_type", "absolute") == "absolute"
        and kinds in (["Transformer", "Pooling"], ["Transformer", "Pooling", "Normalize"])
        and all(pooling.get(key, False) == wanted for key, wanted in MEAN_POOLING_ONLY.items())
        and (model_path / "model.safetensors").exists()
        and (model_path / "tokenizer.json").exists()
    )


class NumpyBertEncoder:
    """Normalised mean-pooled BERT embeddings, computed with numpy on one BLAS thread."""

    def __init__(self, model_path: Path):
        from safetensors.numpy import load_file
        from threadpoolctl import ThreadpoolController
        from tokenizers import Tokenizer

        config = json.loads((model_path / "config.json").read_text())
        self.heads = config["num_attention_heads"]
        self.layers = config["num_hidden_layers"]
        self.eps = config["layer_norm_eps"]
        self.dimension = config["hidden_size"]
        self.weights = _linear_layers_transposed(load_file(str(model_path / "model.safetensors")))
        self.tokenizer = Tokenizer.from_file(str(model_path / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(_max_tokens(model_path, config))
        # OpenBLAS's worker threads busy-wait: with another process busy on the two cores, a
        # second thread made 35 sentences 1.5x slower. One thread is slower only on an idle machine.
        self._blas = ThreadpoolController()

    def embed(self, texts: list[str]) -> np.ndarray:
        return np.vstack([_mean_normalised(states) for states, _ in self.token_states(texts)])

    def token_states(self, texts: list[str]) -> list[tuple[np.ndarray, np.ndarray]]:
        """Each text's last hidden states (tokens x dimension) and each token's character range in
        the text ((0, 0) for the special tokens)."""
        encodings = self.tokenizer.encode_batch(texts)
        by_length = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids))
        states: list = [None] * len(texts)
        with self._blas.limit(limits=1, user_api="blas"):
            for start in range(0, len(by_length), SUB_BATCH):
                rows = by_length[start : start + SUB_BATCH]
                for row, hidden in zip(rows, self._encode([encodings[i].ids for i in rows]), strict=True):
                    states[row] = hidden
        return [(states[i], np.asarray(encodings[i].offsets, dtype=np.int64)) for i in range(len(texts))]

    def _encode(self, token_ids: list[list[int]]) -> list[np.ndarray]:
        ids, mask = _padded(token_ids)
        x = self._embeddings(ids)
        # Padding positions get -inf-like scores, so attention never looks at them.
        blocked = (1.0 - mask)[:, None, None, :] * -1e9
        for layer in range(self.layers):
            x = self._layer(x, blocked, f"encoder.layer.{layer}.")
        return [x[row, : len(tokens)] for row, tokens in enumerate(token_ids)]

    def _embeddings(self, ids: np.ndarray) -> np.ndarray:
        w = self.weights
        x = (
            w["embeddings.word_embeddings.weight"][ids]
            + w["embeddings.position_embeddings.weight"][: ids.shape[1]]
            + w["embeddings.token_type_embeddings.weight"][0]
        )
        return self._layer_norm(x, "embeddings.LayerNorm")

    def _layer(self, x: np.ndarray, blocked: np.ndarray, prefix: str) -> np.ndarray:
        attended = self._attention(x, blocked, prefix + "attention.")
        x = self._layer_norm(x + attended, prefix + "attention.output.LayerNorm")
        hidden = _gelu(self._linear(x, prefix + "intermediate.dense"))
        return self._layer_norm(x + self._linear(hidden, prefix + "output.dense"), prefix + "output.LayerNorm")

    def _attention(self, x: np.ndarray, blocked: np.ndarray, prefix: str) -> np.ndarray:
        batch, length, width = x.shape
        size = width // self.heads

        def heads(name: str) -> np.ndarray:
            projected = self._linear(x, f"{prefix}self.{name}")
            return projected.reshape(batch, length, self.heads, size).transpose(0, 2, 1, 3)

        query, key, value = heads("query"), heads("key"), heads("value")
        scores = query @ key.transpose(0, 1, 3, 2) / math.sqrt(size) + blocked
        weights = np.exp(scores - scores.max(-1, keepdims=True))
        weights /= weights.sum(-1, keepdims=True)
        context = (weights @ value).transpose(0, 2, 1, 3).reshape(batch, length, width)
        return self._linear(context, prefix + "output.dense")

    def _linear(self, x: np.ndarray, prefix: str) -> np.ndarray:
        weight, bias = self.weights[prefix + ".weight"], self.weights[prefix + ".bias"]
        # As one 2-D product: numpy runs a 3-D one as a loop of small products, 2x slower.
        flat = x.reshape(-1, x.shape[-1]) @ weight
        flat += bias
        return flat.reshape(*x.shape[:-1], weight.shape[1])

    def _layer_norm(self, x: np.ndarray, prefix: str) -> np.ndarray:
        mean = x.mean(-1, keepdims=True)
        variance = ((x - mean) ** 2).mean(-1, keepdims=True)
        normalised = (x - mean) / np.sqrt(variance + self.eps)
        return normalised * self.weights[prefix + ".weight"] + self.weights[prefix + ".bias"]


def _linear_layers_transposed(weights: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Weights by name without a "bert." prefix, with linear layers stored (in, out) for x @ w."""
    ready = {}
    for name, value in weights.items():
        name = name.removeprefix("bert.")
        is_linear = name.endswith(".weight") and value.ndim == 2 and "embeddings" not in name
        ready[name] = np.ascontiguousarray(value.T) if is_linear else value
    return ready


def _max_tokens(model_path: Path, config: dict) -> int:
    """sentence-transformers truncates at max_seq_length; so must this, or long texts differ."""
    try:
        settings = json.loads((model_path / "sentence_bert_config.json").read_text())
        return int(settings["max_seq_length"])
    except (OSError, ValueError, KeyError):
        return int(config["max_position_embeddings"])


def _padded(token_ids: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    length = max(len(ids) for ids in token_ids)
    ids = np.zeros((len(token_ids), length), dtype=np.int64)
    mask = np.zeros((len(token_ids), length), dtype=np.float32)
    for row, tokens in enumerate(token_ids):
        ids[row, : len(tokens)] = tokens
        mask[row, : len(tokens)] = 1.0
    return ids, mask


def _mean_normalised(states: np.ndarray) -> np.ndarray:
    pooled = states.mean(0)
    return pooled / np.linalg.norm(pooled)


def _gelu(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))


def _erf(x: np.ndarray) -> np.ndarray:
    """Abramowitz & Stegun 7.1.26: error below 1.5e-7, under float32's resolution here (numpy has
    no erf, and scipy costs a second to import)."""
    sign = np.sign(x)
    x = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * x)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    return sign * (1.0 - poly * np.exp(-x * x))
