"""The chat driven in Debian's headless Chromium through Playwright, against the real server.

Times to the first visible token, to the sources panel and to the finished answer are measured in
the page (a MutationObserver), for every question asked, and written to
test-output/ui/browser_timings.json. The server has answered the sample question once before, so
its figures are warm.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.ui_server import START_TIMEOUT_S, server_env

pytest_plugins = ["tests.ui_server", "tests.browser"]
playwright = pytest.importorskip("playwright.sync_api")

pytestmark = pytest.mark.browser

ENTER_ATTEMPTS, ENTER_RETRY_MS = 5, 3_000
SAMPLE = "What did EXIM approve under Project Vault?"
TIMINGS: list[dict] = []  # milliseconds from pressing Enter to the first token, the sources, the answer

# Records when the newest turn first shows a token, its sources and its finished answer.
TIMER_JS = """
(turn) => {
  const marks = {start: performance.now()};
  const finals = () => document.querySelectorAll('#chat .answer.final, #chat .answer.error').length;
  const before = finals();
  const look = () => {
    const now = performance.now();
    const bubble = document.querySelectorAll('#chat .answer')[turn];
    const text = bubble ? bubble.querySelector('.answer-text') : null;
    const draft = text && !text.closest('.pending') ? text.textContent.replace('Writing the answer…', '').trim() : '';
    if (!marks.sources && document.getElementById(`source-${turn}-1`)) marks.sources = now;
    if (!marks.token && draft) marks.token = now;
    if (!marks.final && finals() > before) {
      marks.final = now;
      marks.token = marks.token || now;
      observer.disconnect();
    }
  };
  const observer = new MutationObserver(look);
  observer.observe(document.body, {subtree: true, childList: true, characterData: true});
  window.__marks = marks;
}
"""


@pytest.fixture(scope="module", autouse=True)
def _save_timings(output_dir):
    yield
    (output_dir / "browser_timings.json").write_text(json.dumps(TIMINGS, indent=1, ensure_ascii=False))


def open_fresh_chat(page, url: str) -> None:
    """Open the chat with no conversation kept from an earlier test (the browser keeps one)."""
    page.goto(url)
    page.wait_for_selector("#question textarea")
    page.evaluate("localStorage.clear()")
    page.reload()
    page.wait_for_selector("#question textarea")


@pytest.fixture
def page(browser_context, ui_server):
    page = browser_context.new_page()
    open_fresh_chat(page, ui_server.url)
    yield page
    page.close()


def ask(page, question: str, turn: int):
    """Ask in the page and wait for the answer bubble, recording how long each part took to show."""
    page.evaluate(TIMER_JS, turn)
    send(page, question)
    page.wait_for_function("window.__marks.final !== undefined")
    marks = page.evaluate("window.__marks")
    measured = {name: round(marks[name] - marks["start"]) for name in ("token", "sources", "final") if name in marks}
    TIMINGS.append({"question": question, **measured})
    return page.locator("#chat .answer").nth(turn)


def send(page, question: str) -> None:
    """Type the question and press Enter until its turn starts.

    Gradio ignores Enter while the chat's previous event is still finishing (trigger mode "once"):
    just after an answer's last words or a blank question's warning. A user then presses Enter
    again, and so does this; an Enter while the question waits in the queue is ignored the same
    way, so it never asks twice."""
    page.fill("#question textarea", question)
    turns = page.locator("#chat .answer").count()
    for _ in range(ENTER_ATTEMPTS):
        page.press("#question textarea", "Enter")
        try:  # its answer bubble shows with the first reply
            page.wait_for_function("n => document.querySelectorAll('#chat .answer').length > n",
                                   arg=turns, timeout=ENTER_RETRY_MS)
            return
        except playwright.TimeoutError:
            continue


def upload(page, path: Path):
    """Upload through the file input and wait for this upload's report (not an earlier one's)."""
    report = "() => document.querySelector('#upload-status ul')?.outerHTML || ''"
    before = page.evaluate(report)
    page.set_input_files("#upload input[type=file]", str(path))
    page.wait_for_function(f"before => ({report})() && ({report})() !== before", arg=before)
    return page.locator("#upload-status")


def test_ask_see_sources_cite_copy_and_vote(page, ui_server, browser_context, output_dir):
    browser_context.grant_permissions(["clipboard-read", "clipboard-write"], origin=ui_server.url.rstrip("/"))
    bubble = ask(page, SAMPLE, turn=0)
    assert "10 billion" in bubble.inner_text()
    assert TIMINGS[-1]["sources"] <= TIMINGS[-1]["final"], "the sources show before the answer is complete"

    vault = page.locator("#source-0-1")
    assert "US, India Lead Global Push" in vault.locator(".source-title").inner_text()
    assert "10 billion" in vault.locator("mark").all_inner_texts()[-1]

    page.locator("#sources").evaluate("panel => panel.scrollTo(0, panel.scrollHeight)")
    bubble.locator("a.cite").first.click()
    playwright.expect(vault).to_have_class("source focused")
    playwright.expect(vault).to_be_in_viewport()
    page.screenshot(path=str(output_dir / "chat.png"))

    page.click("#copy-answer")
    copied = page.evaluate("navigator.clipboard.readText()")
    assert "10 billion" in copied and "[1] US, India Lead Global Push" in copied

    page.locator("#chat button[aria-label=Like]").first.click()
    page.get_by_text("feedback saved").wait_for()
    vote = json.loads(ui_server.feedback_file.read_text().splitlines()[-1])
    assert (vote["vote"], vote["question"]) == ("up", SAMPLE) and vote["chunk_ids"] and vote["timestamp"]


def test_the_whole_article_opens_at_its_cited_sentences(page, ui_server, browser_context, output_dir):
    ask(page, SAMPLE, turn=0)
    link = page.locator("#source-0-1 a.open-article")
    href = link.get_attribute("href")
    assert href.startswith("article?doc=") and str(ui_server.root) not in href and "file=" not in href
    with browser_context.expect_page() as opened:
        link.click()
    article = opened.value
    article.wait_for_selector(".whole-article mark")
    assert article.locator(".whole-article h1").inner_text().startswith("US, India Lead Global Push")
    assert "ANI" in article.locator(".article-meta").inner_text()
    assert any("10 billion" in mark for mark in article.locator(".whole-article mark").all_inner_texts())
    playwright.expect(article.locator("#cited")).to_be_in_viewport()
    assert article.evaluate("window.scrollY") > 0, "the cited sentence is further down than the first screen"
    article.screenshot(path=str(output_dir / "article.png"))
    article.close()

    missing = browser_context.new_page()
    missing.goto(ui_server.url + "article?doc=../../etc/passwd")
    playwright.expect(missing.locator(".whole-article h1")).to_have_text("Article not found")
    missing.close()


def test_the_conversation_survives_a_reload_until_new_chat(page):
    ask(page, SAMPLE, turn=0)
    page.reload()
    playwright.expect(page.locator("#chat .answer.final")).to_have_count(1)
    assert "10 billion" in page.locator("#chat .answer.final").inner_text()
    playwright.expect(page.locator("#source-0-1")).to_be_visible()
    follow_up = ask(page, "And how much went to Brazil?", turn=1)
    assert "565 million" in follow_up.inner_text(), "the restored turn is history for a follow-up"

    page.click("#new-chat")
    playwright.expect(page.locator("#chat .answer")).to_have_count(0)
    page.reload()
    page.wait_for_selector("#question textarea")
    page.wait_for_timeout(1500)  # the restore runs on load: give it the chance to bring anything back
    assert page.locator("#chat .answer").count() == 0


def test_the_examples_are_the_corpus_own_and_answer(page):
    examples = page.locator("#examples button.example")
    playwright.expect(examples).to_have_count(4)
    assert examples.first.inner_text() == SAMPLE  # listed in corpus/metadata.json
    playwright.expect(page.get_by_text("Home", exact=True)).to_be_hidden()  # no navigation bar
    examples.first.click()
    page.wait_for_selector("#chat .answer.final")
    assert "10 billion" in page.locator("#chat .answer.final").inner_text()


def test_on_a_phone_the_sidebar_starts_closed_and_the_question_box_works(browser_context, ui_server, output_dir):
    page = browser_context.new_page()
    page.set_viewport_size({"width": 390, "height": 844})
    open_fresh_chat(page, ui_server.url)
    playwright.expect(page.locator(".sidebar.open")).to_have_count(0)
    page.locator("#question textarea").click()  # fails if anything covers it
    bubble = ask(page, SAMPLE, turn=0)
    assert "10 billion" in bubble.inner_text()
    page.screenshot(path=str(output_dir / "phone.png"))
    page.close()


def test_follow_up_is_searched_with_the_previous_question(page, output_dir):
    ask(page, SAMPLE, turn=0)
    follow_up = ask(page, "And how much went to Brazil?", turn=1)
    page.screenshot(path=str(output_dir / "follow-up.png"))
    searched = follow_up.locator(".searched").inner_text()
    assert "Brazil" in searched and "Project Vault" in searched
    assert "565 million" in follow_up.inner_text()


def test_abstention_says_so_and_shows_the_nearest_passages(page):
    bubble = ask(page, "What did Germany's critical minerals fund invest in?", turn=0)
    assert bubble.locator(".abstain-banner").inner_text() == "Not in these articles"
    assert bubble.locator(".nearest li").count() >= 1
    nearest = page.locator("#sources .turn.latest .source")
    assert nearest.count() >= 1 and "nearest" in nearest.first.inner_text().lower()


def test_a_filter_that_hides_the_answer_offers_to_ask_again_without_it(page, output_dir):
    page.fill("#date-to input", "2024-12-31")
    page.press("#date-to input", "Tab")
    bubble = ask(page, SAMPLE, turn=0)
    assert "No article within the filter (published on or before 2024-12-31)" in bubble.inner_text()
    retry = page.locator("#ask-unfiltered")
    playwright.expect(retry).to_be_visible()
    page.screenshot(path=str(output_dir / "filter-refusal.png"))
    retry.click()
    page.wait_for_function("document.querySelectorAll('#chat .answer.final').length >= 2")
    assert "10 billion" in page.locator("#chat .answer.final").nth(1).inner_text()
    assert page.input_value("#date-to input") == ""
    playwright.expect(retry).to_be_hidden()


def article_count(page) -> int:
    return int(re.search(r"(\d+) articles", page.locator("#index-info").inner_text()).group(1))


def test_uploaded_article_is_answered_at_once(page, tmp_path, output_dir):
    article = tmp_path / "Kestrel refinery (draft).md"
    article.write_text(
        "# Valdoria Opens the Kestrel Lithium Refinery\n\n"
        "Valdoria's state mining company opened the Kestrel lithium refinery on 3 March 2026.\n\n"
        "The Kestrel refinery cost USD 2.4 billion to build and will process 50,000 tonnes of spodumene a year.\n\n"
        "Officials said the plant would supply battery makers in the region from 2027.\n"
    )
    before = article_count(page)
    status = upload(page, article)
    assert "added “Valdoria Opens the Kestrel Lithium Refinery”" in status.inner_text()
    assert "Now searchable" in status.inner_text()
    playwright.expect(page.locator("#index-info")).to_contain_text(f"{before + 1} articles")

    bubble = ask(page, "How much did the Kestrel lithium refinery cost?", turn=0)
    assert "2.4 billion" in bubble.inner_text()
    assert "Kestrel" in page.locator("#source-0-1 .source-title").inner_text()
    page.screenshot(path=str(output_dir / "upload.png"))


def test_bad_upload_is_explained_and_nothing_else_is_lost(page, ui_server, tmp_path):
    binary = tmp_path / "scan.txt"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 8)
    status = upload(page, binary)
    assert "✗ scan.txt:" in status.inner_text() and "Nothing was added" in status.inner_text()
    assert not list((ui_server.root / "corpus" / "uploads").glob("scan*"))

    bubble = ask(page, SAMPLE, turn=0)
    assert "10 billion" in bubble.inner_text()


def test_the_same_article_uploaded_twice_is_kept_once(page, ui_server, tmp_path):
    article = tmp_path / "ostrava.md"
    article.write_text("# Ostrava Nickel Smelter Restarts\n\nThe Ostrava nickel smelter restarted on Friday.\n")
    assert "added" in upload(page, article).inner_text()
    again = upload(page, article).inner_text()
    assert "✗ ostrava.md: already in the index" in again and "Nothing was added" in again
    assert [p.name for p in (ui_server.root / "corpus" / "uploads").glob("ostrava*")] == ["ostrava.md"]


def test_article_html_is_shown_as_text_never_run(page, tmp_path):
    hostile = tmp_path / "quillon.txt"
    hostile.write_text(
        "Quillon Cobalt Exchange Opens in Harbin Bay\n"
        "The Quillon cobalt exchange opened in Harbin Bay on Monday with 14 member firms. "
        "<script>window.__pwned=1</script>\n"
        'Traders said the exchange <img src=x onerror="window.__pwned=1"> would publish daily cobalt prices '
        "for [the buyers](http://evil.example/) in the region.\n"
    )
    assert "added" in upload(page, hostile).inner_text()

    bubble = ask(page, "How many member firms joined the Quillon cobalt exchange?", turn=0)
    assert "14 member firms" in bubble.inner_text()
    passage = page.locator("#source-0-1 .passage").inner_text()
    assert "<script>window.__pwned=1</script>" in passage
    assert '<img src=x onerror="window.__pwned=1">' in passage
    assert "[the buyers](http://evil.example/)" in passage
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert page.locator("#chat script, #sources script, #chat img[src=x], #sources img[src=x]").count() == 0
    assert page.locator("a[href*='evil.example']").count() == 0



def test_over_the_bbc_corpus_the_examples_are_its_headlines_and_answer(browser_context, launcher, tmp_path):
    from rag.evals.suites import load_suites
    from rag.settings import Settings

    suite = load_suites()["bbc"]
    if reason := suite.unavailable():
        pytest.skip(f"the BBC corpus: {reason}")
    suite.prepare(suite.settings(Settings()))  # the eval suite's index, shared with its run
    server = launcher.serve(tmp_path, RAG_CORPUS_DIR=str(suite.corpus_dir), RAG_INDEX_DIR=str(suite.index_dir))
    headlines = {p.read_text(errors="replace").split("\n", 1)[0].strip() for p in suite.corpus_dir.glob("*/*.txt")}

    page = browser_context.new_page()
    open_fresh_chat(page, server.url)
    examples = page.locator("#examples button.example")
    playwright.expect(examples).to_have_count(4)
    labels = examples.all_inner_texts()
    assert all(label.removeprefix("Ask about: ") in headlines for label in labels), labels

    examples.first.click()
    page.wait_for_selector("#chat .answer.final")
    assert page.locator("#chat .abstain-banner").count() == 0
    cited = page.locator("#sources .turn.latest .source-title").all_inner_texts()
    assert labels[0].removeprefix("Ask about: ") in cited
    page.close()


def box(page, selector: str) -> dict:
    return page.locator(selector).first.bounding_box()


def overlap(a: dict, b: dict) -> bool:
    return (a["x"] < b["x"] + b["width"] and b["x"] < a["x"] + a["width"]
            and a["y"] < b["y"] + b["height"] and b["y"] < a["y"] + a["height"])


@pytest.mark.parametrize("width", [1440, 1024])
def test_the_trash_button_and_the_upload_label_cover_nothing(browser_context, ui_server, width):
    page = browser_context.new_page()
    page.set_viewport_size({"width": width, "height": 900})
    open_fresh_chat(page, ui_server.url)
    assert not overlap(box(page, "#upload label"), box(page, "#upload .icon-wrap"))
    # A long question fills its bubble's whole width, up to the trash button's corner.
    ask(page, f"{SAMPLE} And what did the United States and India agree at the ministerial meeting?", turn=0)
    assert not overlap(box(page, "#chat button[aria-label=Clear]"), box(page, "#chat .message"))  # the bubble
    page.close()


def test_on_a_phone_the_examples_show_on_the_first_screen(browser_context, ui_server):
    page = browser_context.new_page()
    page.set_viewport_size({"width": 390, "height": 844})
    open_fresh_chat(page, ui_server.url)
    examples = page.locator("#examples button.example")
    playwright.expect(examples).to_have_count(4)
    playwright.expect(examples.first).to_be_in_viewport(ratio=1)
    page.close()


def test_a_filter_that_hides_every_passage_lists_no_empty_closest_passages(page):
    page.fill("#date-from input", "2030-01-01")
    page.press("#date-from input", "Tab")
    bubble = ask(page, SAMPLE, turn=0)
    assert "No article within the filter (published on or after 2030-01-01)" in bubble.inner_text()
    panel = page.locator("#sources .turn.latest").inner_text()
    assert "Closest passages" not in panel + bubble.inner_text() and "No passage came close." in panel


def test_a_weak_match_refusal_says_so_in_words_without_a_score(page):
    bubble = ask(page, "What did the ministers eat for lunch?", turn=0)
    assert bubble.locator(".abstain-banner").inner_text() == "Not in these articles"
    reason = bubble.locator(".answer-text").inner_text()
    assert "The closest passage is only loosely related to the question" in reason and "score" not in reason


def test_a_vote_shows_again_after_a_reload(page):
    ask(page, SAMPLE, turn=0)
    page.locator("#chat button[aria-label=Like]").first.click()
    page.get_by_text("feedback saved").wait_for()
    playwright.expect(page.locator("#chat button[aria-label=Liked]")).to_have_count(1)
    page.wait_for_timeout(500)  # the browser's storage is written after the vote's event
    page.reload()
    playwright.expect(page.locator("#chat .answer.final")).to_have_count(1)
    playwright.expect(page.locator("#chat button[aria-label=Liked]")).to_have_count(1)
    follow_up = ask(page, "And how much went to Brazil?", turn=1)
    assert "565 million" in follow_up.inner_text()
    playwright.expect(page.locator("#chat button[aria-label=Liked]")).to_have_count(1)  # still on the first

    page.click("#new-chat")
    playwright.expect(page.locator("#chat .answer")).to_have_count(0)
    ask(page, SAMPLE, turn=0)
    playwright.expect(page.locator("#chat button[aria-label=Liked]")).to_have_count(0)  # a new chat has no votes


def test_a_date_that_is_no_date_is_an_error_not_the_date_before_it(page):
    page.fill("#date-to input", "2024-12-31")
    page.press("#date-to input", "Tab")
    page.fill("#date-to input", "last year")  # Gradio's box keeps 2024-12-31 as its value
    page.press("#date-to input", "Tab")
    bubble = ask(page, SAMPLE, turn=0)
    assert "error" in bubble.get_attribute("class")
    assert "The to date must look like 2025-01-31, not 'last year'." in bubble.inner_text()
    page.fill("#date-to input", "")
    assert "10 billion" in ask(page, SAMPLE, turn=1).inner_text()


def test_beside_the_filters_an_index_without_dates_or_publishers_says_so(browser_context, ui_server, launcher,
                                                                          tmp_path):
    page = browser_context.new_page()
    open_fresh_chat(page, ui_server.url)  # the bundled articles have both
    playwright.expect(page.locator("#index-info")).to_contain_text("articles")
    assert "no dates" not in page.locator("#filter-note").inner_text()
    page.close()

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for name, text in {"tea.txt": "Tea prices rise\n\nTea prices rose by a tenth in Kenya this week.\n",
                       "rail.txt": "Rail strike ends\n\nThe rail strike in Wales ended after three days.\n"}.items():
        (corpus / name).write_text(text)
    ingest = subprocess.run([sys.executable, "-m", "rag.cli", "ingest"], cwd=tmp_path, env=server_env(tmp_path),
                            capture_output=True, text=True, timeout=START_TIMEOUT_S)
    assert ingest.returncode == 0, ingest.stderr
    server = launcher.serve(tmp_path)
    page = browser_context.new_page()
    open_fresh_chat(page, server.url)
    note = page.locator("#filter-note")
    playwright.expect(note).to_have_text(
        "This index has no dates or publishers: these filters would hide every article.")
    note.scroll_into_view_if_needed()  # below the "Answers" section, right under the filters
    playwright.expect(page.locator("#publisher")).to_be_in_viewport()
    playwright.expect(note).to_be_in_viewport()
    page.close()


def test_a_name_typed_in_lower_case_is_searched_as_the_index_spells_it(page):
    bubble = ask(page, "What did the US and japn agree on rare earths?", turn=0)
    assert bubble.locator(".searched").inner_text() == "Searched as: What did the US and Japan agree on rare earths?"
    assert bubble.locator(".abstain-banner").count() == 0


def test_a_refusal_that_suggests_a_spelling_offers_to_ask_so(page):
    bubble = ask(page, "What did Rubin sign?", turn=0)
    assert "No article mentions Rubin (did you mean Rubio?)" in bubble.inner_text()
    respelled = page.locator("#ask-respelled")
    playwright.expect(respelled).to_have_text("Ask: What did Rubio sign?")
    respelled.click()
    page.wait_for_function("document.querySelectorAll('#chat .answer.final').length >= 2")
    answer = page.locator("#chat .answer.final").nth(1)
    assert answer.locator(".abstain-banner").count() == 0 and "Rubio" in answer.inner_text()
    assert page.locator("#chat .question").nth(1).inner_text() == "What did Rubio sign?"
    playwright.expect(respelled).to_be_hidden()


def test_an_elliptical_follow_up_is_searched_with_the_previous_question(page):
    ask(page, SAMPLE, turn=0)
    follow_up = ask(page, "How much?", turn=1)
    assert follow_up.locator(".searched").inner_text() == (
        "Searched as: How much? (following: What did EXIM approve under Project Vault)")
    assert "10 billion" in follow_up.locator(".answer-text").inner_text()


def test_over_the_bbc_corpus_typos_and_follow_ups_are_resolved(browser_context, launcher, tmp_path):
    from rag.evals.suites import load_suites
    from rag.settings import Settings

    suite = load_suites()["bbc"]
    if reason := suite.unavailable():
        pytest.skip(f"the BBC corpus: {reason}")
    suite.prepare(suite.settings(Settings()))
    server = launcher.serve(tmp_path, RAG_CORPUS_DIR=str(suite.corpus_dir), RAG_INDEX_DIR=str(suite.index_dir))
    page = browser_context.new_page()
    open_fresh_chat(page, server.url)

    bubble = ask(page, "Who kidnapped Margret Hasan?", turn=0)  # a typo in each word
    assert bubble.locator(".searched").inner_text() == "Searched as: Who kidnapped Margaret Hassan?"
    assert bubble.locator(".abstain-banner").count() == 0 and "Margaret Hassan" in bubble.inner_text()

    ask(page, "Who bid to take over the London Stock Exchange?", turn=1)
    follow_up = ask(page, "How much per share?", turn=2)
    assert "(following: Who bid to take over the London Stock Exchange)" in follow_up.locator(".searched").inner_text()
    assert "530 pence per LSE share" in follow_up.locator(".answer-text").inner_text()
    page.close()
