"""Who answers in the chat: the extractive answer shown while a model reads, the model chosen or
installed taking over without a restart, and the settings area saying once which one answers."""

from __future__ import annotations

import re
import time
from types import SimpleNamespace
from urllib.parse import urlsplit

import pytest

from rag.answer.backends import LLMUnavailable
from rag.answer.retrieve import Passage
from rag.assistant import Assistant, Final, Provisional, Replace, Sources, Token
from rag.models import Progress
from rag.settings import Settings
from tests.llm_server import BrokenServer
from tests.processes import free_port
from tests.test_llm import DFC_QUESTION, ScriptedChat
from tests.test_ui import answer
from ui.chat import ChatService
from ui.local_models import (
    AUTO,
    QUOTED,
    RECOMMENDED,
    SERVER,
    Answerer,
    InstallState,
    answerer_report,
    install_report,
)
from ui.render import PROVISIONAL_LABEL, PROVISIONAL_TENTATIVE_LABEL, provisional_bubble

PASSAGE = Passage("c1", "Alpha. The loan was USD 10 billion. Omega.", "corpus/a.txt", "A title", "Wire", "2026-02-04",
                  "", 0, 10, 0.5)
CHECKED_REPLY = "The DFC gave the Orion Critical Minerals Consortium USD 600 million."


@pytest.fixture
def scripted_model(assistant, monkeypatch):
    """The shared assistant answering `openai` questions with a scripted model, for one test."""

    def install(reply: str, verdict: float | None = 1.0) -> ScriptedChat:
        backend = ScriptedChat(reply, verdict)
        monkeypatch.setitem(assistant._chat_backends, "openai", backend)
        return backend

    return install


def test_the_extractive_answer_comes_before_the_model_reads_and_is_then_replaced(assistant, scripted_model):
    scripted_model(CHECKED_REPLY)
    events = list(assistant.stream(DFC_QUESTION, backend="openai"))
    kinds = [type(e) for e in events]
    assert kinds.index(Sources) < kinds.index(Provisional) < kinds.index(Token)
    provisional = next(e for e in events if isinstance(e, Provisional))
    extractive = assistant.ask(DFC_QUESTION, backend="extractive")
    assert provisional.text.split(" [")[0] in extractive.answer and not provisional.tentative
    final = events[-1].answer
    assert isinstance(events[-1], Final) and final.answer.startswith(CHECKED_REPLY) and final.model == "scripted"


def test_a_rejected_model_answer_leaves_the_extractive_one_with_the_reason(assistant, scripted_model):
    scripted_model("The DFC gave the Orion consortium USD 650 million [1].")
    events = list(assistant.stream(DFC_QUESTION, backend="openai"))
    provisional = next(e for e in events if isinstance(e, Provisional))
    replaced = next(e for e in events if isinstance(e, Replace))
    assert "650 million" in replaced.reason and "650" not in events[-1].answer.answer
    assert provisional.text.split(" [")[0] in events[-1].answer.answer


def test_the_extractive_answerer_alone_sends_no_provisional_answer(assistant):
    events = list(assistant.stream(DFC_QUESTION, backend="extractive"))
    assert not any(isinstance(e, Provisional) for e in events)


def test_a_refusal_true_of_the_whole_index_keeps_the_question_from_the_model(assistant, scripted_model):
    model = scripted_model(CHECKED_REPLY)
    events = list(assistant.stream("What did Zorblax Industries announce?", backend="openai"))
    assert events[-1].answer.abstained and not any(isinstance(e, Provisional) for e in events)
    assert model.seen == []


@pytest.fixture
def modelless(corpus_settings, tmp_path) -> Assistant:
    """An assistant with no model installed and no model server to find."""
    return Assistant.from_settings(corpus_settings.with_overrides(llm="auto", models_dir=tmp_path / "models",
                                                                  local_llm_ports=[free_port()]))


def test_auto_is_resolved_again_after_reset_and_a_chosen_model_answers(modelless):
    assistant = modelless
    model, reason = assistant.answerer()
    assert model == "" and "no model" in reason

    chosen = ScriptedChat(CHECKED_REPLY)
    assistant._chat_backends["openai"] = chosen
    assistant._auto = ("openai", "the model server chosen in the chat")
    assert assistant.answerer() == ("scripted", "the model server chosen in the chat")
    assert assistant.ask(DFC_QUESTION).model == "scripted"

    assistant.reset_backend()
    assert assistant.answerer()[0] == "" and assistant.ask(DFC_QUESTION).backend == "extractive"
    assistant.use_model(None, "chosen in the chat")
    assert assistant.answerer() == ("", "chosen in the chat")


def test_a_chosen_model_that_cannot_load_is_one_error_and_auto_is_resolved_anew(modelless, tmp_path):
    missing = modelless.settings.with_overrides(llm="llamacpp", gguf_path=tmp_path / "gone.gguf")
    with pytest.raises(LLMUnavailable, match="gone.gguf"):
        modelless.use_model(missing, "chosen in the chat")
    assert modelless.ask(DFC_QUESTION).backend == "extractive"


# -- the chat's turn and the sidebar's "Answers" section ----------------------------------------------


class QuickThenModel:
    """Plays back a model's answer: the sources, the quick extractive answer, the model's draft,
    then either its checked answer or the extractive one replacing it."""

    def __init__(self, passage, final, replaced_because: str = ""):
        self.embedder = object()  # only handed to the uploads' Ingestor, which must not load a model
        self.retriever = SimpleNamespace(manifest=None)
        self.passage, self.final, self.replaced_because = passage, final, replaced_because

    def stream(self, question, **options):
        yield Sources([self.passage], question)
        yield Provisional("The loan was USD 10 billion. [1]")
        yield Token("The model says")
        yield Token(" 10 billion [1].")
        if self.replaced_because:
            yield Replace("The loan was USD 10 billion. [1]", self.replaced_because)
        yield Final(self.final)


def _service(tmp_path, assistant) -> ChatService:
    return ChatService(Settings(corpus_dir=tmp_path / "corpus", index_dir=tmp_path / "index"), assistant)


def _bubbles(views) -> list[str]:
    return [view.messages[-1]["content"] for view in views]


def test_the_quick_answer_shows_with_the_model_draft_under_it_until_the_model_answer_replaces_it(tmp_path):
    final = answer("The model says 10 billion. [1]", backend="auto", model="llamacpp:smollm2-135m.gguf")
    service = _service(tmp_path, QuickThenModel(PASSAGE, final))
    pending, retrieved, quick, *drafts, done = _bubbles(service.converse("What was the loan?", [], [], 5, "", "", ""))
    assert PROVISIONAL_LABEL in quick and "The loan was USD 10 billion." in quick and 'href="#source-0-1"' in quick
    assert PROVISIONAL_LABEL in drafts[-1] and "The model's draft, to be checked: The model says" in drafts[-1]
    assert PROVISIONAL_LABEL not in done and "The model says 10 billion." in done
    assert "written by smollm2-135m ·" in done
    withheld = provisional_bubble("Alpha. [1]", True, "", turn=0, sources=1, searched="")
    assert PROVISIONAL_TENTATIVE_LABEL in withheld and 'class="model-draft"' not in withheld


def test_a_rejected_model_answer_leaves_the_quick_one_with_the_reason(tmp_path):
    final = answer("The loan was USD 10 billion. [1]", backend="auto", model="openai:qwen",
                   fallback="99 appears in no cited passage")
    service = _service(tmp_path, QuickThenModel(PASSAGE, final, final.fallback))
    *_, replaced, done = _bubbles(service.converse("What was the loan?", [], [], 5, "", "", ""))
    for bubble in (replaced, done):
        assert PROVISIONAL_LABEL not in bubble and "The model says" not in bubble
        assert "The loan was USD 10 billion." in bubble and "99 appears in no cited passage" in bubble
    assert "quoted from the articles ·" in done


def test_the_api_streams_the_quick_answer_as_a_provisional_event(tmp_path):
    final = answer("The model says 10 billion. [1]", backend="auto", model="openai:qwen")
    events = list(_service(tmp_path, QuickThenModel(PASSAGE, final)).ask("What was the loan?", [], 5, "", "", "", ""))
    assert [e.get("event") for e in events] == ["sources", "provisional", "token", None]
    assert events[1] == {"event": "provisional", "text": "The loan was USD 10 billion. [1]", "tentative": False}
    assert events[-1]["model"] == "openai:qwen"


@pytest.fixture
def no_models(corpus_settings, tmp_path) -> ChatService:
    """The chat over the bundled corpus with no model installed and no model server to find."""
    settings = corpus_settings.with_overrides(llm="auto", models_dir=tmp_path / "models", local_llm_ports=[free_port()])
    return ChatService(settings)


def test_with_no_model_answers_are_quoted_and_the_picker_offers_only_that_and_automatic(no_models, monkeypatch):
    local = no_models.models
    probes = []
    look = no_models.assistant.model_servers
    monkeypatch.setattr(no_models.assistant, "model_servers", lambda: probes.append(1) or look())
    sidebar = local.sidebar()
    assert len(probes) == 1, "the sidebar looks at the ports once"
    said = sidebar.answerer
    assert said.headline == "Quoted from the articles" and sidebar.offer_install
    assert "127.0.0.1 ports" in said.why and said.why.endswith(" Install one below."), said.why
    assert [value for _, value in sidebar.choices] == [AUTO, QUOTED] and sidebar.picked == AUTO
    assert "quoted" in [label for label, value in sidebar.choices if value == QUOTED][0]
    assert re.fullmatch(r"Install \(1\.1 GB, about \d+ minutes?\)", local.install_label(RECOMMENDED))
    assert "98 MB" in local.install_label("smollm2-135m")

    local.pick(QUOTED)
    said = local.sidebar().answerer
    assert local.backend == "extractive" and said.headline == "Quoted from the articles"
    assert "chosen" in said.why.lower()
    local.pick(AUTO)
    assert local.backend == "auto"


def test_an_install_that_fails_says_why_in_one_line_and_the_chat_still_answers(no_models):
    local = no_models.models
    state = local.start_install("no-such-model")
    assert state.running and local.start_install("smollm2-135m") is state, "one install at a time"
    deadline = time.monotonic() + 30
    while local.install_state().running and time.monotonic() < deadline:
        time.sleep(0.1)
    failed = local.install_state()
    assert not failed.running and failed.error and "\n" not in failed.error
    report = install_report(failed)
    assert report.startswith('<div class="install-error">Installing no-such-model failed: ')
    assert "10 billion" in no_models.assistant.ask("What did EXIM approve under Project Vault?").answer


def test_who_answers_shows_as_a_headline_and_a_smaller_line_with_the_reason_escaped():
    said = Answerer("Written by gemma_3", "The configured model file /models/gemma_3_<q4>.gguf.")
    assert answerer_report(said) == ('<div class="headline">Written by gemma_3</div>'
                                     '<div class="why">The configured model file /models/gemma_3_&lt;q4&gt;.gguf.</div>')


def test_the_install_report_shows_the_progress_bar_and_its_line():
    running = InstallState("smollm2-135m", Progress("download", 40, 98, "Downloading <b>"), running=True)
    assert install_report(running) == '<progress value="40" max="98"></progress><div>Downloading &lt;b&gt;</div>'
    building = InstallState("smollm2-135m", Progress("runtime", 0, 0, "Building llama-cpp-python"), running=True)
    assert install_report(building).startswith("<progress></progress>")
    assert "is installed and answers now" in install_report(InstallState("smollm2-135m"))


def test_a_model_server_found_here_is_offered_and_once_picked_answers_the_chat(corpus_settings, tmp_path):
    with BrokenServer("drop") as server:
        settings = corpus_settings.with_overrides(llm="auto", models_dir=tmp_path / "models",
                                                  local_llm_ports=[free_port(), server.port])
        local = ChatService(settings).models
        picked = SERVER + server.base_url
        sidebar = local.sidebar()
        assert not sidebar.offer_install and [value for _, value in sidebar.choices] == [AUTO, picked, QUOTED]
        local.pick(QUOTED)
        assert local.backend == "extractive"
        local.pick(picked)
        assert local.backend == "auto"
        sidebar = local.sidebar()
        assert sidebar.answerer.headline.startswith("Written by ") and sidebar.picked == picked
        assert sidebar.answerer.why == f"The model server at {server.base_url}, chosen here."
        assert f"server at {urlsplit(server.base_url).netloc}" in [label for label, _ in sidebar.choices]
