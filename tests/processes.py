"""What every test server shares: a free loopback port, and a stop that cannot hang."""

from __future__ import annotations

import socket
import subprocess


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def stop_process(process: subprocess.Popen | None, timeout: float = 20, kill: bool = False) -> None:
    """Ask the process to stop (or kill it at once), and kill it if it has not stopped in time."""
    if process is None or process.poll() is not None:
        return
    process.kill() if kill else process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
