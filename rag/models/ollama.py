"""Ollama's models, when Ollama answers on this machine: listed, pulled with its progress, deleted."""

from __future__ import annotations

import json

from rag.models.progress import ModelError, Reporter, size_text
from rag.settings import Settings

# Listing must not hold up `rag model list` when Ollama is not running.
LIST_TIMEOUT_S = 0.5


def ollama_models(settings: Settings) -> list[tuple[str, int]]:
    """The (name, size in bytes) of each model Ollama has; none when it does not answer."""
    import httpx

    try:
        reply = httpx.get(f"{settings.ollama_url}/api/tags", timeout=LIST_TIMEOUT_S)
        return [(m["name"], int(m.get("size", 0))) for m in reply.json()["models"]]
    except (httpx.HTTPError, ValueError, KeyError, TypeError):
        return []


def pull(name: str, settings: Settings, report: Reporter) -> int:
    """Have Ollama pull the model; its size in bytes."""
    import httpx

    url = f"{settings.ollama_url}/api/pull"
    try:
        with httpx.stream("POST", url, json={"model": name, "stream": True}, timeout=60) as response:
            if response.status_code != 200:
                raise ModelError(f"Ollama at {settings.ollama_url} answered {response.status_code} to pulling {name}")
            for line in response.iter_lines():
                _show(json.loads(line) if line.strip() else {}, name, report)
    except httpx.HTTPError as exc:
        raise ModelError(f"Ollama does not answer at {settings.ollama_url} ({exc}): is `ollama serve` running?") from exc
    sizes = dict(ollama_models(settings))
    if name not in sizes and f"{name}:latest" not in sizes:
        raise ModelError(f"Ollama finished pulling {name} but does not list it")
    return sizes.get(name, sizes.get(f"{name}:latest", 0))


def delete(name: str, settings: Settings) -> bool:
    """Have Ollama delete the model, as `ollama rm` does; False when Ollama does not answer."""
    import httpx

    try:
        reply = httpx.request("DELETE", f"{settings.ollama_url}/api/delete", json={"model": name}, timeout=30)
    except httpx.HTTPError:
        return False
    if reply.status_code not in (200, 404):  # 404: Ollama no longer has it, which is what was asked
        raise ModelError(f"Ollama at {settings.ollama_url} answered {reply.status_code} to deleting {name}: {reply.text}")
    return True


def _show(event: dict, name: str, report: Reporter) -> None:
    if "error" in event:
        raise ModelError(f"Ollama could not pull {name}: {event['error']}")
    done, total = int(event.get("completed", 0)), int(event.get("total", 0))
    status = event.get("status", "")
    if total:
        report("download", done, total, f"Ollama: {status} ({size_text(done)} of {size_text(total)})")
    elif status:
        report("download", 0, 0, f"Ollama: {status}")
