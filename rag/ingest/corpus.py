"""The corpus folder as articles: which files are read, each one's content hash, and what the
folder's metadata.json (a "sidecar") says about it.

A sidecar maps file names to {title, publisher, published, url}; what it gives wins over what the
reader found in the file, and it is part of the file's hash, so editing it re-ingests the article.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import replace
from functools import lru_cache
from pathlib import Path

from rag.ingest.article import Article
from rag.ingest.documents import SUPPORTED_SUFFIXES

SIDECAR_NAME = "metadata.json"  # optional per-folder {file name: {title, publisher, published, url}}


def walk_supported(
    root: Path, skipped: list[tuple[str, str]], source_of: Callable[[Path], str]
) -> Iterator[Path]:
    """Supported files below `root`, sorted, without following symlinked folders (a link loop
    would never end), reporting those folders and links that lead nowhere. Skips are named like
    every other source, so the report reads the same whatever form `root` was given in. Each skip is
    added to `skipped` as (source, reason)."""
    for folder, subfolders, files in os.walk(root, followlinks=False):
        subfolders[:] = sorted(d for d in subfolders if not d.startswith("."))
        for name in subfolders:
            if (Path(folder) / name).is_symlink():
                skipped.append((source_of(Path(folder) / name), "symlinked folder, not followed"))
        for name in sorted(files):
            path = Path(folder) / name
            if name.startswith(".") or name == SIDECAR_NAME:
                continue
            if path.suffix.lower() not in SUPPORTED_SUFFIXES:
                skipped.append((source_of(path), f"unsupported file type {path.suffix or '(none)'}"))
                continue
            if path.is_symlink() and not path.exists():
                skipped.append((source_of(path), "broken or looping symlink"))
                continue
            yield path


def hash_file(path: Path, max_bytes: int) -> str:
    size = path.stat().st_size
    if size > max_bytes:
        raise ValueError(f"too large ({size / 2**20:.1f} MB > {max_bytes / 2**20:.0f} MB)")
    return hashlib.sha256(path.read_bytes()).hexdigest()


def with_metadata_hash(content_sha: str, sidecar: dict) -> str:
    if not sidecar:
        return content_sha
    return hashlib.sha256((content_sha + json.dumps(sidecar, sort_keys=True)).encode()).hexdigest()


def sidecar_entry(path: Path) -> dict:
    sidecar = path.parent / SIDECAR_NAME
    if not sidecar.exists():
        return {}
    return _read_sidecar(sidecar, sidecar.stat().st_mtime_ns).get(path.name, {})


@lru_cache(maxsize=64)
def _read_sidecar(sidecar: Path, modified_ns: int) -> dict:
    """Parsed once per folder and version, not once per file: a folder of thousands of articles
    would otherwise parse the same file thousands of times."""
    try:
        return json.loads(sidecar.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{sidecar} is not valid JSON: {exc}") from exc


def with_sidecar(article: Article, sidecar: dict) -> Article:
    known = {k: v for k, v in sidecar.items() if k in ("title", "publisher", "published", "url") and v}
    return replace(article, **known)
