"""The chat driven in Debian's headless Chromium through Playwright, against the real server.

Times to the first visible token, to the sources panel and to the finished answer are measured in
the page (a MutationObserver), for every question asked, and written to
test-output/ui/browser_timings.json. The server has answered the sample question once before, so
its figures are warm.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

pytest_plugins = ["tests.ui_server"]
playwright = pytest.importorskip("playwright.sync_api")

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
]
ANSWER_TIMEOUT_MS = 60_000
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


@pytest.fixture(scope="session")
def browser_context(tmp_path_factory):
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)")
    with playwright.sync_playwright() as driver:
        context = driver.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")), executable_path=str(CHROMIUM), headless=True,
            args=CHROMIUM_ARGS, viewport={"width": 1440, "height": 900},
        )
        context.set_default_timeout(ANSWER_TIMEOUT_MS)
        yield context
        context.close()


@pytest.fixture(scope="module", autouse=True)
def _save_timings(output_dir):
    yield
    (output_dir / "browser_timings.json").write_text(json.dumps(TIMINGS, indent=1, ensure_ascii=False))


@pytest.fixture
def page(browser_context, ui_server):
    page = browser_context.new_page()
    page.goto(ui_server.url)
    page.wait_for_selector("#question textarea")
    yield page
    page.close()


def ask(page, question: str, turn: int):
    """Ask in the page and wait for the answer bubble, recording how long each part took to show."""
    page.evaluate(TIMER_JS, turn)
    page.fill("#question textarea", question)
    page.press("#question textarea", "Enter")
    page.wait_for_function("window.__marks.final !== undefined")
    marks = page.evaluate("window.__marks")
    measured = {name: round(marks[name] - marks["start"]) for name in ("token", "sources", "final") if name in marks}
    TIMINGS.append({"question": question, **measured})
    return page.locator("#chat .answer").nth(turn)


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

    whole = page.request.get(ui_server.url + vault.locator("a.open-article").get_attribute("href").split("#")[0])
    assert whole.ok and "Project Vault" in whole.text()

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

