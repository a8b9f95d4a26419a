"""The chat server of the robustness tests, as a pytest plugin: `pytest_plugins = ["tests.ui_server",
"tests.robustness_server"]`.

A server of their own: they upload dozens of articles, with hostile names and content, while the
UI tests that share `ui_server` count the articles its index holds.
"""

from __future__ import annotations

import sys

import pytest

from tests.conftest import make_project
from tests.processes import free_port
from tests.ui_server import SERVE_INDEXED, WARM_UP_QUESTION, Server, client, start


@pytest.fixture(scope="session")
def robustness_server(tmp_path_factory) -> Server:
    root = tmp_path_factory.mktemp("robustness-ui")
    make_project(root)
    port = free_port()
    server = start(
        [sys.executable, "-c", SERVE_INDEXED, "127.0.0.1", str(port)], root, root / "server.log", port
    )
    try:
        client(server.url).predict(WARM_UP_QUESTION, api_name="/ask")
        yield server
    finally:
        server.stop()
