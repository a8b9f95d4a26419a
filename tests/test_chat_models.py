"""Who answers in the chat: the extractive answer shown while a model reads, the model chosen or
installed taking over without a restart, and the settings area saying once which one answers."""

from __future__ import annotations

import pytest

from rag.assistant import Assistant, Final, Provisional, Replace, Sources, Token
from tests.processes import free_port
from tests.test_llm import DFC_QUESTION, ScriptedChat

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


def test_auto_is_resolved_again_after_reset_and_a_chosen_model_answers(corpus_settings):
    nothing_listening = corpus_settings.with_overrides(llm="auto", local_llm_ports=[free_port()])
    assistant = Assistant.from_settings(nothing_listening)
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
