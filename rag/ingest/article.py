"""The `Article` every reader gives, and the error for a file that cannot become one."""

from __future__ import annotations

from dataclasses import dataclass


class UnreadableFile(Exception):
    """A file that cannot become an article; `reason` is short and meant for people."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Article:
    text: str
    title: str
    publisher: str | None = None
    published: str | None = None
    url: str | None = None
    notes: tuple[str, ...] = ()  # what the ingest report should say about how it was read


def short_reason(exc: Exception, limit: int = 80) -> str:
    """A library's error in one short line, for an UnreadableFile's reason."""
    message = " ".join(str(exc).split()) or exc.__class__.__name__
    return message if len(message) <= limit else message[: limit - 1] + "…"
