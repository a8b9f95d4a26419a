"""Start and stop a real `chroma run` server on a free loopback port, for tests."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests.processes import free_port, stop_process

CHROMA = Path(sys.executable).parent / "chroma"


class ChromaServer:
    def __init__(self, data_dir: Path, port: int | None = None):
        self.data_dir = data_dir
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 60) -> ChromaServer:
        command = [
            str(CHROMA),
            "run",
            "--path",
            str(self.data_dir),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
        ]
        with open(self.data_dir.parent / f"chroma-{self.port}.log", "ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"{self.url}/api/v2/heartbeat", timeout=1)
                return self
            except OSError:
                if self.process.poll() is not None:
                    raise RuntimeError(f"chroma run exited with {self.process.returncode}") from None
                time.sleep(0.3)
        raise TimeoutError(f"chroma run did not answer on {self.url} within {timeout}s")

    def stop(self, kill: bool = False) -> None:
        stop_process(self.process, timeout=30, kill=kill)
