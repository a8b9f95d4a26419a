"""Incremental, idempotent, crash-safe ingest: files -> clean articles -> chunks -> vectors + keywords.

Content hashes decide what is new. A run first stages everything (chunks upserted under ids that
include the content hash, a new keyword index in a new folder), then commits by atomically
replacing the manifest, then deletes what the new manifest no longer lists. A run killed at any
point leaves the last committed index intact, and the next run clears what it left behind.
Which files are read, and their hashes and sidecar metadata, come from rag/ingest/corpus.py.

Over 500 lines on purpose: staging, the commit and the clean-up are one crash-safety protocol,
read best in one file.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import numpy as np

from rag.index import sentence_vectors as sentence_vectors_lib
from rag.index.embeddings import Embedder, load_embedder
from rag.index.keyword import KeywordIndex, tokenize
from rag.index.manifest import (
    MANIFEST_NAME,
    DocumentEntry,
    IndexDamaged,
    Manifest,
    check_index_folder,
    new_index_id,
    salvaged_index_id,
)
from rag.index.store import (
    IndexMismatch,
    StoredChunk,
    StoreUnavailable,
    VectorStore,
    collection_family,
    drop_collections,
    open_vector_store,
    reset_local_store,
)
from rag.ingest import corpus
from rag.ingest.chunking import chunk_text, split_sentences
from rag.ingest.documents import UnreadableFile, load_article
from rag.settings import Settings

EMBED_BATCH_CHUNKS = 256
LOCK_NAME = ".ingest.lock"
ARTICLES = "articles"  # the folder of cleaned article texts and their sentence vectors

ProgressCallback = Callable[[int, int, str], None]  # (chunks stored, chunks to store, the latest file)


@dataclass
class IngestReport:
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (source, reason)
    notes: list[tuple[str, str]] = field(default_factory=list)  # (source, how it was read), e.g. a fallback encoding
    chunks_added: int = 0
    chunks_removed: int = 0
    orphans_cleared: int = 0
    repaired: list[str] = field(default_factory=list)  # damage found and healed
    documents: int = 0
    chunks: int = 0
    seconds: float = 0.0

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.removed or self.orphans_cleared or self.repaired)

    def summary(self) -> str:
        lines = [f"skipped {source}: {reason}" for source, reason in self.skipped]
        lines += [f"note {source}: {note}" for source, note in self.notes]
        lines += [f"Repaired: {what}." for what in self.repaired]
        if not self.changed:
            lines.append(
                f"Index up to date: nothing added ({self.documents} documents, {self.chunks} chunks)."
            )
            return "\n".join(lines)
        lines.append(
            f"Ingested in {self.seconds:.1f}s: {len(self.added)} added, {len(self.updated)} updated, "
            f"{len(self.removed)} removed, {len(self.unchanged)} unchanged, {len(self.skipped)} skipped; "
            f"+{self.chunks_added}/-{self.chunks_removed} chunks. "
            f"Index: {self.documents} documents, {self.chunks} chunks."
        )
        if self.orphans_cleared:
            lines.append(f"Cleared {self.orphans_cleared} chunks left by an interrupted ingest.")
        return "\n".join(lines)


@dataclass
class _Candidate:
    path: Path
    source: str
    sha256: str  # of the file and its sidecar metadata: a change to either re-ingests it
    content_sha256: str  # of the file alone: the same article under two names is a duplicate
    sidecar: dict


@dataclass
class _Staged:
    candidate: _Candidate
    entry: DocumentEntry
    texts: list[str]  # title + chunk text, as embedded and keyword-indexed
    metadatas: list[dict]
    sentence_spans: list[list[tuple[int, int]]]  # each chunk's sentences, as ranges of its text
    notes: tuple[str, ...] = ()  # how the file was read, for the report


class Ingestor:
    def __init__(self, settings: Settings, embedder: Embedder | None = None):
        self.settings = settings
        self.embedder = embedder or load_embedder(settings.embed_model, settings.embed_batch_size)
        self.index_dir = settings.index_dir
        self._replaced_collection: str | None = None  # a pre-id index's collection, dropped after a rebuild

    def run(
        self,
        paths: list[Path] | None = None,
        *,
        rebuild: bool = False,
        show_progress: bool = True,
        on_progress: ProgressCallback | None = None,
    ) -> IngestReport:
        started = time.perf_counter()
        with self._lock():
            manifest, store = self._fresh_index() if rebuild else self._committed_index()
            try:
                report = self._update(manifest, store, paths, rebuild, show_progress, on_progress)
            finally:
                store.close()
        report.seconds = time.perf_counter() - started
        return report

    def _update(self, manifest, store, paths, rebuild, show_progress, on_progress) -> IngestReport:
        """Bring the index up to date with the files, committing batch by batch."""
        report = IngestReport()
        report.orphans_cleared = self._reconcile(manifest, store)
        keywords = self._checked_keyword_entries(manifest, store, report)
        candidates = self._scan(paths or [self.settings.corpus_dir], manifest, report)
        removed = [s for s in manifest.documents if not self._path_of(s).exists()]
        prepared = self._prepare_all(candidates, report)
        # A rebuild commits once, at the end: until then readers keep answering from the old index.
        batch_chunks = None if rebuild else self.settings.ingest_commit_chunks
        progress = _ChunkProgress(prepared, show_progress, on_progress)
        batches = _batches(prepared, batch_chunks)
        for number, batch in enumerate(batches, 1):
            self._embed_and_store(batch, store, progress)
            deleted = removed if number == len(batches) else []  # removals go with the last commit
            keywords = self._commit(manifest, batch, deleted, keywords, store, report)
        progress.close()
        self._clean_up(manifest)
        report.documents = len(manifest.documents)
        report.chunks = sum(len(e.chunk_ids) for e in manifest.documents.values())
        return report

    # -- set-up ----------------------------------------------------------------------------------

    @contextmanager
    def _lock(self) -> Iterator[None]:
        """One ingest at a time per index: a second one waits rather than interleaving commits,
        and says so, since it may wait for minutes."""
        check_index_folder(self.index_dir)
        self.index_dir.mkdir(parents=True, exist_ok=True)
        with open(self.index_dir / LOCK_NAME, "a+") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                holder = handle.read().strip() or "another process"
                print(
                    f"Waiting for another ingest of {self.index_dir} to finish ({holder})...",
                    file=sys.stderr,
                    flush=True,
                )
                fcntl.flock(handle, fcntl.LOCK_EX)
            handle.truncate(0)
            handle.write(f"pid {os.getpid()}\n")
            handle.flush()
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _committed_index(self) -> tuple[Manifest, VectorStore]:
        """The committed index, checked: a manifest or store that cannot be read stops the run
        with the command that rebuilds it."""
        manifest = self._load_manifest()
        for name in (ARTICLES, "chroma"):
            if (self.index_dir / name).exists() and not (self.index_dir / name).is_dir():
                raise IndexDamaged(f"{self.index_dir / name} is a file where the index keeps a folder")
        try:
            store = open_vector_store(self.settings, self.embedder.name, manifest.collection)
            store.check_readable()
        except (IndexMismatch, StoreUnavailable):
            raise
        except Exception as exc:
            raise IndexDamaged(
                f"the vector store in {self.settings.chroma_url or self.index_dir / 'chroma'} cannot be "
                f"read ({type(exc).__name__}: {exc})"
            ) from exc
        return manifest, store

    def _fresh_index(self) -> tuple[Manifest, VectorStore]:
        """An empty index to rebuild into, in a collection of its own: the committed one keeps
        serving until the rebuilt one is committed. Whatever state the old index is in (a damaged
        manifest, a store Chroma cannot open), the rebuild starts from nothing but the corpus."""
        try:
            old = Manifest.load(self.index_dir)
        except IndexDamaged:
            old = None
        index_id = old.index_id if old else salvaged_index_id(self.index_dir)
        self._clear_the_way()
        generation = old.generation if old else 0
        manifest = self._wanted_manifest(generation, index_id=index_id or new_index_id())
        family = collection_family(self.settings, manifest.index_id)
        manifest.collection = f"{family}-g{generation + 1:06d}"
        old_collection = old and (old.collection or self.settings.collection)
        if old and not old.index_id:
            self._replaced_collection = old_collection  # it keeps answering until the commit
        try:
            drop_collections(self.settings, keep=old_collection, family=family)
            store = open_vector_store(self.settings, self.embedder.name, manifest.collection)
        except StoreUnavailable:
            raise
        except Exception:
            if self.settings.chroma_url:
                raise
            reset_local_store(self.settings)  # Chroma cannot open its own files: start them afresh
            store = open_vector_store(self.settings, self.embedder.name, manifest.collection)
        return manifest, store

    def _clear_the_way(self) -> None:
        """A file where the index keeps a folder, or a folder where it keeps its manifest, is
        damage a rebuild removes: it starts from the corpus alone."""
        for name, folder in ((ARTICLES, True), ("chroma", True), (MANIFEST_NAME, False)):
            path = self.index_dir / name
            if path.exists() and path.is_dir() != folder:
                shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()

    def _wanted_manifest(self, generation: int = 0, index_id: str | None = None) -> Manifest:
        """A new index's manifest; its id names its collections (rag.index.store.collection_family)."""
        index_id = index_id or new_index_id()
        return Manifest(
            self.embedder.name,
            self.settings.chunk_chars,
            self.settings.chunk_overlap_sentences,
            generation=generation,
            collection=collection_family(self.settings, index_id),
            index_id=index_id,
        )

    def _load_manifest(self) -> Manifest:
        manifest = Manifest.load(self.index_dir)
        wanted = self._wanted_manifest()
        if manifest is None:
            return wanted
        for name in ("embed_model", "chunk_chars", "chunk_overlap_sentences"):
            if getattr(manifest, name) != getattr(wanted, name):
                raise RuntimeError(
                    f"the index in {self.index_dir} was built with {name}={getattr(manifest, name)!r}, "
                    f"not {getattr(wanted, name)!r}: run `rag ingest --rebuild`, or use another RAG_INDEX_DIR"
                )
        return manifest

    def _reconcile(self, manifest: Manifest, store: VectorStore) -> int:
        """Bring the store back to exactly what the manifest lists."""
        committed = manifest.chunk_ids()
        present = set(store.all_ids())
        orphans = sorted(present - committed)
        store.delete(orphans)
        for source, entry in list(manifest.documents.items()):
            if not set(entry.chunk_ids) <= present:
                del manifest.documents[source]  # will be staged again from its file
        return len(orphans)

    def _checked_keyword_entries(self, manifest: Manifest, store: VectorStore, report: IngestReport) -> dict:
        """The committed keyword index's chunks (tokens and filter fields), to carry into the next
        one. A keyword index that is missing, unreadable or lists other chunks than the manifest is
        rebuilt from the chunks in the vector store, without embedding anything again."""
        listed = manifest.chunk_ids()
        if not manifest.keyword_dir:
            return {}
        folder = self.index_dir / manifest.keyword_dir
        try:
            KeywordIndex.load(folder)  # the BM25 files must load, not just the token list
            entries = KeywordIndex.saved_entries(folder)
        except Exception:  # any damage at all: the store holds what is needed to rebuild it
            entries = {}
        if not listed <= set(entries):
            report.repaired.append(f"rebuilt the keyword index from the vector store ({len(listed)} chunks)")
            return {chunk.id: _keyword_entry(chunk) for chunk in store.get_all(sorted(listed))}
        if set(entries) != listed:
            report.repaired.append(f"dropped {len(set(entries) - listed)} chunks from the keyword index")
        return entries

    # -- scanning --------------------------------------------------------------------------------

    def _scan(self, roots: list[Path], manifest: Manifest, report: IngestReport) -> list[_Candidate]:
        candidates: list[_Candidate] = []
        lacking: list[str] = []  # unchanged, but without their sentence vectors
        # Only files still on disk count as originals: when a file is renamed, or deleted while a
        # copy remains, the copy is the article now and must not be skipped as a duplicate.
        seen_contents = {
            e.content_sha256: s for s, e in manifest.documents.items() if self._path_of(s).exists()
        }
        for path in self._files_under(roots, report):
            source = self._source_of(path)
            try:
                sidecar = corpus.sidecar_entry(path)
                content_sha = corpus.hash_file(path, self.settings.max_file_bytes)
                sha = corpus.with_metadata_hash(content_sha, sidecar)
            except (OSError, ValueError) as exc:
                report.skipped.append((source, _reason(exc)))
                continue
            known = manifest.documents.get(source)
            if known and known.sha256 == sha and self._has_sentence_vectors(known):
                report.unchanged.append(source)
            elif known and known.sha256 == sha:
                lacking.append(source)
                candidates.append(_Candidate(path, source, sha, content_sha, sidecar))
            elif seen_contents.get(content_sha, source) != source:
                report.skipped.append((source, f"duplicate of {seen_contents[content_sha]}"))
            else:
                seen_contents[content_sha] = source
                candidates.append(_Candidate(path, source, sha, content_sha, sidecar))
        if lacking:
            report.repaired.append(
                f"wrote the sentence vectors of {len(lacking)} articles that had none (indexed before they "
                "were stored, or their file was lost)"
            )
        return candidates

    def _has_sentence_vectors(self, entry: DocumentEntry) -> bool:
        """False for an article indexed before they were stored, or whose file is gone or cut
        short: it is staged again, like a changed one, so the index gains them without a rebuild."""
        return bool(entry.sentence_file) and sentence_vectors_lib.whole(self.index_dir / entry.sentence_file)

    def _files_under(self, roots: list[Path], report: IngestReport) -> Iterator[Path]:
        corpus = self.settings.corpus_dir.resolve()
        for path in self._files_named(roots, report):
            # Only the corpus is read: a link to /etc/passwd would otherwise be quoted in answers.
            if not path.resolve().is_relative_to(corpus):
                report.skipped.append((self._source_of(path), f"outside the corpus folder {corpus}: not read"))
            else:
                yield path

    def _files_named(self, roots: list[Path], report: IngestReport) -> Iterator[Path]:
        for root in roots:
            if root.is_file():
                yield root
            elif not root.exists():
                report.skipped.append((str(root), "no such file or folder"))
            else:
                yield from corpus.walk_supported(root, report.skipped, self._source_of)

    def _source_of(self, path: Path) -> str:
        absolute = Path(os.path.abspath(path))
        try:
            return absolute.relative_to(self.settings.project_root).as_posix()
        except ValueError:
            return str(absolute)

    def _path_of(self, source: str) -> Path:
        path = Path(source)
        return path if path.is_absolute() else self.settings.project_root / path

    # -- staging ---------------------------------------------------------------------------------

    def _prepare_all(self, candidates: list[_Candidate], report: IngestReport) -> list[_Staged]:
        """Read and chunk every candidate first, so that progress can be counted in chunks, the
        unit of the work that takes the time."""
        prepared = []
        for candidate in candidates:
            try:
                prepared.append(self._prepare(candidate))
            except (UnreadableFile, OSError) as exc:
                report.skipped.append((candidate.source, _reason(exc)))
            else:
                report.notes += [(candidate.source, note) for note in prepared[-1].notes]
        return prepared

    def _prepare(self, candidate: _Candidate) -> _Staged:
        article = corpus.with_sidecar(load_article(candidate.path, self.settings.max_file_bytes), candidate.sidecar)
        limit = self.settings.max_article_chars
        if len(article.text) > limit:
            raise UnreadableFile(
                f"too long for a news article ({len(article.text):,} characters of text; the limit is "
                f"{limit:,}, RAG_MAX_ARTICLE_CHARS)"
            )
        doc_id = hashlib.sha1(candidate.source.encode()).hexdigest()[:12]
        chunks = chunk_text(article.text, self.settings.chunk_chars, self.settings.chunk_overlap_sentences)
        if not chunks:
            raise UnreadableFile("no article text found")
        text_file = f"{ARTICLES}/{doc_id}-{candidate.sha256[:10]}.txt"
        (self.index_dir / ARTICLES).mkdir(exist_ok=True)
        _write_atomically(self.index_dir / text_file, article.text)
        chunk_ids = [f"{doc_id}-{candidate.sha256[:10]}-{c.index:04d}" for c in chunks]
        base = {
            "source": candidate.source,
            "doc_id": doc_id,
            "title": article.title,
            "publisher": article.publisher or "",
            "publisher_key": (article.publisher or "").casefold(),
            "published": article.published or "",
            "published_int": _date_number(article.published),
            "url": article.url or "",
            "lede": _lede(article.text),
        }
        entry = DocumentEntry(
            candidate.sha256,
            candidate.content_sha256,
            doc_id,
            article.title,
            article.publisher,
            article.published,
            article.url,
            chunk_ids,
            text_file,
        )
        prefix = len(article.title) + 1
        return _Staged(
            candidate,
            entry,
            texts=[f"{article.title}\n{c.text}" for c in chunks],
            metadatas=[{**base, "chunk": c.index, "start": c.start, "end": c.end} for c in chunks],
            sentence_spans=[[(s.start, s.end) for s in split_sentences(c.text, prefix)] for c in chunks],
            notes=article.notes,
        )

    def _embed_and_store(self, batch: list[_Staged], store: VectorStore, progress: _ChunkProgress) -> None:
        """Embed and upsert in windows of EMBED_BATCH_CHUNKS, reporting progress after each; then
        write each article's sentence vectors, which the commit's manifest will list."""
        items = [(s, text, cid, meta, spans) for s in batch for text, cid, meta, spans in zip(
            s.texts, s.entry.chunk_ids, s.metadatas, s.sentence_spans, strict=True)]
        sentences: dict[str, list[np.ndarray]] = {}
        for at in range(0, len(items), EMBED_BATCH_CHUNKS):
            window = items[at : at + EMBED_BATCH_CHUNKS]
            texts = [text for _, text, *_ in window]
            vectors, sentence_vectors = self.embedder.embed_with_sentences(texts, [spans for *_, spans in window])
            for (staged, *_), chunk_sentences in zip(window, sentence_vectors, strict=True):
                sentences.setdefault(staged.candidate.source, []).append(chunk_sentences)
            # Chroma stores the chunk alone; the title prefix is only for the embedding and keywords.
            documents = [t.split("\n", 1)[1] for t in texts]
            store.upsert([cid for _, _, cid, _, _ in window], vectors, documents, [m for *_, m, _ in window])
            progress.advance(len(window), window[-1][0].candidate.source)
        for staged in batch:
            staged.entry.sentence_file = sentence_vectors_lib.file_for(staged.entry.text_file)
            sentence_vectors_lib.save(self.index_dir / staged.entry.sentence_file, sentences[staged.candidate.source])

    # -- commit ----------------------------------------------------------------------------------

    def _commit(
        self,
        manifest: Manifest,
        staged: list[_Staged],
        removed: list[str],
        previous: dict,
        store: VectorStore,
        report: IngestReport,
    ) -> dict:
        """Write the new keyword index, then the manifest (the commit), then delete the chunks the
        new manifest no longer lists. Returns the keyword entries now committed."""
        replaced: list[str] = []
        for source in removed:
            replaced.extend(manifest.documents.pop(source).chunk_ids)
            report.removed.append(source)
        for item in staged:
            source = item.candidate.source
            old = manifest.documents.get(source)
            manifest.documents[source] = item.entry
            if old and old.sha256 == item.entry.sha256:
                continue  # staged again for its sentence vectors alone: the same chunks, kept
            (report.updated if old else report.added).append(source)
            if old:
                replaced.extend(old.chunk_ids)
            report.chunks_added += len(item.entry.chunk_ids)
        report.chunks_removed += len(replaced)
        if not (staged or removed or report.orphans_cleared or report.repaired) and manifest.keyword_dir:
            return previous
        manifest.generation += 1
        manifest.keyword_dir = f"keyword-{manifest.generation:06d}"
        keywords = self._keyword_index(manifest, staged, previous)
        keywords.save(self.index_dir / manifest.keyword_dir)
        manifest.save(self.index_dir)
        store.delete(replaced)
        return keywords.entries()

    def _keyword_index(self, manifest: Manifest, staged: list[_Staged], previous: dict) -> KeywordIndex:
        fresh_ids = [cid for s in staged for cid in s.entry.chunk_ids]
        fresh_tokens = tokenize([text for s in staged for text in s.texts])
        fresh_fields = [_keyword_fields(meta) for s in staged for meta in s.metadatas]
        fresh = dict(zip(fresh_ids, zip(fresh_tokens, fresh_fields, strict=True), strict=True))
        ids, tokens, published, publishers = [], [], [], []
        for entry in manifest.documents.values():
            for cid in entry.chunk_ids:
                chunk_tokens, meta = fresh.get(cid) or previous[cid]
                ids.append(cid)
                tokens.append(chunk_tokens)
                published.append(meta["published_int"])
                publishers.append(meta["publisher_key"])
        return KeywordIndex.build(ids, tokens, {"published_int": published, "publisher_key": publishers})

    def _clean_up(self, manifest: Manifest) -> None:
        """After the last commit, whether or not this run committed anything: delete what no
        manifest lists any more, here or in a run killed before its own clean-up (collections
        replaced by a rebuild, old keyword indexes, texts of replaced articles)."""
        drop_collections(
            self.settings,
            keep=manifest.collection or self.settings.collection,
            family=collection_family(self.settings, manifest.index_id),
            replaced=self._replaced_collection,
        )
        for folder in self.index_dir.glob("keyword-*"):
            if folder.name != manifest.keyword_dir:
                shutil.rmtree(folder, ignore_errors=True)
        listed = [f for e in manifest.documents.values() for f in (e.text_file, e.sentence_file) if f]
        keep = {f.split("/")[1] for f in listed}
        for article_file in (self.index_dir / ARTICLES).glob("*"):
            if article_file.name not in keep:
                article_file.unlink(missing_ok=True)


class _ChunkProgress:
    """Progress counted in chunks, the unit of the work that takes the time: one long article
    and a hundred short ones are not the same amount of work."""

    def __init__(self, prepared: list[_Staged], show: bool, on_progress: ProgressCallback | None):
        from tqdm import tqdm

        self.total = sum(len(s.texts) for s in prepared)
        self.done = 0
        self.on_progress = on_progress
        self.bar = tqdm(total=self.total, desc="ingest", unit="chunk", disable=not (show and self.total),
                        file=sys.stderr)

    def advance(self, chunks: int, source: str) -> None:
        self.done += chunks
        self.bar.set_postfix_str(Path(source).name[:40])
        self.bar.update(chunks)
        if self.on_progress:
            self.on_progress(self.done, self.total, source)

    def close(self) -> None:
        self.bar.close()


def _batches(prepared: list[_Staged], max_chunks: int | None) -> list[list[_Staged]]:
    """Whole articles, in batches of about `max_chunks` chunks (all in one when None), each to be
    committed on its own, so that a killed ingest loses at most one batch of work. Always at
    least one batch, maybe empty: removals and repairs are committed with the last."""
    if max_chunks is None:
        return [prepared]
    batches: list[list[_Staged]] = [[]]
    for item in prepared:
        if sum(len(s.texts) for s in batches[-1]) >= max_chunks:
            batches.append([])
        batches[-1].append(item)
    return batches


def _keyword_fields(metadata: dict) -> dict:
    return {"published_int": metadata["published_int"], "publisher_key": metadata["publisher_key"]}


def _keyword_entry(chunk: StoredChunk) -> tuple[list[str], dict]:
    """A chunk's keyword-index entry rebuilt from the vector store: tokens of its title and text
    (as embedded and indexed at ingest), and its filter fields."""
    title = chunk.metadata.get("title", "")
    return tokenize([f"{title}\n{chunk.text}"])[0], _keyword_fields(chunk.metadata)


def _write_atomically(path: Path, text: str) -> None:
    """A kill mid-write must not leave a truncated article that a manifest points to."""
    staged = path.with_suffix(path.suffix + ".tmp")
    staged.write_text(text)
    os.replace(staged, path)


def _lede(text: str, max_chars: int = 400) -> str:
    """The opening sentences: a news article states its subject there, and later sentences
    ("the event", "the bank") lean on it."""
    lede = ""
    for span in split_sentences(text)[:2]:
        if len(lede) + span.end - span.start > max_chars:
            break
        lede += text[span.start : span.end] + " "
    return lede.strip()


def _date_number(published: str | None) -> int:
    """YYYYMMDD as an int, so Chroma and numpy can filter date ranges; 0 when unknown."""
    if not published:
        return 0
    day = date.fromisoformat(published[:10])
    return day.year * 10000 + day.month * 100 + day.day


def _reason(exc: Exception) -> str:
    if isinstance(exc, UnreadableFile):
        return exc.reason
    if isinstance(exc, FileNotFoundError):
        return "file vanished during ingest"
    if isinstance(exc, PermissionError):
        return "permission denied"
    return str(exc) or type(exc).__name__
