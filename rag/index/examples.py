"""Example questions that fit the corpus in the index, for the chat's buttons and `rag ask --help`.

A corpus may list its own in the `metadata.json` of its folder (`"examples": [...]`, as the bundled
one does). Otherwise the examples are built from the index: the most recent headlines, each offered
as "Ask about: <headline>". Undated articles (the BBC corpus has no dates) are taken evenly spread
over the sorted sources, so that one folder of a corpus does not fill every button.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from rag.index.manifest import Manifest
from rag.ingest.corpus import SIDECAR_NAME

EXAMPLES_KEY = "examples"  # never an article's name: a name without a suffix is not ingested
EXAMPLE_COUNT = 4
HEADLINE_QUESTION = "What does the article “{headline}” say?"


@dataclass(frozen=True)
class Example:
    label: str  # what the button shows
    question: str  # what it asks
    source: str | None = None  # the article a headline example is about


def listed_examples(corpus_dir: Path) -> list[Example]:
    """The questions the corpus's own metadata.json lists; none when it lists none or is unreadable
    (ingest reports a broken metadata.json; the examples are no place to repeat it)."""
    try:
        listed = json.loads((corpus_dir / SIDECAR_NAME).read_text(encoding="utf-8")).get(EXAMPLES_KEY)
    except (OSError, ValueError, AttributeError):
        return []
    if not isinstance(listed, list):
        return []
    return [Example(q.strip(), q.strip()) for q in listed if isinstance(q, str) and q.strip()]


def headline_examples(manifest: Manifest | None) -> Iterator[Example]:
    """Every article once, as a headline example: the most recent first, undated ones spread."""
    if manifest is None:
        return
    entries = sorted(manifest.documents.items())
    dated = sorted((e for e in entries if e[1].published), key=lambda e: e[1].published, reverse=True)
    undated = [e for e in entries if not e[1].published]
    for source, entry in dated + _spread(undated):
        headline = " ".join(entry.title.split())
        if headline:
            yield Example(f"Ask about: {headline}", HEADLINE_QUESTION.format(headline=headline), source)


def _spread(items: list) -> list:
    """The items reordered so that any first few are far apart in the original order: 0, n/2,
    n/4, 3n/4, ... (bit-reversed positions)."""
    order, step = [], len(items)
    seen: set[int] = set()
    while step >= 1:
        for position in range(0, len(items), step):
            if position not in seen:
                seen.add(position)
                order.append(items[position])
        step //= 2
    return order


def corpus_examples(
    corpus_dir: Path,
    manifest: Manifest | None,
    answers_well: Callable[[Example], bool] | None = None,
    count: int = EXAMPLE_COUNT,
    tries: int = 3 * EXAMPLE_COUNT,
) -> list[Example]:
    """The listed examples, else up to `count` headline examples. With `answers_well`, only
    headlines it accepts, trying at most `tries`: an example the assistant refuses teaches a
    newcomer nothing about what it can do."""
    listed = listed_examples(corpus_dir)
    if listed:
        return listed[:count]
    chosen = []
    for tried, example in enumerate(headline_examples(manifest)):
        if len(chosen) == count or tried == tries:
            break
        if answers_well is None or answers_well(example):
            chosen.append(example)
    return chosen
