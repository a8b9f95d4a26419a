"""Twenty chat sessions at once through the chat's `/ask` API, each with its own history, while
articles are uploaded through `/upload` and ingested in the same server: no errors, no answer
given to the wrong session or the wrong question, every cited chunk in the index at the end, the
index consistent, and the uploaded articles answerable at once."""

from __future__ import annotations

import random
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

pytest.register_assert_rewrite("tests.robustness")

from gradio_client import handle_file  # noqa: E402

from rag.index.manifest import Manifest  # noqa: E402
from tests.robustness import check_consistent, generated_article, snapshot_in_subprocess  # noqa: E402

pytest_plugins = ["tests.ui_server", "tests.robustness_server"]

SESSIONS = 20
# Conversations whose answers are known; a follow-up ("And ...", "its") is only answerable with
# the session's own previous question. None: not in the articles.
CONVERSATIONS = [
    [
        ("What did EXIM approve under Project Vault?", r"10 billion"),
        ("And how much went to Brazil?", r"565 million"),
    ],
    [
        ("Who hosted the 2026 Critical Minerals Ministerial?", r"Rubio"),
        ("Which country was given the initial chairmanship of FORGE?", r"Korea"),
        ("What does the acronym FORGE stand for?", r"Forum on Resource Geostrategic Engagement"),
    ],
    [
        ("Who signed the critical minerals MoU with India on behalf of the United States?", r"Raimondo"),
        ("How large is Germany's national critical-minerals fund?", None),
        ("What did the US and Japan agree on rare earths?", r"Japan"),
    ],
    [
        (
            "Which consortium received USD 600 million from the US International Development Finance "
            "Corporation?",
            r"Orion",
        ),
        ("How much EXIM support was earmarked for lithium in Arkansas?", r"400 million"),
        ("And for tungsten in Kazakhstan?", r"700 million"),
    ],
    [
        ("Which US institution is leading Project Vault?", r"Export-Import Bank|EXIM"),
        ("How large is its Direct Loan?", r"10 billion"),
        ("How much did the DFC commit for tungsten in Kazakhstan?", r"700 million"),
    ],
]


@dataclass
class Asked:
    session: int
    question: str
    history: list[str]
    expected: str | None
    started: float
    finished: float = 0.0
    answer: dict = field(default_factory=dict)
    error: str = ""


def converse(url: str, session: int, turns: int, client, start: threading.Barrier) -> list[Asked]:
    """One user: a client of its own (so a session of its own), asking in turn, with its history."""
    api = client(url)
    conversation = CONVERSATIONS[session % len(CONVERSATIONS)][:turns]
    history: list[str] = []
    asked: list[Asked] = []
    start.wait()
    for question, expected in conversation:
        record = Asked(session, question, list(history), expected, time.monotonic())
        try:
            record.answer = api.predict(question, history, 5, "extractive", "", "", "", api_name="/ask")
        except Exception as exc:  # recorded, and the test fails on it below
            record.error = f"{type(exc).__name__}: {exc}"
        record.finished = time.monotonic()
        asked.append(record)
        history.append(question)
    return asked


def upload_articles(url: str, client, folder: Path, seed: int, start: threading.Barrier) -> tuple:
    """Write made-up articles and upload them through `/upload`, once the sessions are asking."""
    rng = random.Random(seed)
    paths, facts = [], {}
    for index in range(seed, seed + 6):
        name, text = generated_article(index, rng)
        (folder / name).write_text(text)
        paths.append(folder / name)
        facts[name] = text
    api = client(url)
    start.wait()
    time.sleep(0.5)  # let the first questions queue up first
    began = time.monotonic()
    result = api.predict([handle_file(str(p)) for p in paths], api_name="/upload")
    return result, facts, began, time.monotonic()


def run_concurrently(robustness_server, ui_client, tmp_path, turns: int, seed: int) -> None:
    start = threading.Barrier(SESSIONS + 1)
    began = time.monotonic()
    with ThreadPoolExecutor(SESSIONS + 1) as pool:
        uploading = pool.submit(upload_articles, robustness_server.url, ui_client, tmp_path, seed, start)
        sessions = [
            pool.submit(converse, robustness_server.url, s, turns, ui_client, start) for s in range(SESSIONS)
        ]
        records = [record for future in sessions for record in future.result()]
        upload, facts, upload_began, upload_ended = uploading.result()
    wall = time.monotonic() - began

    errors = [f"session {r.session}: {r.question!r}: {r.error}" for r in records if r.error]
    assert not errors, "\n".join(errors)
    assert len(records) == sum(len(CONVERSATIONS[s % len(CONVERSATIONS)][:turns]) for s in range(SESSIONS))
    for r in records:
        answer = r.answer
        assert answer["question"] == r.question, (
            f"session {r.session} got the answer to {answer['question']!r}"
        )
        if r.expected is None:
            assert answer["abstained"] and not answer["citations"], (r.session, r.question, answer["answer"])
        else:
            assert not answer["abstained"] and re.search(r.expected, answer["answer"]), (
                r.question,
                answer["answer"],
            )
        if answer["searched"]:  # a follow-up: completed with this session's own previous question
            assert r.history and r.history[-1].rstrip("?") in answer["searched"], (
                r.session,
                answer["searched"],
            )

    assert upload["added"] == len(facts), upload
    assert sorted(f["name"] for f in upload["files"] if f["added"]) == sorted(facts)
    overlapping = [r for r in records if r.started < upload_ended and r.finished > upload_began]
    assert overlapping, "no question was answered while the upload was being ingested"

    manifest = Manifest.load(robustness_server.root / "index")
    cited = {c["chunk_id"] for r in records for c in r.answer["citations"]}
    assert cited and cited <= manifest.chunk_ids(), cited - manifest.chunk_ids()
    uploaded = {s for s in manifest.documents if s.startswith("corpus/uploads/")}
    assert {f"corpus/uploads/{name}" for name in facts} <= uploaded
    check_consistent(snapshot_in_subprocess(robustness_server.root))
    check_uploads_answerable(robustness_server.url, ui_client, facts)
    print(
        f"\n{SESSIONS} sessions, {len(records)} questions answered in {wall:.1f}s, "
        f"{len(overlapping)} while {len(facts)} uploaded articles were ingested "
        f"({upload_ended - upload_began:.1f}s); {len(cited)} cited chunks, all in the index; 0 errors"
    )


def check_uploads_answerable(url: str, client, facts: dict[str, str]) -> None:
    """Each uploaded article answers a question about its own first sentence."""
    api = client(url)
    for name, text in facts.items():
        town = re.search(r"The council of (\w+)", text).group(1)
        people = re.search(r"About (\d+) (\w+) were expected", text)
        answer = api.predict(
            f"How many {people.group(2)} were expected in {town} in the first week?", api_name="/ask"
        )
        assert people.group(1) in answer["answer"], (name, answer["answer"])
        assert answer["citations"][0]["source"] == f"corpus/uploads/{name}"


def test_twenty_sessions_while_an_upload_is_ingested(robustness_server, ui_client, tmp_path):
    run_concurrently(robustness_server, ui_client, tmp_path, turns=2, seed=500)


@pytest.mark.slow
@pytest.mark.parametrize("round_", range(3))
def test_twenty_longer_sessions_while_uploads_are_ingested(robustness_server, ui_client, tmp_path, round_):
    run_concurrently(robustness_server, ui_client, tmp_path, turns=3, seed=600 + 10 * round_)
