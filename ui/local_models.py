"""The sidebar's "Answers" section, apart from Gradio's components: who answers and why, the model
picker, and a local model installing in the background while the chat keeps answering."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, replace
from urllib.parse import urlsplit

from rag import models
from rag.assistant import Assistant
from rag.settings import Settings
from ui import render

log = logging.getLogger(__name__)

RECOMMENDED = "qwen2.5-coder-1.5b"  # the model the evals measure
# The install button's estimate, from README's measures on 2 cores: Qwen's 1.1 GB from an empty
# pip cache in 60 s, and the runtime (llama-cpp-python) built from source in about 5 minutes.
DOWNLOAD_BYTES_PER_S = 18e6
RUNTIME_BUILD_S = 5 * 60
# The picker's values: these two, an installed model's name after MODEL, a server's URL after SERVER.
AUTO, QUOTED = "auto", "extractive"
MODEL, SERVER = "model:", "server:"
QUOTED_CHOICE = "quoted, no model"
QUOTED_HEADLINE = f"{render.QUOTED[0].upper()}{render.QUOTED[1:]}"  # "Quoted from the articles"


@dataclass(frozen=True)
class Answerer:
    """Who answers, in a few words, and why, in a smaller line that says what was looked for."""

    headline: str
    why: str


@dataclass(frozen=True)
class Sidebar:
    """The sidebar's "Answers" section: who answers, the picker's entries as (label, value) and
    its value, and whether no model is here, so that installing one comes first."""

    answerer: Answerer
    choices: list[tuple[str, str]]
    picked: str
    offer_install: bool


@dataclass(frozen=True)
class InstallState:
    name: str = ""
    progress: models.Progress | None = None
    error: str = ""
    running: bool = False


class LocalModels:
    """Which model the chat answers with. The choice is the server's, like the index: this chat is
    one person's, on their machine."""

    def __init__(self, settings: Settings, assistant: Assistant):
        self.settings = settings
        self.assistant = assistant
        self.picked = QUOTED if settings.llm == "extractive" else AUTO
        self._install = InstallState()
        self._install_lock = threading.Lock()

    @property
    def backend(self) -> str:
        """The backend the chat asks with: a picked model or server is what `auto` resolves to."""
        return QUOTED if self.picked == QUOTED else AUTO

    # -- who answers -------------------------------------------------------------------------------

    def sidebar(self) -> Sidebar:
        """Who answers, what the picker offers, and whether to offer an install: from one look at
        the ports, which may each wait for a server that is slow to say it is not one."""
        servers = self.assistant.model_servers()
        installed = models.installed(self.settings)
        has_model = bool(self.settings.gguf_path or self.settings.openai_base_url or installed or servers)
        # The labels are short enough for the 300-px sidebar's dropdown, which cannot wrap them.
        choices = [("Automatic", AUTO)]
        choices += [(m.name, MODEL + m.name) for m in installed]
        choices += [(f"server at {urlsplit(url).netloc}", SERVER + url) for url in servers]
        choices.append((QUOTED_CHOICE, QUOTED))
        picked = self.picked if self.picked in {value for _, value in choices} else AUTO
        return Sidebar(self._answerer(has_model), choices, picked, offer_install=not has_model)

    def _answerer(self, has_model: bool) -> Answerer:
        if self.picked == QUOTED:
            return Answerer(QUOTED_HEADLINE, "Chosen under “Answer with” below: no model writes the answers.")
        try:
            model, reason = self.assistant.answerer()
        except RuntimeError as exc:  # the model configured or found cannot be used
            return Answerer("No model can answer", f"The model cannot be used: {exc}")
        if model:
            return Answerer(f"Written by {render.model_label(model)}", _sentence(reason))
        # The reason says what was looked for (the model file, the ports): it stays, in the small line.
        install = "" if has_model else " Install one below."
        return Answerer(QUOTED_HEADLINE, _sentence(reason) + install)

    def pick(self, value: str) -> None:
        """Answer the chat's questions with this picker entry from now on."""
        if value.startswith(MODEL):
            self._use_installed(value.removeprefix(MODEL), "the installed model, chosen here")
        elif value.startswith(SERVER):
            url = value.removeprefix(SERVER)
            # Its own first model, not the one RAG_OPENAI_MODEL names for another server.
            server = self.settings.replaced(llm="openai", openai_base_url=url, openai_model=None)
            self.assistant.use_model(server, f"the model server at {url}, chosen here")
        elif value == AUTO:
            self.assistant.reset_backend()
        self.picked = value

    def _use_installed(self, name: str, reason: str) -> None:
        models.use(name, self.settings)  # the default for `rag ask` too
        chosen = next(m for m in models.installed(self.settings) if m.name == name)
        if chosen.served_by_ollama:  # `auto` finds Ollama's default model itself
            self.assistant.reset_backend()
            return
        self.assistant.use_model(self.settings.with_overrides(llm="llamacpp", gguf_path=chosen.path),
                                 reason)

    # -- installing --------------------------------------------------------------------------------

    def catalogue_choices(self) -> list[tuple[str, str]]:
        """The models to install, as (label, value): only the name fits the sidebar's dropdown."""
        return [(e.name, e.name) for e in models.catalogue()]

    def about(self, name: str) -> str:
        """A catalogue model's size, licence and what to expect of it, for the line above its choice."""
        entry = models.find(name)
        return f"{models.size_text(entry.size_bytes)}, {entry.licence}. {entry.notes}" if entry else ""

    def install_label(self, name: str) -> str:
        """The install button, with the download's size and how long it should take."""
        entry = models.find(name)
        if entry is None:
            return "Install"
        seconds = entry.size_bytes / DOWNLOAD_BYTES_PER_S + (0 if models.runtime_ready() else RUNTIME_BUILD_S)
        minutes = max(1, round(seconds / 60))
        return f"Install ({models.size_text(entry.size_bytes)}, about {minutes} minute{'s' * (minutes > 1)})"

    def install_state(self) -> InstallState:
        return self._install

    def start_install(self, name: str) -> InstallState:
        """Install the model in the background, unless one is already installing."""
        with self._install_lock:
            if not self._install.running:
                self._install = InstallState(name, running=True)
                threading.Thread(target=self._run_install, args=(name,), name=f"install-{name}", daemon=True).start()
            return self._install

    def _run_install(self, name: str) -> None:
        error = ""
        try:
            models.install(name, self.settings, progress=self._record)
            # Loaded here rather than by the first question, which would wait for it.
            self._use_installed(name, "the model just installed here")
            self.picked = MODEL + name
        except (models.ModelError, RuntimeError, OSError) as exc:
            error = str(exc)
        except Exception as exc:  # noqa: BLE001 - the page must say the install ended, not poll forever
            log.exception("installing %s failed", name)
            error = f"the install failed: {exc}"
        with self._install_lock:
            self._install = replace(self._install, error=error, running=False)

    def _record(self, progress: models.Progress) -> None:
        with self._install_lock:
            self._install = replace(self._install, progress=progress)


def _sentence(reason: str) -> str:
    return f"{reason[0].upper()}{reason[1:]}." if reason else ""


def answerer_report(answerer: Answerer) -> str:
    """Who answers, as HTML: the reason may hold a file path, which Markdown would mangle."""
    return f'<div class="headline">{render.esc(answerer.headline)}</div><div class="why">{render.esc(answerer.why)}</div>'


def install_report(state: InstallState) -> str:
    """The install's progress bar and its line, or why it failed, as HTML."""
    if not state.name:
        return ""
    if state.error:
        return f'<div class="install-error">Installing {render.esc(state.name)} failed: {render.esc(state.error)}</div>'
    if not state.running:
        return f'<div class="install-done">{render.esc(state.name)} is installed and answers now.</div>'
    progress = state.progress
    if progress is None:
        return f"<progress></progress><div>Starting to install {render.esc(state.name)}…</div>"
    bar = f'<progress value="{progress.done}" max="{progress.total}"></progress>' if progress.total else "<progress></progress>"
    return f"{bar}<div>{render.esc(progress.message)}</div>"
