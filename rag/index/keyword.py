"""The keyword (BM25) index, persisted beside the vector store.

bm25s scores with sparse matrices, so a query stays fast at 100k chunks where rank_bm25 would
score every document in Python. Stopwords are removed: without that, "what" outranked "forge".
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np

TOKENS_FILE = "tokens.json"


@lru_cache(maxsize=1)
def _stemmer():
    import Stemmer

    return Stemmer.Stemmer("english")


def stem(word: str) -> str:
    """A lower-case word as the index stores it."""
    return _stemmer().stemWord(word)


def tokenize(texts: list[str]) -> list[list[str]]:
    import bm25s

    return bm25s.tokenize(texts, stopwords="en", stemmer=_stemmer(), return_ids=False, show_progress=False)


class KeywordIndex:
    """A searchable BM25 index. One built by an ingest also holds each chunk's tokens, which are
    saved beside it so the next ingest tokenizes only new chunks; a loaded one (for searching)
    leaves them on disk."""

    def __init__(self, retriever, ids: list[str], filter_fields: dict[str, list], tokens: list[list[str]] | None = None):
        self._retriever = retriever
        self.ids = ids
        self.tokens = tokens
        self._filter_fields = {name: np.asarray(values) for name, values in filter_fields.items()}

    @classmethod
    def build(cls, ids: list[str], tokens: list[list[str]], filter_fields: dict[str, list]) -> KeywordIndex:
        import bm25s

        retriever = bm25s.BM25()
        if ids:
            retriever.index(tokens, show_progress=False)
        return cls(retriever, ids, filter_fields, tokens)

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        if self.ids:
            self._retriever.save(str(folder), show_progress=False)
        fields = {name: values.tolist() for name, values in self._filter_fields.items()}
        (folder / "chunks.json").write_text(json.dumps({"ids": self.ids, "fields": fields}))
        # Tokens are runs of word characters, so a space joins them unambiguously, in less space.
        (folder / TOKENS_FILE).write_text(json.dumps([" ".join(tokens) for tokens in self.tokens]))

    @classmethod
    def load(cls, folder: Path) -> KeywordIndex:
        import bm25s

        saved = json.loads((folder / "chunks.json").read_text())
        retriever = bm25s.BM25.load(str(folder), mmap=False, show_progress=False) if saved["ids"] else None
        return cls(retriever, saved["ids"], saved["fields"])

    @staticmethod
    def saved_entries(folder: Path) -> dict[str, tuple[list[str], dict]]:
        """chunk id -> (tokens, filter field values) of a saved index, to carry into a rebuild."""
        saved = json.loads((folder / "chunks.json").read_text())
        tokens_file = folder / TOKENS_FILE
        # Indexes written before the tokens were saved kept the chunk texts instead.
        if tokens_file.exists():
            # One string object per distinct token: 100k chunks hold millions of tokens but only
            # tens of thousands of words, and separate copies doubled the rebuild's peak memory.
            shared: dict[str, str] = {}
            tokens = [[shared.setdefault(t, t) for t in joined.split()] for joined in json.loads(tokens_file.read_text())]
        else:
            tokens = tokenize(saved["texts"])
        fields = saved["fields"]
        return {
            cid: (tokens[i], {name: values[i] for name, values in fields.items()})
            for i, cid in enumerate(saved["ids"])
        }

    def entries(self) -> dict[str, tuple[list[str], dict]]:
        """chunk id -> (tokens, filter field values) of an index built by an ingest (which holds
        its tokens), in the form `saved_entries` reads back."""
        fields = {name: values.tolist() for name, values in self._filter_fields.items()}
        return {
            cid: (self.tokens[i], {name: values[i] for name, values in fields.items()})
            for i, cid in enumerate(self.ids)
        }

    def __len__(self) -> int:
        return len(self.ids)

    def document_frequencies(self, stems: set[str]) -> dict[str, int]:
        """How many chunks hold each stemmed word (0 for a word the index has never seen)."""
        if self._retriever is None:
            return dict.fromkeys(stems, 0)
        vocab, indptr = self._retriever.vocab_dict, self._retriever.scores["indptr"]
        return {w: int(indptr[vocab[w] + 1] - indptr[vocab[w]]) if w in vocab else 0 for w in stems}

    def has_stem(self, word_stem: str) -> bool:
        return self._retriever is not None and word_stem in self._retriever.vocab_dict

    def nearest_stems(self, word_stem: str, max_edits: int) -> list[tuple[str, int, int]]:
        """The index's stems within `max_edits` typos of `word_stem` (a swap of two letters counting
        as one) as (stem, chunks holding it, typos): the closest first, then the most frequent."""
        from rapidfuzz import process
        from rapidfuzz.distance import OSA

        if self._retriever is None:
            return []
        vocabulary = list(self._retriever.vocab_dict)
        found = process.extract(word_stem, vocabulary, scorer=OSA.distance, score_cutoff=max_edits, limit=None)
        counts = self.document_frequencies({stem for stem, _, _ in found})
        ranked = sorted(found, key=lambda hit: (hit[1], -counts[hit[0]]))
        return [(stem, counts[stem], int(distance)) for stem, distance, _ in ranked]

    def field_values(self, name: str) -> np.ndarray:
        """One filter field's value for every chunk (for example its publication day)."""
        return self._filter_fields[name]

    def search(self, query: str, k: int, allowed: dict | None = None) -> list[tuple[str, float]]:
        """The best `k` chunk ids with their BM25 scores, among chunks that pass `allowed`
        (field name -> predicate over a numpy array of that field's values)."""
        tokens = tokenize([query])
        if not self.ids or not tokens[0]:
            return []
        mask = self._mask(allowed)
        if mask is not None and not mask.any():
            return []
        k = min(k, len(self.ids))
        positions, scores = self._retriever.retrieve(
            tokens, k=k, show_progress=False, weight_mask=mask, n_threads=0
        )
        return [
            (self.ids[pos], float(score))
            for pos, score in zip(positions[0], scores[0], strict=True)
            if score > 0
        ]

    def _mask(self, allowed: dict | None) -> np.ndarray | None:
        if not allowed:
            return None
        mask = np.ones(len(self.ids), dtype=bool)
        for field, predicate in allowed.items():
            mask &= predicate(self._filter_fields[field])
        return mask.astype(np.float32)
