"""evals/replay.py: a recorded LLM run, replayed without the model, gives the same answers, and
gives what today's checks make of the recorded replies."""

from __future__ import annotations

import pytest

from evals.replay import replay
from rag.answer import llm
from rag.assistant import Assistant
from rag.evals.dataset import parse_question
from rag.evals.runner import evaluate
from tests.test_llm import DFC_QUESTION, ScriptedChat

QUESTIONS = [
    parse_question({"id": "dfc", "question": DFC_QUESTION, "answers": [["600 million"]]}),
    parse_question({"id": "vault", "question": "What did EXIM approve under Project Vault?", "answers": [["10 billion"]]}),
]


def made_up_or_checked(messages) -> str:
    """A number the passages lack for the DFC question; an uncited, supported answer otherwise."""
    if "DFC" in messages[-1]["content"]:
        return "The DFC gave the Orion consortium USD 650 million [1]."
    return "The EXIM Board approved a Direct Loan of up to USD 10 billion."


@pytest.fixture(scope="module")
def recorded(corpus_settings):
    """A run with a scripted model, as `rag eval` records it."""
    assistant = Assistant(corpus_settings.with_overrides(llm="openai"))
    assistant._chat_backends["openai"] = ScriptedChat(made_up_or_checked, verdict=0.9)
    return evaluate(assistant.settings, QUESTIONS, "recorded", assistant).predictions


def fresh_assistant(corpus_settings) -> Assistant:
    return Assistant(corpus_settings.with_overrides(llm="openai"))


def test_a_replayed_run_gives_the_recorded_answers(corpus_settings, recorded):
    assert recorded[0]["fallback"] and recorded[0]["draft"].startswith("The DFC gave")
    assert "fallback" not in recorded[1] and recorded[1]["attributed"]
    replayed = replay(fresh_assistant(corpus_settings), QUESTIONS, recorded, "replayed").predictions
    for before, after in zip(recorded, replayed, strict=True):
        for key in ("answer", "abstained", "fallback", "draft", "answerable", "attributed", "correct"):
            assert after.get(key) == before.get(key), key


def test_a_replay_shows_what_the_checks_of_today_make_of_the_recorded_replies(corpus_settings, recorded, monkeypatch):
    rejecting = llm.Checked("", "a stricter validator")
    monkeypatch.setattr(llm, "check_answer", lambda draft, evidence: rejecting)
    replayed = replay(fresh_assistant(corpus_settings), QUESTIONS, recorded, "replayed").predictions
    assert [p.get("fallback") for p in replayed] == ["a stricter validator"] * 2
    assert [p["draft"] for p in replayed] == [p["draft"] for p in recorded]


def test_a_question_the_run_never_asked_gets_no_reply(corpus_settings, recorded):
    other = [parse_question({"id": "other", "question": "Who signed the MoU with India?", "answers": [["Raimondo"]]})]
    replayed = replay(fresh_assistant(corpus_settings), other, recorded, "replayed").predictions
    assert replayed[0].get("draft", "") == "" and replayed[0]["fallback"] == "the model wrote no answer"


def test_an_answer_the_run_never_had_written_is_asked_of_the_model_when_one_is_given(corpus_settings):
    declining = Assistant(corpus_settings.with_overrides(llm="openai", llm_answerable_threshold=0.5))
    declining._chat_backends["openai"] = ScriptedChat(made_up_or_checked, verdict=0.45)
    recorded = evaluate(declining.settings, QUESTIONS[1:], "recorded", declining).predictions
    assert recorded[0]["abstained"] and "draft" not in recorded[0]

    lower = corpus_settings.with_overrides(llm="openai", llm_answerable_threshold=0.4)
    model = ScriptedChat(made_up_or_checked)
    asked = replay(Assistant(lower), QUESTIONS[1:], recorded, "replayed", model).predictions
    assert not asked[0]["abstained"] and "10 billion" in asked[0]["answer"] and len(model.seen) == 1
    assert model.judged == []  # the verdict is still the recorded one
    unasked = replay(Assistant(lower), QUESTIONS[1:], recorded, "replayed").predictions
    assert unasked[0]["fallback"] == "the model wrote no answer"
