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
    with warm_chat(tmp_path_factory.mktemp("robustness-ui")) as server:
        yield server
