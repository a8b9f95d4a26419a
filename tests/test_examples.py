"""Example questions come from the corpus: its metadata.json's list, else its own headlines."""

from __future__ import annotations

import json
import subprocess
import sys

from rag.index.examples import EXAMPLES_KEY, Example, corpus_examples, headline_examples, listed_examples
from rag.index.manifest import DocumentEntry, Manifest
from tests.conftest import CORPUS, PROJECT_ROOT


def manifest_of(articles: dict[str, tuple[str, str | None]]) -> Manifest:
    """A manifest listing {source: (title, published)}."""
    documents = {
        source: DocumentEntry("sha", "sha", f"id{i}", title, None, published, None, [f"id{i}-0000"], f"articles/{i}.txt")
        for i, (source, (title, published)) in enumerate(articles.items())
    }
    return Manifest("model", 600, 1, documents=documents)


def test_the_bundled_corpus_lists_its_own_four_examples():
    listed = listed_examples(CORPUS)
    assert [e.question for e in listed][:1] == ["What did EXIM approve under Project Vault?"] and len(listed) == 4
    assert all(e.label == e.question for e in listed)


def test_listed_examples_come_before_headlines(tmp_path):
    (tmp_path / "metadata.json").write_text(json.dumps({EXAMPLES_KEY: ["Who won?", "", 7], "a.txt": {"title": "A"}}))
    manifest = manifest_of({"corpus/a.txt": ("Rovers win the cup", "2025-01-01")})
    assert corpus_examples(tmp_path, manifest) == [Example("Who won?", "Who won?")]


def test_without_a_list_the_most_recent_headlines_are_offered(tmp_path):
    manifest = manifest_of({
        "c/old.txt": ("Old news", "2024-01-01"),
        "c/new.txt": ("New  news\n", "2025-06-01"),
        "c/undated.txt": ("Undated news", None),
    })
    examples = corpus_examples(tmp_path, manifest)
    assert [e.label for e in examples] == ["Ask about: New news", "Ask about: Old news", "Ask about: Undated news"]
    assert examples[0].question == "What does the article “New news” say?" and examples[0].source == "c/new.txt"


def test_undated_headlines_are_spread_over_the_corpus_not_taken_from_one_folder():
    manifest = manifest_of({f"{folder}/{i:03d}.txt": (f"{folder} {i}", None)
                            for folder in ("business", "politics", "sport", "tech") for i in range(50)})
    first_four = [e.source.split("/")[0] for e in list(headline_examples(manifest))[:4]]
    assert len(set(first_four)) >= 3, first_four
    assert len(list(headline_examples(manifest))) == 200, "every article is offered once"


def test_only_headlines_the_assistant_answers_are_kept_and_the_tries_are_bounded(tmp_path):
    manifest = manifest_of({f"c/{i}.txt": (f"Story {i}", f"2025-01-{i + 1:02d}") for i in range(20)})
    tried = []

    def answers_well(example: Example) -> bool:
        tried.append(example)
        return example.source in ("c/15.txt", "c/12.txt", "c/3.txt")

    kept = corpus_examples(tmp_path, manifest, answers_well, tries=10)
    assert [e.source for e in kept] == ["c/15.txt", "c/12.txt"], "newest first; c/3 is past the tenth try"
    assert len(tried) == 10


def test_an_unreadable_metadata_file_falls_back_to_headlines(tmp_path):
    (tmp_path / "metadata.json").write_text("{ not json")
    manifest = manifest_of({"c/a.txt": ("A headline", None)})
    assert [e.label for e in corpus_examples(tmp_path, manifest)] == ["Ask about: A headline"]
    assert corpus_examples(tmp_path, None) == []


def test_the_cli_help_lists_examples_about_the_configured_corpus(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "metadata.json").write_text(json.dumps({EXAMPLES_KEY: ["What did the harbour ferry crews do?"]}))
    env = {"PATH": "/usr/bin:/bin", "RAG_CORPUS_DIR": str(corpus), "RAG_INDEX_DIR": str(tmp_path / "index")}
    shown = subprocess.run([sys.executable, "-m", "rag.cli", "ask", "--help"], cwd=PROJECT_ROOT, env=env,
                           capture_output=True, text=True, check=True).stdout
    assert "rag ask 'What did the harbour ferry crews do?'" in shown and "EXIM" not in shown
