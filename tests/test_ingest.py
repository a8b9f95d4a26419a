"""Incremental ingest: what is new, changed, deleted or unreadable, and a consistent index after."""

import json
import threading

import pytest

from rag.index.ingestor import Ingestor
from rag.index.keyword import KeywordIndex
from rag.index.manifest import Manifest
from rag.index.store import IndexMismatch, open_vector_store
from tests.conftest import make_project

EXIM_FILE = "corpus/ani-2026-critical-minerals-ministerial-project-vault.txt"


@pytest.fixture
def project(tmp_path):
    settings = make_project(tmp_path)
    first = Ingestor(settings).run(show_progress=False)
    assert len(first.added) == 5 and not first.skipped
    return settings


def index_state(settings):
    """(manifest chunk ids, Chroma ids, keyword ids): all three must always agree."""
    manifest = Manifest.load(settings.index_dir)
    store = open_vector_store(settings, manifest.embed_model)
    keywords = KeywordIndex.load(settings.index_dir / manifest.keyword_dir)
    return manifest.chunk_ids(), set(store.all_ids()), set(keywords.ids)


def assert_consistent(settings):
    listed, stored, keyword = index_state(settings)
    assert listed == stored == keyword
    return listed


def test_second_run_over_unchanged_corpus_adds_nothing_and_says_so(project):
    before = assert_consistent(project)
    report = Ingestor(project).run(show_progress=False)
    assert not report.changed and report.chunks_added == 0
    assert len(report.unchanged) == 5
    assert "nothing added" in report.summary()
    assert assert_consistent(project) == before


def test_a_run_with_nothing_to_commit_still_clears_what_a_killed_run_left(project):
    """A run killed after its commit, in its clean-up, leaves an old keyword index and the text of
    a replaced article; the next run has nothing to commit and must still remove them (the slow
    kill test found this: a killed run may also have cleared the orphan chunks already)."""
    manifest = Manifest.load(project.index_dir)
    stale_text = project.index_dir / "articles" / "0123456789ab-0123456789.txt"
    stale_text.write_text("the text of an article since replaced")
    stale_keywords = project.index_dir / "keyword-000000"
    stale_keywords.mkdir()
    report = Ingestor(project).run(show_progress=False)
    assert not report.changed
    assert not stale_text.exists() and not stale_keywords.exists()
    assert (project.index_dir / manifest.keyword_dir).exists()


def test_changed_file_replaces_its_chunks(project):
    path = project.corpus_dir / "foxbusiness-us-japan-critical-minerals-rare-earths-deal.txt"
    old_ids = Manifest.load(project.index_dir).documents[f"corpus/{path.name}"].chunk_ids
    path.write_text(path.read_text() + "\nThe partners also agreed to meet again in Osaka next spring.\n")
    report = Ingestor(project).run(show_progress=False)
    assert report.updated == [f"corpus/{path.name}"] and not report.added
    entry = Manifest.load(project.index_dir).documents[f"corpus/{path.name}"]
    assert not set(old_ids) & set(entry.chunk_ids)
    ids = assert_consistent(project)
    assert not set(old_ids) & ids
    text = (project.index_dir / entry.text_file).read_text()
    assert "Osaka" in text


def test_deleted_file_leaves_the_index(project):
    gone = project.corpus_dir / "greenwatch-2024-10-04-us-india-critical-minerals-mou.txt"
    old_ids = set(Manifest.load(project.index_dir).documents[f"corpus/{gone.name}"].chunk_ids)
    gone.unlink()
    report = Ingestor(project).run(show_progress=False)
    assert report.removed == [f"corpus/{gone.name}"]
    ids = assert_consistent(project)
    assert not old_ids & ids
    assert f"corpus/{gone.name}" not in Manifest.load(project.index_dir).documents


def test_bad_files_are_reported_by_name_and_the_rest_is_ingested(project):
    (project.corpus_dir / "empty.txt").write_text("")
    (project.corpus_dir / "binary.txt").write_bytes(b"\x00\x01\x02garbage\x00" * 50)
    (project.corpus_dir / "broken.pdf").write_bytes(b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog")
    (project.corpus_dir / "notes.docx").write_bytes(b"PK\x03\x04")
    good = project.corpus_dir / "new-article.md"
    good.write_text(
        "# Chile expands lithium output\n\nChile's lithium output rose 12 percent in 2025, the ministry said.\n"
    )
    report = Ingestor(project).run(show_progress=False)
    reasons = {source.rsplit("/", 1)[-1]: reason for source, reason in report.skipped}
    assert set(reasons) == {"empty.txt", "binary.txt", "broken.pdf", "notes.docx"}
    assert "empty" in reasons["empty.txt"] and "binary" in reasons["binary.txt"]
    assert "PDF" in reasons["broken.pdf"] and "unsupported" in reasons["notes.docx"]
    assert report.added == ["corpus/new-article.md"]
    assert all(f"skipped corpus/{name}" in report.summary() for name in ("empty.txt", "binary.txt"))
    assert assert_consistent(project)


def test_a_duplicate_under_another_name_is_skipped(project):
    original = project.corpus_dir / "us-launches-global-critical-minerals-initiative-forge.txt"
    (project.corpus_dir / "copy-of-forge.txt").write_bytes(original.read_bytes())
    report = Ingestor(project).run(show_progress=False)
    assert report.skipped == [("corpus/copy-of-forge.txt", f"duplicate of corpus/{original.name}")]


def test_sidecar_metadata_overrides_what_the_text_gives(project):
    manifest = Manifest.load(project.index_dir)
    entry = manifest.documents[EXIM_FILE]
    assert entry.publisher == "ANI"
    sidecar = json.loads((project.corpus_dir / "metadata.json").read_text())
    assert entry.title == sidecar["ani-2026-critical-minerals-ministerial-project-vault.txt"]["title"]


def test_chunk_offsets_point_into_the_stored_article_text(project):
    manifest = Manifest.load(project.index_dir)
    store = open_vector_store(project, manifest.embed_model)
    for entry in manifest.documents.values():
        article = (project.index_dir / entry.text_file).read_text()
        for chunk in store.get(entry.chunk_ids):
            meta = chunk.metadata
            assert article[meta["start"] : meta["end"]] == chunk.text
            assert meta["title"] == entry.title


def test_orphans_of_an_interrupted_run_are_cleared(project):
    manifest = Manifest.load(project.index_dir)
    store = open_vector_store(project, manifest.embed_model)
    some_chunk = store.get([next(iter(manifest.chunk_ids()))])[0]
    store.upsert(["orphan-0001"], some_chunk.vector[None, :], ["half-written"], [some_chunk.metadata])
    report = Ingestor(project).run(show_progress=False)
    assert report.orphans_cleared == 1
    assert "orphan-0001" not in assert_consistent(project)


def test_an_index_built_with_another_model_is_refused(project):
    with pytest.raises(IndexMismatch, match="embedding model"):
        open_vector_store(project, "some-other-model")


def test_changing_the_chunk_size_asks_for_a_rebuild(project):
    with pytest.raises(RuntimeError, match="--rebuild"):
        Ingestor(project.with_overrides(chunk_chars=300)).run(show_progress=False)
    rebuilt = Ingestor(project.with_overrides(chunk_chars=300)).run(rebuild=True, show_progress=False)
    assert len(rebuilt.added) == 5
    assert Manifest.load(project.index_dir).chunk_chars == 300


def test_progress_is_counted_in_chunks(tmp_path, monkeypatch):
    """One long article and a short one are not the same amount of work: progress counts chunks,
    reported after each window of chunks embedded (8 here, to see several)."""
    import rag.index.ingestor

    monkeypatch.setattr(rag.index.ingestor, "EMBED_BATCH_CHUNKS", 8)
    settings = make_project(tmp_path)
    calls = []
    report = Ingestor(settings).run(show_progress=False, on_progress=lambda *call: calls.append(call))
    done = [call[0] for call in calls]
    assert {total for _, total, _ in calls} == {report.chunks_added} == {41}
    assert done == list(range(8, 41, 8)) + [41]
    assert {source for *_, source in calls} <= set(report.added)


def test_reloading_readers_and_an_ingest_at_once_never_break_each_other(project):
    """A serving process reopens the store on every commit while an upload is ingested beside it,
    and Chroma caches one store per folder: each must read the files into a store of its own, or
    one stops the store the other is using (the concurrency test saw "the vector store cannot be
    read" and a failed upload from this)."""
    from rag.answer.retrieve import Retriever

    ingestor = Ingestor(project)
    readers = [Retriever(project, ingestor.embedder) for _ in range(2)]
    errors, done = [], threading.Event()

    def reload_until_done(retriever):
        while not done.is_set():
            try:
                retriever.refresh(reopen=True)
                retriever.store.count()
            except Exception as exc:
                errors.append(exc)

    threads = [threading.Thread(target=reload_until_done, args=(r,)) for r in readers]
    for thread in threads:
        thread.start()
    try:
        for n in range(4):
            (project.corpus_dir / f"added-{n}.txt").write_text(f"Article {n}\n\nThe ferry {n} sailed at dawn.\n")
            assert len(ingestor.run(show_progress=False).added) == 1
    finally:
        done.set()
        for thread in threads:
            thread.join()
    assert not errors, errors[:3]
    assert all(len(r.refresh().documents) == 9 for r in readers)
    assert_consistent(project)


def test_a_reader_whose_index_is_replaced_while_it_loads_reads_the_newer_one(project, monkeypatch):
    """An ingest committing while a reader loads deletes the keyword index the reader's manifest
    names: the reader must load the newer commit, not call the index damaged."""
    import rag.answer.retrieve
    from rag.answer.retrieve import Retriever

    ingestor = Ingestor(project)
    reader = Retriever(project, ingestor.embedder)
    real_load = rag.answer.retrieve.KeywordIndex.load
    interrupted = []

    def load_after_another_commit(folder):
        if not interrupted:
            interrupted.append(folder)
            (project.corpus_dir / "late.txt").write_text("Late article\n\nThe ferry sailed late.\n")
            ingestor.run(show_progress=False)
        return real_load(folder)

    monkeypatch.setattr(rag.answer.retrieve.KeywordIndex, "load", load_after_another_commit)
    manifest = reader.refresh()
    assert interrupted and not interrupted[0].exists()
    assert len(manifest.documents) == 6 and "corpus/late.txt" in manifest.documents
