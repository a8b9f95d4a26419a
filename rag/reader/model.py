"""The reader at answer time: the chance that each sentence answers the question, read together.

`rag train-reader` writes the model (`reader.onnx`, int8) and the record of how it was made
(`reader.json`) into `.models/reader/`; running it needs onnxruntime and tokenizers only, never
torch. A question's candidate sentences are read in one batch.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np

READER_DIR = Path(__file__).resolve().parents[2] / ".models" / "reader"
READER_FILE = "reader.onnx"
RECORD_FILE = "reader.json"
MAX_TOKENS = 96  # question and sentence together; longer sentences are cut at the end
THREADS = 1  # as the query encoder: a second thread made answers slower on two shared cores


class Reader:
    """Scores (question, sentence) pairs: a logit, higher when the sentence answers."""

    def __init__(self, folder: Path = READER_DIR, threads: int = THREADS):
        import onnxruntime
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(MAX_TOKENS, strategy="only_second")
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.session = onnxruntime.InferenceSession(
            str(folder / READER_FILE), options, providers=["CPUExecutionProvider"]
        )
        self._lock = threading.Lock()
        # A reader trained with context must be given sentences in context (`reading_text`).
        self.context = bool(record(folder).get("recipe", {}).get("context", False))

    def logits(self, question: str, sentences: list[str]) -> np.ndarray:
        if not sentences:
            return np.zeros(0, dtype=np.float32)
        encodings = self.tokenizer.encode_batch([(question, s) for s in sentences])
        width = max(len(e.ids) for e in encodings)
        feeds = {name: np.zeros((len(encodings), width), dtype=np.int64)
                 for name in ("input_ids", "attention_mask", "token_type_ids")}
        for row, encoding in enumerate(encodings):
            n = len(encoding.ids)
            feeds["input_ids"][row, :n] = encoding.ids
            feeds["attention_mask"][row, :n] = 1
            feeds["token_type_ids"][row, :n] = encoding.type_ids
        with self._lock:
            (logits,) = self.session.run(["logit"], feeds)
        return logits.astype(np.float32)


def reading_text(sentence: str, before: str, title: str) -> str:
    """A sentence as a reader trained with context reads it: the sentence first, so that a long
    context is what truncation cuts, then its article's title and the sentence before it."""
    return f"{sentence} ({title}: {before})"


def record(folder: Path = READER_DIR) -> dict:
    path = folder / RECORD_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
