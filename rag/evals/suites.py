"""Eval suites: a corpus plus a question set, each answered against an index of its own.

The suites are data (`evals/suites.json`): a name, the dataset, and the corpus it asks about.
A SQuAD v2 dataset brings its own corpus (its articles are written out as text files). Each
suite's index is a cache under `evals/.cache/<suite>/`, brought up to date by an incremental
ingest before the suite runs, so only the first run over a corpus pays for the embedding.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

from rag.evals import squad
from rag.evals.dataset import load_dataset, parse_question
from rag.evals.runner import build_index
from rag.settings import Settings

SUITES_FILE = Path(__file__).resolve().parents[2] / "evals" / "suites.json"


class SuiteError(RuntimeError):
    """A suite that is unknown or cannot run here; the message is meant for the user."""


@dataclass
class Suite:
    name: str
    dataset: Path
    corpus_dir: Path  # for SQuAD: where its articles are written
    index_dir: Path
    is_squad: bool = False
    description: str = ""

    @classmethod
    def for_dataset(
        cls, name: str, dataset: Path, corpus_dir: Path | None, cache: Path, description: str = ""
    ) -> Suite:
        """A suite whose index (and, for SQuAD, corpus) lives in the folder `cache`."""
        # Only a SQuAD suite names no corpus, so one whose file is missing is still known as one
        # (and reported as not here) instead of being taken for a broken entry.
        is_squad = squad.is_squad(dataset) if dataset.exists() else corpus_dir is None
        if is_squad:
            corpus_dir = cache / "corpus"
        if corpus_dir is None:
            raise SuiteError(f"suite {name!r} names no corpus and its dataset is not SQuAD JSON")
        return cls(name, dataset, corpus_dir, cache / "index", is_squad, description)

    def unavailable(self) -> str | None:
        """Why this suite cannot run on this machine, or None."""
        if not self.dataset.exists():
            return f"its dataset {self.dataset} is not here"
        if not self.is_squad and not self.corpus_dir.is_dir():
            return f"its corpus {self.corpus_dir} is not here"
        return None

    def settings(self, base: Settings) -> Settings:
        """The base settings pointed at this suite's corpus and index (always the embedded store:
        a shared Chroma server would mix the suites' collections)."""
        return base.replaced(corpus_dir=self.corpus_dir, index_dir=self.index_dir, chroma_url=None)

    def prepare(self, settings: Settings) -> None:
        """Write a SQuAD suite's articles, then bring the index up to date with its corpus."""
        if self.is_squad:
            squad.write_corpus(squad.load_squad(self.dataset), self.corpus_dir)
        build_index(settings, show_progress=True)

    def questions(self, limit: int | None = None):
        if not self.is_squad:
            return load_dataset(self.dataset, limit)
        records = squad.questions(squad.load_squad(self.dataset), self.corpus_dir.name)
        picked = [parse_question(record) for record in records]
        return picked[:limit] if limit else picked


def load_suites(path: Path = SUITES_FILE) -> dict[str, Suite]:
    """Paths in the file are relative to the project root (the folder above the file's); each
    suite's cache is `.cache/<suite>` beside the file."""
    entries = json.loads(path.read_text(encoding="utf-8"))
    root = path.resolve().parent.parent
    suites = {}
    for name, entry in entries.items():
        corpus = root / entry["corpus"] if entry.get("corpus") else None
        cache = path.resolve().parent / ".cache" / name
        suites[name] = Suite.for_dataset(name, root / entry["dataset"], corpus, cache, entry.get("description", ""))
    return suites


def pick_suites(names: list[str], path: Path = SUITES_FILE) -> list[Suite]:
    """The named suites ("all" for every one), in the order given; those that cannot run here are
    reported and left out."""
    known = load_suites(path)
    wanted = list(known) if "all" in names else list(dict.fromkeys(names))
    unknown = [n for n in wanted if n not in known]
    if unknown:
        raise SuiteError(f"unknown suite {', '.join(unknown)}; choose from {', '.join(known)} or all")
    picked = []
    for name in wanted:
        reason = known[name].unavailable()
        if reason:
            print(f"skipping suite {name}: {reason}", file=sys.stderr)
        else:
            picked.append(known[name])
    if not picked:
        raise SuiteError("none of the named suites can run here")
    return picked
