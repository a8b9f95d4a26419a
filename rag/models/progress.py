"""What an install tells its caller while it runs, and the one error it raises."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

# A terminal or a chat redraws its progress line at most this often.
REPORT_INTERVAL_S = 0.25


class ModelError(Exception):
    """A model cannot be installed, found or used; the message is one line meant for the user."""


@dataclass(frozen=True)
class Progress:
    stage: str  # "download", "assemble", "verify", "runtime", "done"
    done: int  # bytes so far (0 when unknown, as in the runtime's build)
    total: int  # bytes in all (0 when unknown)
    message: str  # one line for humans


class Reporter:
    """Hands Progress to the caller's callback: every new stage and every finished step at once,
    and otherwise at most every REPORT_INTERVAL_S, so a million chunks do not flood the screen."""

    def __init__(self, callback: Callable[[Progress], None] | None):
        self.callback = callback
        self.stage = ""
        self.last_sent = 0.0

    def __call__(self, stage: str, done: int, total: int, message: str) -> None:
        now = time.monotonic()
        finished = total > 0 and done == total
        if self.callback is None or (stage == self.stage and not finished and now - self.last_sent < REPORT_INTERVAL_S):
            return
        self.stage, self.last_sent = stage, now
        self.callback(Progress(stage, done, total, message))


def size_text(n_bytes: int) -> str:
    """150 MB, 1.1 GB: sizes as a person reads them."""
    if n_bytes >= 1e9:
        return f"{n_bytes / 1e9:.1f} GB"
    if n_bytes >= 1e6:
        return f"{n_bytes / 1e6:.0f} MB"
    return f"{n_bytes / 1e3:.0f} kB"
