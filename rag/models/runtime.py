"""The LLM runtime, llama-cpp-python, installed when the first local model is: built from source
for this CPU by pip, from requirements-llm.lock.

`python -m rag.models` installs it alone (scripts/setup --llm runs it), so the build flags live
here only.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

from rag.models.progress import ModelError, Reporter

RUNTIME_LOCK = Path(__file__).resolve().parents[2] / "requirements-llm.lock"
PACKAGE = "llama_cpp_python"
# Built for this CPU, but without AMX: virtual machines can list AMX among the CPU's features yet
# fault on its instructions (the llama.cpp server died on its first answer here).
NO_AMX = "-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
CMAKE_ARGS = f"-DLLAVA_BUILD=OFF -DCMAKE_C_FLAGS='{NO_AMX}' -DCMAKE_CXX_FLAGS='{NO_AMX}'"
BUILD_PARALLEL_LEVEL = "2"  # two jobs: more runs out of memory on small machines


def runtime_ready() -> bool:
    """llama-cpp-python is importable, at the version the lock pins."""
    if importlib.util.find_spec("llama_cpp") is None:
        return False
    try:
        return importlib.metadata.version(PACKAGE) == pinned_version()
    except importlib.metadata.PackageNotFoundError:
        return False


def pinned_version() -> str:
    found = re.search(rf"^{PACKAGE}==(\S+)", _lock_text(), re.MULTILINE | re.IGNORECASE)
    if not found:
        raise ModelError(f"{RUNTIME_LOCK} pins no {PACKAGE}")
    return found.group(1)


def install_command() -> list[str]:
    return [sys.executable, "-m", "pip", "install", "--verbose", "--progress-bar", "off", "-r", str(RUNTIME_LOCK)]


def build_environment() -> dict[str, str]:
    return dict(
        os.environ,
        CMAKE_ARGS=CMAKE_ARGS,
        CMAKE_BUILD_PARALLEL_LEVEL=BUILD_PARALLEL_LEVEL,
        PIP_DISABLE_PIP_VERSION_CHECK="1",
    )


def ensure_runtime(report: Reporter) -> None:
    """Install the runtime unless it is there, passing on pip's output line by line (the build
    takes about 5 minutes on 2 cores; pip caches the wheel it builds)."""
    if runtime_ready():
        return
    report("runtime", 0, 0, "installing llama-cpp-python, built for this CPU (about 5 minutes on 2 cores)")
    lines = []
    with subprocess.Popen(install_command(), env=build_environment(), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True) as pip:
        for line in pip.stdout:
            if line.strip():
                lines.append(line.strip())
                report("runtime", 0, 0, line.strip()[:200])
    if pip.returncode != 0:
        raise ModelError(f"pip could not install llama-cpp-python: {lines[-1] if lines else pip.returncode}")
    importlib.invalidate_caches()


def _lock_text() -> str:
    try:
        return RUNTIME_LOCK.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ModelError(f"{RUNTIME_LOCK} is missing: the runtime is installed from a checkout of the project") from exc
