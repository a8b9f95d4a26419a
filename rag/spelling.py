"""Names typed slightly wrong ("Japn"), matched against the words of the index before the question
is searched, so that a typo is corrected (and shown: "Searched as: ... Japan ...") rather than
refused as a name that no article mentions.

Only a name is corrected, and only when it is not a word at all: the index holds no such word, and
the embedding model's own vocabulary (WordPiece, 30k common words and names) does not hold it
whole. "Iraq" over an index that mentions only Iran stays "Iraq" (a real name whose absence is
news to report), while "Japn" becomes "Japan".
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

from rag.keyword import KeywordIndex, stem

_NAME = re.compile(r"\b[A-Z][a-z]{3,}\b")  # a capitalised word of four letters or more
_WORD = re.compile(r"\w+")


def max_edits(word: str) -> int:
    """Typos per word that still read as that word: one in a short name, two in a long one."""
    return 1 if len(word) <= 8 else 2


@lru_cache(maxsize=4)
def model_words(model_path: Path) -> frozenset[str]:
    """The whole words of a WordPiece vocabulary (its `vocab.txt`); empty when the model has none."""
    try:
        lines = (model_path / "vocab.txt").read_text(encoding="utf-8").split()
    except OSError:
        return frozenset()
    return frozenset(w for w in lines if w.isalpha() and w.islower())


class NameSpeller:
    def __init__(self, keywords: KeywordIndex, chunk_text, known_words: frozenset[str]):
        """`chunk_text(chunk_id)` reads a chunk, where a corrected name's spelling is found."""
        self.keywords = keywords
        self.chunk_text = chunk_text
        self.known_words = known_words

    def correct(self, question: str) -> str:
        return _NAME.sub(lambda match: self._corrected(match.group(0)), question)

    def _corrected(self, name: str) -> str:
        word = name.lower()
        if word in self.known_words or self.keywords.has_stem(stem(word)):
            return name
        nearest = self.keywords.nearest_stem(stem(word), max_edits(word))
        return self._spelling(nearest) or name if nearest else name

    def _spelling(self, wanted: str) -> str | None:
        """The word as an article spells it, capitals included."""
        for chunk_id, _ in self.keywords.search(wanted, 1):
            for word in _WORD.findall(self.chunk_text(chunk_id)):
                if word[:1].isupper() and stem(word.lower()) == wanted:
                    return word
        return None
