"""The sentence vectors an ingest stores per article: what they hold, that answers read them instead
of embedding at question time, and that they follow the corpus incrementally and heal."""

import json
import os

import numpy as np
import pytest

from rag.assistant import Assistant
from rag.index import sentence_vectors
from rag.index.ingestor import Ingestor
from rag.index.manifest import Manifest
from rag.ingest.chunking import split_sentences
from tests.conftest import make_project

EXIM = "What did EXIM approve under Project Vault?"
NEW_ARTICLE = """Title: Lithium refinery opens in Nevada
Publisher: Example Wire
Published: 2026-03-01

A lithium refinery opened near Reno on Monday. It will process 40,000 tonnes of ore a year.
The plant cost 1.2 billion dollars, its owner said.
"""


@pytest.fixture
def project(tmp_path):
    settings = make_project(tmp_path)
    Ingestor(settings).run(show_progress=False)
    return settings


class CountingEmbedder:
    """The real embedder, counting the passages the answerer reads in context at question time."""

    def __init__(self, embedder):
        self._embedder = embedder
        self.read_in_context = 0

    def embed_with_sentences(self, texts, spans):
        self.read_in_context += len(texts)
        return self._embedder.embed_with_sentences(texts, spans)

    def __getattr__(self, name):
        return getattr(self._embedder, name)


def sentence_files(settings):
    return {p.name: p.stat().st_mtime_ns for p in (settings.index_dir / "articles").glob("*" + sentence_vectors.SUFFIX)}


def answer_of(settings) -> tuple[Assistant, CountingEmbedder, dict]:
    assistant = Assistant(settings)
    counting = CountingEmbedder(assistant.embedder)
    assistant.ranker.embedder = counting
    return assistant, counting, assistant.ask(EXIM).to_dict()


def test_each_article_gets_one_vector_per_sentence_of_each_chunk(project):
    manifest = Manifest.load(project.index_dir)
    assistant = Assistant(project)
    for entry in manifest.documents.values():
        stored = sentence_vectors.load(project.index_dir / entry.sentence_file)
        chunks = assistant.retriever.store.get(entry.chunk_ids)
        assert len(stored) == len(chunks) == len(entry.chunk_ids)
        for chunk, vectors in zip(chunks, stored, strict=True):
            assert len(vectors) == len(split_sentences(chunk.text))
            assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-2)


def test_stored_vectors_are_what_the_answerer_would_compute(project):
    """An answer from stored vectors is the answer from vectors computed at question time."""
    _, counting, stored = answer_of(project)
    assert counting.read_in_context == 0
    for entry in Manifest.load(project.index_dir).documents.values():
        (project.index_dir / entry.sentence_file).unlink()
    _, counting, computed = answer_of(project)
    assert counting.read_in_context > 0
    assert stored["answer"] == computed["answer"] and "10 billion" in stored["answer"]
    assert stored["confidence"] == pytest.approx(computed["confidence"], abs=0.01)


def test_an_added_article_writes_its_own_file_and_leaves_the_others(project):
    before = sentence_files(project)
    (project.corpus_dir / "lithium-refinery.txt").write_text(NEW_ARTICLE)
    Ingestor(project).run(show_progress=False)
    after = sentence_files(project)
    assert len(after) == len(before) + 1
    assert {name: after[name] for name in before} == before  # not rewritten
    assistant, counting, _ = answer_of(project)
    answer = assistant.ask("How much did the Nevada lithium refinery cost?")
    assert "1.2 billion" in answer.answer and counting.read_in_context == 0


def test_a_deleted_article_takes_its_file_with_it(project):
    manifest = Manifest.load(project.index_dir)
    source, entry = next(iter(manifest.documents.items()))
    (project.project_root / source).unlink()
    Ingestor(project).run(show_progress=False)
    assert not (project.index_dir / entry.sentence_file).exists()
    assert len(sentence_files(project)) == len(manifest.documents) - 1


def test_an_index_built_before_sentence_vectors_gains_them_without_a_rebuild(project):
    """The next `rag ingest` stages such articles again under the same chunk ids, and must not then
    delete those chunks as replaced."""
    manifest_path = project.index_dir / "manifest.json"
    old = json.loads(manifest_path.read_text())
    for entry in old["documents"].values():
        (project.index_dir / entry.pop("sentence_file")).unlink()
    manifest_path.write_text(json.dumps(old))
    _, counting, before = answer_of(project)
    assert counting.read_in_context > 0  # the old index still answers, embedding as it goes
    report = Ingestor(project).run(show_progress=False)
    assert report.chunks_added == report.chunks_removed == 0 and not report.updated  # the same chunks
    assert "sentence vectors of 5 articles" in report.summary()
    manifest = Manifest.load(project.index_dir)
    assert manifest.chunk_ids() == {cid for e in old["documents"].values() for cid in e["chunk_ids"]}
    assert len(sentence_files(project)) == len(manifest.documents)
    _, counting, after = answer_of(project)
    assert counting.read_in_context == 0 and after["answer"] == before["answer"]
    assert len(Assistant(project).retriever.store.all_ids()) == len(manifest.chunk_ids())


def test_a_damaged_file_is_read_around_and_the_next_ingest_rewrites_it(project):
    entry = next(iter(Manifest.load(project.index_dir).documents.values()))
    path = project.index_dir / entry.sentence_file
    whole = path.read_bytes()
    path.write_bytes(whole[: len(whole) // 2])
    assert sentence_vectors.SentenceVectorFiles(
        project.index_dir, {entry.chunk_ids[0].rpartition("-")[0]: entry.sentence_file}
    ).for_chunk(entry.chunk_ids[0]) is None
    _, _, answer = answer_of(project)
    assert "10 billion" in answer["answer"]
    Ingestor(project).run(show_progress=False)
    assert sentence_vectors.whole(path) and len(sentence_vectors.load(path)) == len(entry.chunk_ids)


def test_a_write_is_atomic(tmp_path):
    path = tmp_path / "a.sentences.npz"
    sentence_vectors.save(path, [np.ones((2, 4), dtype=np.float32), np.zeros((1, 4), dtype=np.float32)])
    assert os.listdir(tmp_path) == ["a.sentences.npz"]  # no staging file left behind
    loaded = sentence_vectors.load(path)
    assert [len(v) for v in loaded] == [2, 1] and loaded[0].dtype == np.float32
