"""Bad questions get a clear message or a sensible abstention, never a traceback: through the
Python API, the command line (in this process and as a real subprocess) and the chat's `/ask` API.
The browser side is in tests/test_robustness_browser.py."""

from __future__ import annotations

import json
import re

import pytest

pytest.register_assert_rewrite("tests.robustness")

from gradio_client.exceptions import AppError  # noqa: E402

from rag.assistant import QuestionError  # noqa: E402
from rag.cli import main  # noqa: E402
from tests.robustness import rag  # noqa: E402

pytest_plugins = ["tests.ui_server", "tests.robustness_server"]

EXIM = "What did EXIM approve under Project Vault?"
HUGE = "Why? " * 20_480  # 100 KB
EMPTY_MESSAGE = r"Please type a question: this one is empty\."
HUGE_MESSAGE = (
    r"That question is 102,399 characters long; the limit is 2,000\. Ask about one thing at a time\."
)

REFUSED = {  # question -> the message that says what to fix
    "empty": ("", EMPTY_MESSAGE),
    "whitespace": (" \n\t \r\n ", EMPTY_MESSAGE),
    "only control characters": ("\x00\x1b[31m\x07\x1b[0m", EMPTY_MESSAGE),
    "100 KB": (HUGE, HUGE_MESSAGE),
}
SAME_AS_EXIM = {  # the EXIM question wrapped in noise: must be answered exactly as the clean one
    "NUL": "What did EXIM\x00 approve under Project Vault?",
    "terminal colours": "\x1b[31mWhat did EXIM approve under Project Vault?\x1b[0m",
    "carriage returns": "What did EXIM approve\r under Project Vault?\r\n",
    "tabs and newlines": "What did EXIM\tapprove\n\nunder Project Vault?",
}
ABSTAINED = {  # nothing to answer from: "Not in these articles", no citations
    "only stopwords": "what is the",
    "punctuation": "?!?",
}
OTHER_LANGUAGES = {  # answered from the EXIM article, or a plain abstention: never an error
    "Spanish": "¿Qué aprobó el EXIM?",
    "Chinese": "美国进出口银行在“金库计划”下批准了什么？",
}


def check_sensible(answer: dict) -> None:
    """Either an abstention that says so and cites nothing, or an answer whose every marker cites."""
    if answer["abstained"]:
        assert answer["answer"].startswith("Not in these articles") and not answer["citations"], answer
    else:
        numbers = {int(n) for n in re.findall(r"\[(\d+)\]", answer["answer"])}
        assert numbers and numbers == {c["n"] for c in answer["citations"]}, answer
        assert "10 billion" in answer["answer"], answer


# -- the Python API --------------------------------------------------------------------------------


@pytest.mark.parametrize("case", REFUSED)
def test_api_refuses_with_a_message_that_says_what_to_fix(assistant, case):
    question, message = REFUSED[case]
    with pytest.raises(QuestionError, match=message):
        assistant.ask(question)
    with pytest.raises(QuestionError, match=message):
        assistant.search(question)


def test_api_answers_through_control_characters_and_abstains_on_nothing(assistant):
    clean = assistant.ask(EXIM).to_dict()
    assert "10 billion" in clean["answer"]
    for case, question in SAME_AS_EXIM.items():
        got = assistant.ask(question).to_dict()
        assert (got["answer"], got["citations"]) == (clean["answer"], clean["citations"]), case
        assert got["question"] == EXIM, case
    for case, question in ABSTAINED.items():
        got = assistant.ask(question).to_dict()
        assert got["abstained"] and got["answer"].startswith("Not in these articles"), case
        assert not got["citations"] and got["nearest"], case
    for question in OTHER_LANGUAGES.values():
        check_sensible(assistant.ask(question).to_dict())


# -- the command line ------------------------------------------------------------------------------


def run_main(capsys, corpus_settings, *args: str) -> tuple[int, str, str]:
    paths = ["--corpus-dir", str(corpus_settings.corpus_dir), "--index-dir", str(corpus_settings.index_dir)]
    code = main([*args, *paths])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_refusals_are_one_line_on_stderr_with_exit_code_2(capsys, corpus_settings):
    for case, (question, message) in REFUSED.items():
        for command in (["ask", question], ["ask", question, "--json"], ["search", question]):
            code, out, err = run_main(capsys, corpus_settings, *command)
            assert code == 2 and out == "", (case, command)
            assert re.fullmatch(rf"rag {command[0]}: {message}\n", err), (case, err)


def test_cli_answers_noisy_and_foreign_questions(capsys, corpus_settings):
    code, out, _ = run_main(capsys, corpus_settings, "ask", EXIM, "--json")
    clean = json.loads(out)
    for case, question in {**SAME_AS_EXIM, **ABSTAINED, **OTHER_LANGUAGES}.items():
        code, out, err = run_main(capsys, corpus_settings, "ask", question, "--json")
        assert code == 0 and "Traceback" not in err, (case, err)
        answer = json.loads(out)
        if case in SAME_AS_EXIM:
            assert answer["answer"] == clean["answer"], case
        elif case in ABSTAINED:
            assert answer["abstained"], case
        else:
            check_sensible(answer)
        code, out, err = run_main(capsys, corpus_settings, "ask", question)  # the text form
        assert code == 0 and out.strip(), case


def test_cli_as_a_real_process(corpus_settings):
    """The same through `python -m rag.cli`: what a user's shell runs (a NUL cannot be in argv)."""
    root = corpus_settings.corpus_dir.parent
    for case in ("empty", "whitespace", "100 KB"):
        question, message = REFUSED[case]
        done = rag(root, "ask", question)
        assert done.returncode == 2 and done.stdout == "", case
        assert re.fullmatch(rf"rag ask: {message}\n", done.stderr), (case, done.stderr[-500:])
    done = rag(
        root, "ask", SAME_AS_EXIM["terminal colours"] + SAME_AS_EXIM["carriage returns"][-2:], "--json"
    )
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr[-2000:]
    answer = json.loads(done.stdout)
    assert answer["question"] == EXIM and "10 billion" in answer["answer"]


# -- the chat's API --------------------------------------------------------------------------------


def test_chat_api_explains_refusals_and_answers_the_rest(robustness_server, ui_client):
    api = ui_client(robustness_server.url)
    for question, message in REFUSED.values():
        with pytest.raises(AppError, match=message):
            api.predict(question, [], api_name="/ask")
        with pytest.raises(AppError, match=message):  # as a follow-up, with history
            api.predict(question, [EXIM], api_name="/ask")
    clean = api.predict(EXIM, api_name="/ask")
    for case, question in SAME_AS_EXIM.items():
        got = api.predict(question, api_name="/ask")
        assert got["question"] == EXIM and got["answer"] == clean["answer"], case
    for case, question in ABSTAINED.items():
        got = api.predict(question, api_name="/ask")
        assert got["abstained"] and not got["citations"], case
    for question in OTHER_LANGUAGES.values():
        check_sensible(api.predict(question, api_name="/ask"))
    # A refused question leaves the server serving: the next question is answered.
    assert api.predict(EXIM, api_name="/ask")["answer"] == clean["answer"]


def test_chat_api_says_what_is_wrong_with_an_option_or_a_question_that_is_not_text(robustness_server, ui_client):
    """Each used to end in Gradio's opaque "The upstream Gradio app has raised an exception"."""
    api = ui_client(robustness_server.url)
    with pytest.raises(AppError, match=r"The from date must be a date like 2025-01-31, not 1e\+20"):
        api.predict(EXIM, [], 5, "extractive", 1e20, api_name="/ask")
    with pytest.raises(AppError, match=r"The question must be text, not list"):
        api.predict([EXIM, "and more"], api_name="/ask")
    with pytest.raises(AppError, match=r"The question must be text, not dict"):
        api.predict({"question": EXIM}, api_name="/ask")
    assert "10 billion" in api.predict(EXIM, api_name="/ask")["answer"]


CLI_OPTION_ERRORS = {  # (arguments, environment) -> the one line rag prints
    "a flag out of range": (["ask", EXIM, "--top-k", "100"], {}, "rag ask: --top-k (RAG_TOP_K) '100': should be less than or equal to 50"),
    "a variable that is no number": (["ask", EXIM], {"RAG_TOP_K": "many"}, "rag ask: --top-k (RAG_TOP_K) 'many': should be a valid integer, unable to parse string as an integer"),
    "a variable with no flag": (["ingest"], {"RAG_MAX_ARTICLE_CHARS": "5"}, "rag ingest: RAG_MAX_ARTICLE_CHARS '5': should be greater than or equal to 1000"),
    "a list that is not JSON": (["ask", EXIM], {"RAG_LOCAL_LLM_PORTS": "8080,8081"}, "rag ask: RAG_LOCAL_LLM_PORTS cannot be read: a list is written as JSON, like [11434, 1234]"),
    "a port out of range": (["serve", "--port", "99999"], {}, "rag serve: error: argument --port: 99999 is not a port number (1 to 65535)"),
}


@pytest.mark.parametrize("case", CLI_OPTION_ERRORS)
def test_cli_option_errors_are_one_clear_line(tmp_path, case):
    """Not a pydantic dump nor a traceback: what is wrong, in the names the user typed."""
    import subprocess

    from tests.robustness import RAG, cli_env

    args, env, line = CLI_OPTION_ERRORS[case]
    done = subprocess.run([*RAG, *args], cwd=tmp_path, env={**cli_env(tmp_path), **env}, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 2 and done.stdout == "", done.stderr
    assert done.stderr.strip().splitlines()[-1] == line
    assert "Traceback" not in done.stderr and "pydantic" not in done.stderr


# -- odd input that used to reach a traceback ------------------------------------------------------

NOT_TEXT = "not valid text"


def test_cli_refuses_bytes_that_are_not_utf8_in_one_line(corpus_settings):
    """A shell passes them as they are; Python reads them as lone surrogates."""
    import subprocess

    from tests.robustness import RAG, cli_env

    root = corpus_settings.corpus_dir.parent
    for question in (b"What did EXIM \xff\xfe approve?", b"\xed\xa0\x80"):
        done = subprocess.run([*RAG, "ask", question], cwd=root, env=cli_env(root), capture_output=True, timeout=300)
        stderr = done.stderr.decode(errors="replace")
        assert done.returncode == 2 and done.stdout == b"", stderr[-2000:]
        assert stderr.startswith("rag ask: The question holds characters that are " + NOT_TEXT), stderr[-2000:]
        assert len(stderr.strip().splitlines()) == 1 and "Traceback" not in stderr


def test_cli_stops_quietly_when_the_reader_of_its_output_has_gone(corpus_settings):
    """`rag ask ... | head`: once head has what it wants, no "[Errno 32] Broken pipe"."""
    import subprocess

    from tests.robustness import RAG, cli_env

    root = corpus_settings.corpus_dir.parent
    for args in (["ask", EXIM], ["search", EXIM]):
        process = subprocess.Popen([*RAG, *args], cwd=root, env=cli_env(root), stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True)
        process.stdout.close()  # the reader is gone before the answer is written
        stderr = process.stderr.read()
        assert process.wait(timeout=300) == 141, stderr[-2000:]
        assert "Broken pipe" not in stderr and "Traceback" not in stderr, stderr[-2000:]


def call_api(url: str, api_name: str, data: list) -> tuple[str, str]:
    """`/<api_name>` over plain HTTP with JSON's escapes (a lone surrogate is "\\ud800" there),
    as any client may send it: the final event's name and data."""
    import urllib.request

    call = urllib.request.Request(f"{url}gradio_api/call/{api_name}", data=json.dumps({"data": data}).encode(),
                                  headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(call, timeout=60) as response:
        event_id = json.loads(response.read())["event_id"]
    with urllib.request.urlopen(f"{url}gradio_api/call/{api_name}/{event_id}", timeout=300) as stream:
        lines = stream.read().decode().splitlines()
    events = [line.split(": ", 1)[1] for line in lines if line.startswith("event: ") and "heartbeat" not in line]
    data_lines = [line.split(": ", 1)[1] for line in lines if line.startswith("data: ")]
    return events[-1], data_lines[-1]


def test_chat_api_says_what_is_wrong_with_invalid_unicode_a_publisher_list_and_a_huge_publisher(
    robustness_server, ui_client
):
    for question in ("What did EXIM \udcff\udcfe approve?", "\ud800"):
        event, data = call_api(robustness_server.url, "ask", [question, [], 5, "extractive", "", "", ""])
        assert event == "error" and NOT_TEXT in data, (event, data[:500])
    event, data = call_api(robustness_server.url, "ask", [EXIM, ["What is FORGE?\udcff"], 5, "extractive", "", "", ""])
    assert event == "complete" and "10 billion" in data, (event, data[:500])  # history: the bad character dropped

    api = ui_client(robustness_server.url)
    with pytest.raises(AppError, match=r"The publisher must be one name as text, not list"):
        api.predict(EXIM, [], 5, "extractive", "", "", ["ANI", "Reuters"], api_name="/ask")
    huge = "P" * 100_000
    with pytest.raises(AppError, match=r"No publisher has a name 100,000 characters long") as refused:
        api.predict(EXIM, [], 5, "extractive", "", "", huge, api_name="/ask")
    assert len(str(refused.value)) < 300, "the name is echoed back whole"
    assert "10 billion" in api.predict(EXIM, [], 5, "extractive", "", "", "ANI", api_name="/ask")["answer"]
