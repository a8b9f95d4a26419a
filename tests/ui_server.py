"""The real chat server for the UI tests, as a pytest plugin: `pytest_plugins = ["tests.ui_server"]`.

Being a plugin, its session fixture is shared by every UI test module, so the server (about 30 s
to start: Gradio, torch and the model) starts once. Test modules use its fixtures rather than
importing it, which would stop pytest from rewriting its asserts.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import PROJECT_ROOT, make_project
from tests.processes import free_port, stop_process

START_TIMEOUT_S = 120  # Gradio import ~11 s, model ~5 s, ingest ~5 s, on two busy cores
WARM_UP_QUESTION = "What did EXIM approve under Project Vault?"
RAG_SERVE = [sys.executable, "-m", "rag.cli", "serve"]

# Indexes the copied corpus in the serving process itself, so torch and the model load once.
SERVE_INDEXED = """
import sys
from rag.index.ingestor import Ingestor
from rag.settings import Settings
from ui.app import serve
settings = Settings()
print(Ingestor(settings).run(show_progress=False).summary(), flush=True)
serve(settings, host=sys.argv[1], port=int(sys.argv[2]))
"""


@dataclass
class Server:
    url: str
    process: subprocess.Popen
    root: Path  # the project folder: corpus/, index/, feedback.jsonl
    log: Path

    @property
    def feedback_file(self) -> Path:
        return self.root / "feedback.jsonl"

    def stop(self) -> None:
        stop_process(self.process, timeout=20)


def server_env(root: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    env.update(
        RAG_CORPUS_DIR=str(root / "corpus"),
        RAG_INDEX_DIR=str(root / "index"),
        RAG_FEEDBACK_FILE=str(root / "feedback.jsonl"),
        GRADIO_ANALYTICS_ENABLED="False",
        HF_HUB_OFFLINE="1",
        OMP_WAIT_POLICY="PASSIVE",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


def start(command: list[str], root: Path, log: Path, port: int, **env: str) -> Server:
    with open(log, "w") as out:
        process = subprocess.Popen(
            command, cwd=root, env=server_env(root, **env), stdout=out, stderr=subprocess.STDOUT
        )
    server = Server(f"http://127.0.0.1:{port}/", process, root, log)
    try:
        wait_until_up(server)
    except BaseException:
        server.stop()
        raise
    return server


def wait_until_up(server: Server, timeout: float = START_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(
                f"the server exited ({server.process.returncode}):\n{server.log.read_text()[-3000:]}"
            )
        try:
            with urllib.request.urlopen(server.url + "gradio_api/info", timeout=5):
                return
        except urllib.error.HTTPError:
            return  # it answers (a login wall counts)
        except OSError:
            time.sleep(1)
    raise TimeoutError(f"the server did not answer within {timeout:.0f}s:\n{server.log.read_text()[-3000:]}")


def client(url: str, **options):
    from gradio_client import Client

    return Client(url, verbose=False, **options)


@dataclass
class Launcher:
    """Runs `rag serve` the way a user would, and stops whatever it started."""

    log_dir: Path
    started: list[Server] = field(default_factory=list)

    def run(self, root: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
        """`rag serve ARGS` expected to exit by itself."""
        return subprocess.run(
            [*RAG_SERVE, *args],
            cwd=root,
            env=server_env(root, **env),
            capture_output=True,
            text=True,
            timeout=START_TIMEOUT_S,
        )

    def serve(self, root: Path, **env: str) -> Server:
        port = free_port()
        server = start(
            [*RAG_SERVE, "--port", str(port)], root, self.log_dir / f"serve-{port}.log", port, **env
        )
        self.started.append(server)
        return server

    def stop_all(self) -> None:
        for server in self.started:
            server.stop()


@contextmanager
def warm_chat(root: Path, **env: str) -> Iterator[Server]:
    """The chat over its own indexed copy of the bundled corpus in `root` (uploads change it),
    warmed up by one question so that measured times are warm."""
    make_project(root)
    port = free_port()
    server = start(
        [sys.executable, "-c", SERVE_INDEXED, "127.0.0.1", str(port)], root, root / "server.log", port, **env
    )
    try:
        client(server.url).predict(WARM_UP_QUESTION, api_name="/ask")
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def ui_server(tmp_path_factory) -> Iterator[Server]:
    with warm_chat(tmp_path_factory.mktemp("ui-project")) as server:
        yield server


@pytest.fixture
def ui_client():
    """A gradio_client for a server URL: ui_client(url, auth=(user, password))."""
    return client


@pytest.fixture
def launcher(tmp_path) -> Launcher:
    launched = Launcher(tmp_path)
    yield launched
    launched.stop_all()


@pytest.fixture(scope="session")
def output_dir() -> Path:
    """Screenshots and measurements, kept after the run (test-output/ is git-ignored)."""
    folder = PROJECT_ROOT / "test-output" / "ui"
    folder.mkdir(parents=True, exist_ok=True)
    return folder
