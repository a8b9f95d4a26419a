"""Local language models: a catalogue, installs with progress, and the one RAG_LLM=auto uses.

    install("smollm2-135m", settings, progress=print)  # fetch, verify, and install the runtime
    use("smollm2-135m", settings)                      # the default for RAG_LLM=auto
    default_model(settings).path                        # .models/llm/smollm2-135m.gguf
"""

from rag.models.catalogue import CatalogueEntry, catalogue, find
from rag.models.install import install, use
from rag.models.ollama import ollama_models
from rag.models.progress import ModelError, Progress, size_text
from rag.models.runtime import runtime_ready
from rag.models.store import InstalledModel, default_model, find_installed, installed, remove

__all__ = [
    "CatalogueEntry",
    "InstalledModel",
    "ModelError",
    "Progress",
    "catalogue",
    "default_model",
    "find",
    "find_installed",
    "install",
    "installed",
    "ollama_models",
    "remove",
    "runtime_ready",
    "size_text",
    "use",
]
