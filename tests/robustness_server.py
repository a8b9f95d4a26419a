"""The chat server of the robustness tests, as a pytest plugin: `pytest_plugins = ["tests.ui_server",
"tests.robustness_server"]`.

A server of their own: they upload dozens of articles, with hostile names and content, while the
UI tests that share `ui_server` count the articles its index holds.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.ui_server import Server, warm_chat


@pytest.fixture(scope="session")
def robustness_server(tmp_path_factory) -> Iterator[Server]:
    # These tests are about what the chat shows, not about the answerer's confidence: every
    # candidate answer is shown, so hostile text in one reaches the page whatever its confidence.
    with warm_chat(tmp_path_factory.mktemp("robustness-ui"), RAG_MIN_CONFIDENCE="0") as server:
        yield server
