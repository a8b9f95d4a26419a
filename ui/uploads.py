"""Articles added from the chat: copied into `<corpus>/uploads/` and ingested at once.

The stored name comes from the uploaded one but cannot steer where the file lands: folders,
`..`, leading dots and odd characters are dropped, and a taken name gets a numbered suffix.
Uploads are ingested one batch at a time; a file the ingest skips is deleted again, with its
reason reported, and the rest of the batch is kept.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from rag import SUPPORTED_SUFFIXES, Embedder, Ingestor, IngestReport, Manifest
from rag.settings import Settings

UPLOADS_FOLDER = "uploads"
JOURNAL_NAME = ".ingesting"  # a leading dot: ingest never reads it as an article
_MAX_STEM_CHARS = 80
_UNSAFE_CHARS = re.compile(r"[^A-Za-z0-9._-]+")

Progress = Callable[[int, int, str], None]


class RejectedUpload(Exception):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass
class FileOutcome:
    name: str  # as uploaded
    added: bool
    message: str


@dataclass
class UploadResult:
    files: list[FileOutcome] = field(default_factory=list)
    report: IngestReport | None = None

    @property
    def added(self) -> int:
        return sum(f.added for f in self.files)


def safe_name(uploaded: str) -> str:
    """A plain file name with a supported suffix, derived from an untrusted one."""
    name = PurePosixPath(uploaded.replace("\\", "/")).name
    stem, dot, suffix = name.rpartition(".")
    suffix = f".{suffix.lower()}" if dot else ""
    if suffix not in SUPPORTED_SUFFIXES:
        allowed = ", ".join(sorted(SUPPORTED_SUFFIXES))
        raise RejectedUpload(f"unsupported file type '{suffix or name}' (allowed: {allowed})")
    stem = _UNSAFE_CHARS.sub("-", stem).strip(".-_")[:_MAX_STEM_CHARS].strip(".-_")
    return (stem or "article") + suffix


def claim_path(folder: Path, name: str) -> Path:
    """Create an empty file under a free variant of `name` and return its path. Creating it
    exclusively means two uploads of the same name can never overwrite each other."""
    stem, suffix = name.rsplit(".", 1)
    for attempt in range(1, 10_000):
        candidate = folder / (name if attempt == 1 else f"{stem}-{attempt}.{suffix}")
        try:
            os.close(os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
            return candidate
        except FileExistsError:
            continue
    raise RejectedUpload(f"too many files named {name}")


def discard_copies(paths: list[Path], folder: Path) -> None:
    """Delete these files, and the folders that held only them, if they lie in `folder` (where
    Gradio keeps a copy of every upload): once handled, an upload is in the corpus or refused."""
    folder = folder.resolve()
    for path in paths:
        path = path.resolve()
        if not path.is_relative_to(folder) or path == folder:
            continue
        path.unlink(missing_ok=True)
        if path.parent != folder:
            with contextlib.suppress(OSError):  # not empty: another upload's file is there too
                path.parent.rmdir()


class Library:
    """Adds uploaded files to the corpus and the index. The Retriever notices the new manifest,
    so an added article is searchable by the next question.

    The names being ingested are written to a journal first: a server stopped mid-ingest leaves
    files in the uploads folder that the index does not hold, and the next start removes them."""

    def __init__(self, settings: Settings, embedder: Embedder | None = None):
        self.settings = settings
        self.folder = settings.corpus_dir / UPLOADS_FOLDER
        self._journal = self.folder / JOURNAL_NAME
        self._ingestor = Ingestor(settings, embedder)
        self._lock = threading.Lock()
        self._remove_unfinished()

    def add(self, uploaded: list[Path], on_progress: Progress | None = None) -> UploadResult:
        with self._lock:
            result = UploadResult()
            stored: dict[Path, str] = {}
            for path in uploaded:
                try:
                    stored[self._store(path)] = path.name
                except RejectedUpload as exc:
                    result.files.append(FileOutcome(path.name, False, exc.reason))
            if stored:
                result.report = self._ingest(list(stored), on_progress)
                result.files += self._outcomes(stored, result.report)
            self._journal.unlink(missing_ok=True)
            return result

    def _remove_unfinished(self) -> None:
        """Delete the uploads an interrupted ingest left in the corpus but not in the index."""
        try:
            names = self._journal.read_text().split()
        except FileNotFoundError:
            return
        manifest = Manifest.load(self.settings.index_dir)
        sources = [PurePosixPath(source) for source in manifest.documents] if manifest else []
        indexed = {source.name for source in sources if source.parent.name == UPLOADS_FOLDER}
        for name in names:
            if name not in indexed:
                (self.folder / name).unlink(missing_ok=True)
        self._journal.unlink()

    def _ingest(self, paths: list[Path], on_progress: Progress | None) -> IngestReport:
        try:
            return self._ingestor.run(paths, show_progress=False, on_progress=on_progress)
        except BaseException:
            for path in paths:  # the index is unchanged, so the corpus must be too
                path.unlink(missing_ok=True)
            raise

    def _store(self, path: Path) -> Path:
        name = safe_name(path.name)
        size = path.stat().st_size
        if size > self.settings.max_file_bytes:
            limit = self.settings.max_file_bytes / 2**20
            raise RejectedUpload(f"too large ({size / 2**20:.1f} MB; the limit is {limit:.0f} MB)")
        self.folder.mkdir(parents=True, exist_ok=True)
        target = claim_path(self.folder, name)
        with open(self._journal, "a") as journal:  # before any byte is copied: see Library
            journal.write(target.name + "\n")
            journal.flush()
            os.fsync(journal.fileno())
        shutil.copyfile(path, target)
        return target

    def _outcomes(self, stored: dict[Path, str], report: IngestReport) -> list[FileOutcome]:
        # Every stored file sits in the uploads folder under a unique name, so the name alone
        # identifies it among the report's sources.
        skipped = {PurePosixPath(source).name: reason for source, reason in report.skipped}
        added = {PurePosixPath(source).name: source for source in report.added + report.updated}
        manifest = Manifest.load(self.settings.index_dir)
        outcomes = []
        for path, uploaded_name in stored.items():
            if path.name in added:
                entry = manifest.documents[added[path.name]]
                passages = len(entry.chunk_ids)
                message = f"added “{entry.title}” ({passages} passage{'s' if passages != 1 else ''}) as {path.name}"
                outcomes.append(FileOutcome(uploaded_name, True, message))
                continue
            path.unlink(missing_ok=True)  # not indexed: keep the corpus folder to what the index holds
            reason = skipped.get(path.name, "already in the index")
            outcomes.append(FileOutcome(uploaded_name, False, _readable(reason)))
        return outcomes


def _readable(reason: str) -> str:
    """Skip reasons name the stored copy's path; the user knows the file by its own name."""
    return re.sub(r"^duplicate of (.+)$", r"already in the index (same content as \1)", reason)
