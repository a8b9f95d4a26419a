"""The installed models: GGUF files in <models_dir>/llm/, listed with their origin in models.json.

A model is in the registry only once its file is complete and verified, so a file there is never
half a download. Ollama's models are listed too (without a file) once pulled or chosen.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from rag.models import ollama
from rag.models.progress import ModelError, size_text
from rag.settings import Settings

OLLAMA_PREFIX = "ollama:"


@dataclass(frozen=True)
class InstalledModel:
    name: str
    path: Path  # the GGUF file; Path() for a model that Ollama serves
    size_bytes: int
    sha256: str
    source: str

    @property
    def served_by_ollama(self) -> bool:
        return self.name.startswith(OLLAMA_PREFIX)


def llm_dir(settings: Settings) -> Path:
    return Path(settings.models_dir) / "llm"


def installed(settings: Settings) -> list[InstalledModel]:
    """What is installed, oldest first. A file deleted by hand no longer counts."""
    models = [_model(settings, row) for row in _read(settings)["models"]]
    return [m for m in models if m.served_by_ollama or m.path.is_file()]


def find_installed(name: str, settings: Settings) -> InstalledModel | None:
    return next((m for m in installed(settings) if m.name == name), None)


def default_model(settings: Settings) -> InstalledModel | None:
    """The model `rag model use` chose, else the one installed last, else None."""
    models = installed(settings)
    chosen = _read(settings)["default"]
    return next((m for m in models if m.name == chosen), models[-1] if models else None)


def record(model: InstalledModel, settings: Settings) -> None:
    """Add the model to the registry (replacing one of the same name): it is now the newest."""
    registry = _read(settings)
    registry["models"] = [row for row in registry["models"] if row["name"] != model.name]
    registry["models"].append(
        {
            "name": model.name,
            "file": model.path.name if not model.served_by_ollama else "",
            "size_bytes": model.size_bytes,
            "sha256": model.sha256,
            "source": model.source,
            "installed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
    )
    _write(settings, registry)


def use(name: str, settings: Settings) -> None:
    """Make an installed model the one RAG_LLM=auto answers with."""
    if find_installed(name, settings) is None:
        raise ModelError(f"{name} is not installed ({_installed_names(settings)}): rag model install {name}")
    registry = _read(settings)
    registry["default"] = name
    _write(settings, registry)


def remove(name: str, settings: Settings) -> str:
    """Delete the model (its file, or Ollama's copy) and forget it; what was done, in words."""
    model = find_installed(name, settings)
    if model is None:
        raise ModelError(f"{name} is not installed ({_installed_names(settings)})")
    if model.served_by_ollama:
        done = _delete_from_ollama(model, settings)
    else:
        done = f"deleted {model.path} ({size_text(model.size_bytes)})"
    registry = _read(settings)
    registry["models"] = [row for row in registry["models"] if row["name"] != name]
    if registry["default"] == name:
        registry["default"] = None
    _write(settings, registry)  # first, so that no moment lists a model whose file is gone
    if not model.served_by_ollama:
        model.path.unlink(missing_ok=True)
    return done


def _delete_from_ollama(model: InstalledModel, settings: Settings) -> str:
    ollama_name = model.name.removeprefix(OLLAMA_PREFIX)
    if ollama.delete(ollama_name, settings):
        return f"deleted {ollama_name} from Ollama at {settings.ollama_url}"
    # Forgotten all the same: an Ollama gone for good must not keep the model listed here forever.
    return (f"forgot {model.name}; Ollama does not answer at {settings.ollama_url}, so it may still hold it "
            f"(`ollama rm {ollama_name}` deletes it)")


def _installed_names(settings: Settings) -> str:
    names = [m.name for m in installed(settings)]
    return "installed: " + ", ".join(names) if names else "none is installed"


def _model(settings: Settings, row: dict) -> InstalledModel:
    path = llm_dir(settings) / row["file"] if row["file"] else Path()
    return InstalledModel(row["name"], path, row["size_bytes"], row["sha256"], row["source"])


def _registry_file(settings: Settings) -> Path:
    return llm_dir(settings) / "models.json"


def _read(settings: Settings) -> dict:
    try:
        return json.loads(_registry_file(settings).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {"default": None, "models": []}
    except ValueError as exc:
        raise ModelError(f"{_registry_file(settings)} is damaged ({exc}): delete it and install again") from exc


def _write(settings: Settings, registry: dict) -> None:
    """Written whole to a temporary file and renamed over the old one, so a reader never sees half."""
    path = _registry_file(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    temporary.write_text(json.dumps(registry, indent=2) + "\n", encoding="utf-8")
    temporary.replace(path)
