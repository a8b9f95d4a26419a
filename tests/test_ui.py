"""The chat's building blocks (HTML escaping, upload names, option parsing, bind safety) and its
API endpoint `/ask`, called through gradio_client on the real server."""

from __future__ import annotations

import json
import re
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import pytest
from gradio_client.exceptions import AuthenticationError

from rag.answer.citations import REFUSAL
from rag.answer.result import Answer, Citation
from rag.answer.retrieve import Passage
from rag.assistant import Final, Replace, Sources, Token
from rag.settings import Settings
from ui import render
from ui.chat import ChatService, OptionError, parse_date, parse_history, respelled_question
from ui.safety import LoginGuard, UnsafeServe, check_bind, is_local, parse_auth
from ui.uploads import RejectedUpload, claim_path, safe_name

pytest_plugins = ["tests.ui_server"]

HOSTILE = '<script>window.__pwned=1</script> <img src=x onerror="window.__pwned=1"> [link](http://evil.example/)'


def citation(n: int = 1, text: str = "Alpha. The loan was USD 10 billion. Omega.", spans=((7, 35),)) -> Citation:
    return Citation(n=n, source="corpus/a.txt", title="A <b>title</b>", published="2026-02-04", chunk_id=f"c{n}",
                    quote="", text=text, score=0.5, publisher="Wire", quote_spans=list(spans), start=1000,
                    end=1000 + len(text))


def answer(text: str, **fields) -> Answer:
    values = {"question": "q", "answer": text, "abstained": False, "citations": [citation()], "backend": "extractive",
              "timings": {"total_ms": 1500.0}}
    return Answer(**{**values, **fields})


# -- rendering -------------------------------------------------------------------------------------


def test_answer_escapes_html_and_markdown_and_links_only_known_citations():
    html = render.link_citations(f"{HOSTILE} [1] [7]", turn=2, known=[1])
    assert "<script" not in html and "<img" not in html
    assert "&lt;script&gt;" in html and "onerror=&quot;" in html
    assert "[link](http://evil.example/)" in html  # shown as typed, never a link
    assert html.count("<a ") == 1 and 'href="#source-2-1"' in html
    assert "[7]" in html


def test_the_answer_says_in_a_few_words_who_wrote_it():
    written = answer("X. [1]", backend="auto", model="llamacpp:smollm2-135m.gguf")
    assert "written by smollm2-135m · 1 source" in render.final_bubble(written, 1)
    assert "written by qwen2.5:1.5b ·" in render.final_bubble(answer("X. [1]", model="openai:qwen2.5:1.5b"), 1)
    reason = "no model is configured and no model server answered on 127.0.0.1 ports 8080"
    quoted = render.final_bubble(answer("X. [1]", backend_reason=reason), 1)
    assert "quoted from the articles · 1 source" in quoted and reason not in quoted
    replaced = render.final_bubble(answer("X. [1]", model="openai:qwen", fallback="99 is in no passage"), 1)
    assert "quoted from the articles ·" in replaced and "99 is in no passage" in replaced


def test_a_models_answer_without_a_fitted_chance_says_so_and_shows_no_figure():
    unmeasured = render.final_bubble(answer("X. [1]", model="llamacpp:smollm2-135m.gguf", confidence=None), 1)
    assert "confidence not measured for this model" in unmeasured and "%" not in unmeasured
    fitted = render.final_bubble(answer("X. [1]", model="llamacpp:qwen2.5-coder-1.5b.gguf", confidence=0.8), 1)
    assert "80% likely right" in fitted


def test_highlight_marks_spans_and_escapes_inside_and_outside():
    text = "<b>x</b> The loan was $10 <i>billion</i>. End"
    start = text.index("The")
    html = render.highlight(text, [(start, text.index(". End") + 1), (start + 2, start + 5)])
    assert html.count("<mark>") == 1
    assert "&lt;b&gt;x&lt;/b&gt;" in html
    assert "<mark>The loan was $10 &lt;i&gt;billion&lt;/i&gt;.</mark>" in html


def test_source_card_escapes_titles_and_drops_non_http_urls():
    entry = render.SourceEntry.from_citation(1, citation())
    entry.url = "javascript:alert(1)"
    html = render.source_card(entry, "source-0-1", lambda source: "article?doc=abc")
    assert "A &lt;b&gt;title&lt;/b&gt;" in html
    assert "javascript:" not in html
    assert "<mark>The loan was USD 10 billion.</mark>" in html
    assert "score" not in html  # a bare similarity said nothing a reader could use


def test_the_article_link_names_the_cited_sentences_by_their_place_in_the_article():
    html = render.source_card(render.SourceEntry.from_citation(1, citation()), "source-0-1", lambda s: "article?doc=abc")
    assert 'href="article?doc=abc&amp;at=1007-1035"' in html
    uncited = citation(spans=())
    html = render.source_card(render.SourceEntry.from_citation(1, uncited), "source-0-1", lambda s: "article?doc=abc")
    assert f'at=1000-{1000 + len(uncited.text)}"' in html, "with nothing marked, the whole passage is"


def test_the_article_view_marks_the_spans_escapes_the_text_and_ignores_bad_offsets():
    text = "Intro <b>bold</b>.\n\nThe loan was USD 10 billion. The end."
    start = text.index("The loan")
    spans = render.parse_spans([f"{start}-{start + 28}", "12-x", "-3-4", "99999999-100000000"])
    assert spans == [(start, start + 28), (99999999, 100000000)]
    html = render.article_page("A <i>title</i>", "Wire", "2026-02-04", "javascript:alert(1)", text, spans)
    assert "<h1>A &lt;i&gt;title&lt;/i&gt;</h1>" in html and "Wire · 2026-02-04" in html
    assert '<mark id="cited">The loan was USD 10 billion.</mark>' in html
    assert "&lt;b&gt;bold&lt;/b&gt;" in html and "javascript:" not in html
    assert "<mark" not in render.article_page("T", None, None, None, text, [])


def test_a_refusal_lists_each_nearby_article_once_with_a_link_to_each_passage():
    other = citation(3)
    other.title, other.source = "Another story", "corpus/b.txt"
    abstained = answer(f"{REFUSAL} The closest passages do not clearly answer it.", abstained=True, citations=[],
                       nearest=[citation(1), citation(2), other])
    bubble = render.final_bubble(abstained, turn=0)
    assert bubble.count("A &lt;b&gt;title&lt;/b&gt;") == 1 and bubble.count("<li>") == 2
    assert all(f'href="#source-0-{n}"' in bubble for n in (1, 2, 3))


def test_abstention_says_not_in_these_articles_and_lists_nearest():
    abstained = answer("Not in these articles. No article mentions Germany.", abstained=True, citations=[],
                       nearest=[citation(0)])
    bubble = render.final_bubble(abstained, turn=0)
    assert "Not in these articles" in bubble and "No article mentions Germany." in bubble
    assert 'href="#source-0-1"' in bubble
    panel = render.answered_section(abstained, [], 0, lambda source: None)
    assert 'id="source-0-1"' in panel and "nearest" in panel
    assert render.NEAREST_MARKED in panel


def test_a_refusals_closest_passage_marks_its_sentence_nearest_the_question():
    nearest = citation(0)
    nearest.quote_spans = [(0, 10)]
    abstained = answer("Not in these articles. The closest passages do not clearly answer it.", abstained=True,
                       citations=[], nearest=[nearest])
    panel = render.answered_section(abstained, [], 0, lambda source: None)
    assert f"<mark>{render.esc(nearest.text[:10])}</mark>" in panel


def test_panel_keeps_earlier_questions_folded_and_plain_answer_lists_sources():
    panel = render.sources_panel([("first <q>", "<p>one</p>"), ("second", "<p>two</p>")])
    assert panel.index("second") < panel.index("first &lt;q&gt;")
    assert '<details class="turn earlier">' in panel
    copied = render.plain_answer(answer("The loan was USD 10 billion. [1]"))
    assert copied.splitlines()[-1] == "[1] A <b>title</b> (Wire, 2026-02-04)"


# -- the chat's turn, with a scripted assistant -----------------------------------------------------


class ScriptedAssistant:
    """Plays back a fixed event stream, as an LLM answer that fails validation would produce."""

    def __init__(self, passage: Passage, final: Answer):
        self.embedder = object()  # only handed to the uploads' Ingestor, which must not load a model
        self.retriever = SimpleNamespace(manifest=None)
        self.passage, self.final, self.calls = passage, final, []

    def stream(self, question, history=None, **options):
        self.calls.append((question, history))
        yield Sources([self.passage], question)
        yield Token("A draft [1] that")
        yield Token(" cites 99 [1].")
        yield Replace("The loan was USD 10 billion. [1]", "99 appears in no cited passage")
        yield Final(self.final)


def test_a_turn_streams_sources_then_draft_then_replacement_then_answer(tmp_path):
    passage = Passage("c1", HOSTILE, "corpus/a.txt", "A title", "Wire", "2026-02-04", "", 0, 10, 0.5)
    final = answer("The loan was USD 10 billion. [1]", fallback="99 appears in no cited passage", backend="openai")
    scripted = ScriptedAssistant(passage, final)
    service = ChatService(Settings(corpus_dir=tmp_path / "corpus", index_dir=tmp_path / "index"), scripted)
    views = list(service.converse("What was the loan?", [], [], 5, "", "", ""))
    pending, retrieved, *drafts, done = views
    assert "Searching" in pending.messages[-1]["content"] and not pending.done
    assert 'id="source-0-1"' in retrieved.panel and "&lt;script&gt;" in retrieved.panel
    assert "A draft" in drafts[0].messages[-1]["content"]
    assert "failed the citation check" in drafts[-1].messages[-1]["content"]
    assert done.done and 'href="#source-0-1"' in done.messages[-1]["content"]
    assert "<mark>The loan was USD 10 billion.</mark>" in done.panel
    assert done.copy_text.startswith("The loan was USD 10 billion. [1]")
    list(service.converse("And in 2025?", done.messages, done.turns, 5, "", "", ""))
    assert scripted.calls[-1] == ("And in 2025?", ["What was the loan?"])


def test_a_bad_option_shows_in_the_answer_bubble(tmp_path):
    service = ChatService(Settings(corpus_dir=tmp_path / "c", index_dir=tmp_path / "i"), ScriptedAssistant(None, None))
    *_, done = service.converse("Q?", [], [], 5, "2025-02-01", "2025-01-01", "")
    assert done.done and "after the &#x27;to&#x27; date" in done.messages[-1]["content"]


# -- uploads, options, safety ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("uploaded", "stored"),
    [
        ("../../etc/passwd.txt", "passwd.txt"),
        ("/abs/path/Report.MD", "Report.md"),
        ("C:\\Users\\x\\news.html", "news.html"),
        (".hidden.md", "hidden.md"),
        ("..txt", "article.txt"),
        ("a b<c>?.pdf", "a-b-c.pdf"),
    ],
)
def test_safe_name_cannot_steer_the_location(uploaded, stored):
    assert safe_name(uploaded) == stored


@pytest.mark.parametrize("uploaded", ["run.exe", "noext", "archive.tar.gz", "page.txt.sh"])
def test_safe_name_rejects_unsupported_types(uploaded):
    with pytest.raises(RejectedUpload, match="unsupported file type"):
        safe_name(uploaded)


def test_claim_path_never_reuses_a_name(tmp_path: Path):
    first, second = claim_path(tmp_path, "a.md"), claim_path(tmp_path, "a.md")
    assert (first.name, second.name) == ("a.md", "a-2.md")


def test_options_parsing():
    assert parse_history('["a", "b"]') == ["a", "b"]
    assert parse_history([{"role": "user", "content": "a"}, {"role": "assistant", "content": "x"}]) == ["a"]
    assert parse_history(None) == []
    assert str(parse_date("2025-01-31 00:00:00", "from")) == "2025-01-31"
    with pytest.raises(OptionError, match="2025-01-31"):
        parse_date("31/01/2025", "from")
    with pytest.raises(OptionError):
        parse_history("{not json")


def test_bind_safety():
    assert is_local("127.0.0.1") and is_local("localhost") and is_local("::1")
    assert not is_local("0.0.0.0")
    check_bind("127.0.0.1", None)
    check_bind("0.0.0.0", ("u", "p"))
    with pytest.raises(UnsafeServe, match="RAG_UI_AUTH"):
        check_bind("0.0.0.0", None)
    with pytest.raises(UnsafeServe, match="user:password"):
        parse_auth("no-colon")
    assert parse_auth("u:p:q") == ("u", "p:q")


# -- the API on the real server --------------------------------------------------------------------

CONCURRENT_QUESTIONS = {
    "Who hosted the 2026 Critical Minerals Ministerial?": r"Rubio",
    "Which country was given the initial chairmanship of FORGE?": r"Korea",
    "Who signed the critical minerals MoU with India on behalf of the United States?": r"Raimondo",
    "Which US institution is leading Project Vault?": r"Export-Import Bank|EXIM",
    "Which consortium received USD 600 million from the US International Development Finance Corporation?":
        r"Orion",
    "How large is the EXIM Direct Loan approved for Project Vault?": r"10 billion",
    "How much EXIM support was earmarked for lithium in Arkansas?": r"400 million",
    "How much did the DFC commit for tungsten in Kazakhstan?": r"700 million",
    "How much did the DFC provide for rare earths in Brazil?": r"565 million",
    "How large is Germany's national critical-minerals fund?": None,  # not in the articles
}


def test_ten_concurrent_api_questions_get_their_own_answers(ui_server, ui_client):
    def ask(question: str) -> dict:
        return ui_client(ui_server.url).predict(question, [], 5, "extractive", "", "", "", api_name="/ask")

    with ThreadPoolExecutor(len(CONCURRENT_QUESTIONS)) as pool:
        answers = dict(zip(CONCURRENT_QUESTIONS, pool.map(ask, CONCURRENT_QUESTIONS), strict=True))
    for question, expected in CONCURRENT_QUESTIONS.items():
        got = answers[question]
        assert got["question"] == question
        if expected is None:
            assert got["abstained"] and got["answer"].startswith("Not in these articles")
        else:
            assert not got["abstained"] and re.search(expected, got["answer"]), got["answer"]
            assert got["citations"] and all(c["chunk_id"] for c in got["citations"])


def test_api_streams_sources_then_draft_then_the_answer(ui_server, ui_client, output_dir):
    job = ui_client(ui_server.url).submit("What did EXIM approve under Project Vault?", api_name="/ask")
    started, seen, outputs = time.perf_counter(), {}, []
    for output in job:
        seen.setdefault(output.get("event", "final"), round(time.perf_counter() - started, 3))
        outputs.append(output)
    assert [o.get("event") for o in outputs][:2] == ["sources", "token"]
    assert "US, India Lead Global Push" in outputs[0]["passages"][0]["title"]
    final = outputs[-1]
    assert "event" not in final and "10 billion" in final["answer"] and final["citations"]
    assert set(final) >= {"question", "answer", "abstained", "citations", "backend", "timings", "searched", "nearest"}
    (output_dir / "api_stream_seconds.json").write_text(json.dumps(seen, indent=1))


def test_api_follow_up_uses_history_and_bad_options_explain_themselves(ui_server, ui_client):
    api = ui_client(ui_server.url)
    history = json.dumps(["What did EXIM approve under Project Vault?"])
    follow_up = api.predict("And how much went to Brazil?", history, api_name="/ask")
    assert "Brazil" in follow_up["searched"] and "Project Vault" in follow_up["searched"]
    for arguments, message in [(("", []), "empty"), (("Hi?", [], 5, "openai"), "not available"),
                               (("Hi?", [], 5, "extractive", "31/01/2025"), "2025-01-31")]:
        with pytest.raises(Exception, match=message):
            api.predict(*arguments, api_name="/ask")


def test_api_filters_restrict_the_sources(ui_server, ui_client):
    api = ui_client(ui_server.url)
    question = "Who signed the critical minerals MoU with India on behalf of the United States?"
    greenwatch = api.predict(question, [], 5, "extractive", "", "", "Greenwatch", api_name="/ask")
    assert "Raimondo" in greenwatch["answer"]
    assert {c["publisher"] for c in greenwatch["citations"]} == {"Greenwatch"}
    too_late = api.predict(question, [], 5, "extractive", "2025-01-01", "", "Greenwatch", api_name="/ask")
    assert too_late["abstained"] and not too_late["citations"]


# -- serving safely --------------------------------------------------------------------------------


def test_serving_beyond_localhost_without_auth_is_refused(launcher, tmp_path):
    done = launcher.run(tmp_path, "--host", "0.0.0.0", "--port", "7999")
    assert done.returncode != 0
    assert "refusing to serve on 0.0.0.0" in done.stderr and "RAG_UI_AUTH" in done.stderr


def test_serving_on_a_busy_port_says_to_pick_another_with_port(launcher, tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = launcher.run(tmp_path, "--port", str(port))
    assert done.returncode != 0
    assert f"port {port} on 127.0.0.1 is in use" in done.stderr and f"--port {port + 1}" in done.stderr
    assert "GRADIO_SERVER_PORT" not in done.stderr


def test_with_auth_set_the_api_requires_the_login(ui_server, ui_client, launcher):
    server = launcher.serve(ui_server.root, RAG_UI_AUTH="reader:s3cret-pass")
    question = "Who announced Project Vault?"
    call = urllib.request.Request(server.url + "gradio_api/call/ask", data=json.dumps({"data": [question]}).encode(),
                                  headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(call, timeout=30)
    assert refused.value.code == 401
    with pytest.raises(AuthenticationError, match="credentials were not provided"):
        ui_client(server.url).predict(question, api_name="/ask")
    with pytest.raises(ValueError, match="Could not login"):
        ui_client(server.url, auth=("reader", "wrong")).predict(question, api_name="/ask")
    answer = ui_client(server.url, auth=("reader", "s3cret-pass")).predict(question, api_name="/ask")
    assert "Trump" in answer["answer"]

    # Guessing: wrong passwords wait out a backoff (seconds, after the few failures it lets
    # through) to be refused, but the right one, sent during the backoff, is let in at once.
    for _ in range(2):  # twice: the right password also ends the backoff
        started = time.monotonic()
        assert all(login(server.url, "reader", f"guess-{n}") == 400 for n in range(6))
        guessing = time.monotonic() - started
        assert guessing >= 1 + 2, f"six wrong passwords in {guessing:.1f}s: not slowed"
        started = time.monotonic()
        assert login(server.url, "reader", "s3cret-pass") == 200, "the owner is locked out by guessing"
        owner_in = time.monotonic() - started
        assert owner_in < 3, f"the right password waited {owner_in:.1f}s"
    print(f"\nsix wrong passwords in {guessing:.1f}s, then the right one let in within {owner_in:.2f}s")


def login(url: str, user: str, password: str) -> int:
    form = urllib.parse.urlencode({"username": user, "password": password}).encode()
    try:
        with urllib.request.urlopen(urllib.request.Request(url + "login", data=form), timeout=30) as done:
            return done.status
    except urllib.error.HTTPError as refused:
        return refused.code


def test_the_login_backoff_doubles_for_wrong_passwords_and_never_refuses_the_right_one():
    import asyncio

    now, waited = [0.0], []

    async def sleep(seconds):
        waited.append(seconds)

    guard = LoginGuard("reader", "pw", clock=lambda: now[0], sleep=sleep)
    # On a thread of its own: the browser tests' Playwright keeps an event loop running on this one.
    worker = ThreadPoolExecutor(1)
    check = lambda user, password: worker.submit(asyncio.run, guard.check(user, password)).result()  # noqa: E731
    assert [check("reader", "x") for _ in range(3)] == [False] * 3 and guard.locked_until == 0
    assert not check("reader", "y") and guard.locked_until == 1.0
    assert not check("someone", "pw") and waited[-1] == 1.0 and guard.locked_until == 3.0
    now[0] = 3.0
    assert not check("reader", "z") and waited[-1] == 0 and guard.locked_until == 7.0
    assert check("reader", "pw"), "the right password is refused during the backoff"
    assert guard.failures == 0 and guard.locked_until == 0
    for _ in range(40):
        now[0] = guard.locked_until
        check("reader", "x")
    assert guard.locked_until - now[0] == LoginGuard.LONGEST_LOCK_S


def test_a_saved_conversation_restores_its_turns_and_sources_and_junk_restores_nothing():
    from ui.chat import ChatView, Turn, restored_conversation, saved_conversation

    turns = [Turn(f"question {i}", {"answer": f"answer {i}"}, f"<p>sources {i}</p>") for i in range(40)]
    messages = [m for i in range(40) for m in ({"role": "user", "content": f"q{i}"},
                                               {"role": "assistant", "content": f"a{i}"})]
    saved = json.loads(json.dumps(saved_conversation(ChatView(messages, "", turns, "copied", done=True))))
    view = restored_conversation(saved)
    assert len(view.turns) == len(view.messages) // 2 == 30, "the newest turns, each with its two messages"
    assert view.turns[-1] == turns[-1] and view.messages[0]["content"] == "q10"
    assert "sources 39" in view.panel and view.copy_text == "copied"
    for junk in ({}, None, {"turns": "x"}, {"turns": [{"nope": 1}], "messages": []}, []):
        assert restored_conversation(junk).turns == []


def test_warm_up_loads_what_the_first_question_waits_for(corpus_settings, assistant):
    from rag.answer import entities

    entities._pipeline.cache_clear()
    service = ChatService(corpus_settings, assistant)
    service.warm_up()
    assert entities._pipeline.cache_info().currsize == 1
    assert service._examples is not None and service._examples[1]  # the first page finds them ready


def test_a_failed_warm_up_leaves_the_error_to_the_first_question(tmp_path):
    service = ChatService(Settings(corpus_dir=tmp_path / "c", index_dir=tmp_path / "i"))
    service.warm_up()  # no index: nothing raised here; the chat says `rag ingest` when asked


@pytest.mark.parametrize(
    ("question", "refusal", "respelled"),
    [
        ("What did Rubin sign?", "Not in these articles. No article mentions Rubin (did you mean Rubio?).",
         "What did Rubio sign?"),
        ("Did Rubin meet Jaishankor?",
         "Not in these articles. No article mentions Rubin and Jaishankor (did you mean Rubio and Jaishankar?).",
         "Did Rubio meet Jaishankar?"),
        ("Did Rubin meet Iraq?", "Not in these articles. No article mentions Rubin and Iraq (did you mean Rubio?).", ""),
        ("What did Iraq sign?", "Not in these articles. No article mentions Iraq.", ""),
    ],
)
def test_a_refusal_suggesting_names_gives_the_question_so_spelt(question, refusal, respelled):
    assert respelled_question(question, refusal) == respelled
