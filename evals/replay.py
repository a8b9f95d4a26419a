"""Replays a recorded LLM eval run through today's code, with the model's recorded replies.

`rag eval` with a model records, for every question, what the model wrote (`draft`) and its
answerability verdict (`answerable`). Replaying asks the same questions again with those replies
in the model's place, so a change to what happens after the model has spoken (the validator,
attribution, the fallback) is measured on every suite in minutes, not in an hour of model time.
A change to what the model is shown (evidence, prompt) needs a real run: its replies would no
longer be the ones the model gave.

    python evals/replay.py SUITE RECORDED_RUN_DIR OUT_DIR [--ask-model] [--preset NAME] [--limit N]

RECORDED_RUN_DIR holds the recorded predictions.jsonl (e.g. evals/runs/committed/llm/bbc);
OUT_DIR gets the replayed run's report, as `rag eval` writes it. With --ask-model, an answer the
run never had the model write (its answerability check said no, and today's lets it through) is
asked of the model configured as for `rag eval` (RAG_LLM=openai ...), so a change to the
answerability threshold costs model time only for the questions it lets through. With --preset,
the suite is answered with that preset's settings (rag/settings.py), e.g. `plain` or `no-fallback`:
what each guard costs and gains, measured on the same replies. With --limit, only the suite's first
N questions.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

from rag.answer.backends import make_chat_backend
from rag.answer.llm import build_messages
from rag.assistant import Assistant
from rag.evals.dataset import Question
from rag.evals.runner import RunResult, evaluate
from rag.evals.runs import read_predictions, write_run
from rag.evals.suites import SUITES_FILE, pick_suites
from rag.settings import PRESETS, Settings


class ReplayedChat:
    """A chat backend that gives, for each question, the reply recorded for it; an answer never
    recorded is written by `model` when one is given."""

    def __init__(self, predictions: list[dict], name: str, model=None):
        self.name = name
        self.model = model
        self._recorded: dict[str, dict] = {}
        for prediction in predictions:
            for asked in (prediction["question"], prediction.get("searched")):
                if asked:
                    self._recorded[_question_line(build_messages(asked, []))] = prediction
        self.unrecorded: list[str] = []  # questions the model is asked that the run never asked it
        self.asked = 0  # answers written by `model`

    def yes_probability(self, messages: list[dict[str, str]]) -> float | None:
        return self._reply(messages).get("answerable")

    def stream(self, messages: list[dict[str, str]]) -> Iterator[str]:
        recorded = self._reply(messages)
        if "draft" in recorded or self.model is None:
            yield recorded.get("draft", "")
            return
        self.asked += 1
        yield from self.model.stream(messages)

    def _reply(self, messages: list[dict[str, str]]) -> dict:
        line = _question_line(messages)
        recorded = self._recorded.get(line)
        if recorded is None:
            self.unrecorded.append(line)
            return {}
        return recorded


def _question_line(messages: list[dict[str, str]]) -> str:
    """The prompt's question line (the question as the prompt writes it), to find a reply by."""
    return next(ln for ln in messages[-1]["content"].splitlines() if ln.startswith("Question: "))


def replay(
    assistant: Assistant, questions: list[Question], predictions: list[dict], label: str, model=None
) -> RunResult:
    """The questions answered by `assistant` with the recorded replies in its model's place (and
    `model` writing the answers never recorded, when given)."""
    chat = ReplayedChat(predictions, next((p["model"] for p in predictions if p.get("model")), "replayed"), model)
    assistant._chat_backends[assistant.settings.llm] = chat
    result = evaluate(assistant.settings, questions, label, assistant)
    if chat.unrecorded:
        print(f"{len(chat.unrecorded)} questions had no recorded reply, e.g. {chat.unrecorded[0]}", file=sys.stderr)
    if model is not None:
        print(f"the model wrote {chat.asked} answers the run had not recorded", file=sys.stderr)
    return result


REPORTED = ("answer_accuracy", "abstention_accuracy", "answered_precision", "overall_accuracy", "fallback_rate")


def main(
    suite_name: str, recorded: Path, out: Path, ask_model: bool = False, preset: str = "default", limit: int | None = None
) -> None:
    predictions = read_predictions(recorded)
    suite = next(iter(pick_suites([suite_name], SUITES_FILE)))
    backend = next(p["backend"] for p in predictions if p.get("backend"))
    settings = suite.settings(Settings().with_overrides(llm=backend, **PRESETS[preset]))
    suite.prepare(settings)
    model = make_chat_backend(settings) if ask_model else None
    result = replay(Assistant(settings), suite.questions(limit), predictions, suite.name, model)
    write_run(out, result)
    print(json.dumps({k: result.metrics["overall"][k] for k in REPORTED}, indent=1))


if __name__ == "__main__":
    arguments = [a for a in sys.argv[1:] if a != "--ask-model"]
    options = {"--preset": "default", "--limit": None}
    for flag in options:
        if flag in arguments:
            at = arguments.index(flag)
            options[flag] = arguments[at + 1]
            del arguments[at : at + 2]
    if len(arguments) != 3 or options["--preset"] not in PRESETS:
        sys.exit(__doc__)
    limit = int(options["--limit"]) if options["--limit"] else None
    main(arguments[0], Path(arguments[1]), Path(arguments[2]), "--ask-model" in sys.argv, options["--preset"], limit)
