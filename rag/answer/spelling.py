"""Names typed slightly wrong ("Japn"), matched against the words of the index before the question
is searched, so that a typo is corrected (and shown: "Searched as: ... Japan ...") rather than
refused as a name that no article mentions.

Only a name is corrected (typed capitalised or not, as long as articles write the correction as a
name), and only when it is not a word at all: the index holds no such word, and the embedding
model's own vocabulary (WordPiece, 30k common words and names) does not hold it whole; a name of
several words with a typo in more than one ("Margret Hasan") is corrected when the corrected whole
appears in an article. "Iraq" over an index that mentions only Iran stays "Iraq" (a real name whose absence is
news to report), while "Japn" becomes "Japan".
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

from rag.index.keyword import KeywordIndex, stem

_NAME_RUN = re.compile(r"\b[A-Z][a-z]+(?: [A-Z][a-z]+)*\b")  # "Japan", "Tony Blair"
# A name typed in lower case ("japn"): corrected only when it is no word and articles write the
# closest word as a name.
_LOWER_CASE_WORD = re.compile(r"\b[a-z]{4,}\b")
_WORD_BEFORE = re.compile(r"([A-Za-z]+) $")
# After a lower-case word or a comma: capitalised as a name, not as a sentence's first word.
_MID_SENTENCE_NAME = re.compile(r"(?<=[a-z0-9,;] )[A-Z][a-z]+\b")
SPELLING_PROBE = 3  # chunks read to see how articles write a word


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
        """The question with each name that is no word at all spelt as the index spells it."""
        corrected = _NAME_RUN.sub(lambda match: self._corrected(match.group(0), self.known_words), question)
        return _LOWER_CASE_WORD.sub(self._lower_case_corrected, corrected)

    def _lower_case_corrected(self, match: re.Match) -> str:
        """A lower-case word that is no word, spelt as the name an article has after the word
        before it ("tony blare" has "Blair", not the closer but lone "Blake"), else as its
        closest name."""
        word = match.group(0)
        if word in self.known_words or self.keywords.has_stem(stem(word)):
            return word
        before = _WORD_BEFORE.search(match.string, 0, match.start())
        if before:
            spelt = self._closest_in_phrase([before.group(1).capitalize(), word.capitalize()], 1)
            if spelt:
                return spelt
        return self._closest_name(word) or word

    def suggest(self, text: str) -> str | None:
        """`text` with every capitalised word the index lacks spelt as a close word it has, even
        one that is a word; None when nothing changes. For a refusal to offer, never to answer with."""
        suggested = _NAME_RUN.sub(lambda match: self._corrected(match.group(0), frozenset()), text)
        return suggested if suggested != text else None

    def _corrected(self, run: str, known_words: frozenset[str]) -> str:
        """A run of capitalised words ("Tony Blare"), each word the index lacks replaced by the
        closest that articles write as a name. In a run of several words, the whole corrected run
        must appear in an article ("Tony Blair", not "Tony Blake"), which allows one typo more."""
        words = run.split()
        for i, word in enumerate(words):
            if len(word) < 4 or word.lower() in known_words or self.keywords.has_stem(stem(word.lower())):
                continue
            if len(words) == 1:
                words[i] = self._closest_name(word) or word
            else:
                words[i] = self._closest_in_phrase(words, i) or word
        corrected = " ".join(words)
        if corrected == run and len(words) > 1:
            return self._corrected_together(words) or run
        return corrected

    def _corrected_together(self, words: list[str]) -> str | None:
        """A run with a typo in more than one word ("Margret Hasan"): each word the index lacks
        spelt as its closest name, kept only when the whole phrase appears in an article
        ("Margaret Hassan"), which is evidence enough to correct even a real word."""
        lacking = [i for i, word in enumerate(words) if len(word) >= 4 and not self.keywords.has_stem(stem(word.lower()))]
        if len(lacking) < 2:
            return None
        fixed = list(words)
        for i in lacking:
            fixed[i] = self._closest_name(words[i]) or words[i]
        phrase = " ".join(fixed)
        return phrase if fixed != words and self._appears(phrase) else None

    def _closest_name(self, word: str) -> str | None:
        """The most frequent of the closest words that articles write as a name; two as frequent
        make it a guess, and a guess is not made."""
        found = self.keywords.nearest_stems(stem(word.lower()), max_edits(word))
        closest = [(wanted, count) for wanted, count, distance in found if distance == found[0][2]]
        names = [(spelt, count) for wanted, count in closest if (spelt := self._name_spelling(wanted))]
        if not names or (len(names) > 1 and names[0][1] == names[1][1]):
            return None
        return names[0][0]

    def _closest_in_phrase(self, words: list[str], i: int) -> str | None:
        for wanted, _, _ in self.keywords.nearest_stems(stem(words[i].lower()), max_edits(words[i]) + 1):
            spelt = self._name_spelling(wanted)
            if spelt and self._appears(" ".join([*words[:i], spelt, *words[i + 1:]])):
                return spelt
        return None

    def _appears(self, phrase: str) -> bool:
        return any(phrase in self.chunk_text(chunk_id) for chunk_id, _ in self.keywords.search(phrase, SPELLING_PROBE))

    def _name_spelling(self, wanted: str) -> str | None:
        """The word as articles write it when it is a name: capitalised inside a sentence."""
        for chunk_id, _ in self.keywords.search(wanted, SPELLING_PROBE):
            for match in _MID_SENTENCE_NAME.finditer(self.chunk_text(chunk_id)):
                if stem(match.group(0).lower()) == wanted:
                    return match.group(0)
        return None
