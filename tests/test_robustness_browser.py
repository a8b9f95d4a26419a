"""The chat in headless Chromium, with what tests/test_ui_browser.py does not already check: empty
and huge questions get a message and the chat carries on; an uploaded article's Markdown link and
image, quoted in an answer, are shown as text: no <a>, no <img>, no request to their host, no
script run."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.browser import ANSWER_TIMEOUT_MS, CHROMIUM, CHROMIUM_ARGS
from tests.test_robustness_hostile import HOSTILE_TEXT
from tests.test_ui_browser import open_fresh_chat, send
from tests.ui_server import warm_chat

pytest_plugins = ["tests.ui_server", "tests.robustness_server"]
playwright = pytest.importorskip("playwright.sync_api")

pytestmark = pytest.mark.browser

EXIM = "What did EXIM approve under Project Vault?"
FINISHED = "#chat .answer.final, #chat .answer.error"


class BrowserThread:
    """Chromium driven from a thread of its own. Playwright's sync API will not start in a thread
    where another instance is running, and tests/test_ui_browser.py keeps one for the session:
    this way the two modules run in any order."""

    def __init__(self, profile: Path):
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="chromium")
        self._pool.submit(self._launch, profile).result()

    def _launch(self, profile: Path) -> None:
        self._driver = playwright.sync_playwright().start()
        self._context = self._driver.chromium.launch_persistent_context(
            str(profile),
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1440, "height": 900},
        )
        self._context.set_default_timeout(ANSWER_TIMEOUT_MS)

    def on_page(self, url: str, check: Callable, *args) -> None:
        """Run `check(page, *args)` on a fresh chat page, in the browser's thread."""
        self._pool.submit(self._on_page, url, check, *args).result()

    def _on_page(self, url: str, check: Callable, *args) -> None:
        page = self._context.new_page()
        page.requests, page.dialogs = [], []  # every request it makes, every dialog a script opens
        page.on("request", lambda request: page.requests.append(request.url))
        page.on("dialog", lambda dialog: (page.dialogs.append(dialog.message), dialog.dismiss()))
        try:
            open_fresh_chat(page, url)
            check(page, *args)
        finally:
            page.close()

    def close(self) -> None:
        self._pool.submit(lambda: (self._context.close(), self._driver.stop())).result()
        self._pool.shutdown()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)")
    chromium = BrowserThread(tmp_path_factory.mktemp("chromium-robustness"))
    yield chromium
    chromium.close()


def submit(page, question: str):
    """Ask, and wait for this question's bubble to finish (an answer or an error)."""
    before = page.locator(FINISHED).count()
    send(page, question)
    page.wait_for_function(f"n => document.querySelectorAll('{FINISHED}').length > n", arg=before)
    return page.locator("#chat .answer").last


def test_an_empty_question_gets_a_warning_and_the_chat_carries_on(browser, robustness_server):
    def check(page):
        for blank in ("", "   \n  "):
            page.fill("#question textarea", blank)
            page.press("#question textarea", "Enter")
            playwright.expect(page.get_by_text("Type a question first.").last).to_be_visible()
        assert page.locator("#chat .answer").count() == 0, "an empty question must not start a turn"
        assert "10 billion" in submit(page, EXIM).inner_text()

    browser.on_page(robustness_server.url, check)


def test_a_huge_question_gets_a_message_that_says_what_to_fix(browser, robustness_server):
    def check(page):
        bubble = submit(page, "Why? " * 20_480)
        assert "error" in bubble.get_attribute("class")
        assert "102,399 characters long; the limit is 2,000" in bubble.inner_text()
        assert "10 billion" in submit(page, EXIM).inner_text()

    browser.on_page(robustness_server.url, check)


@pytest.fixture(scope="module")
def every_answer_server(tmp_path_factory):
    """A chat that shows every candidate answer: the markup test is about how hostile text in an
    answer is shown, and its odd sentence is answered at about the confidence threshold."""
    with warm_chat(tmp_path_factory.mktemp("every-answer-ui"), RAG_MIN_CONFIDENCE="0") as server:
        yield server


def test_markdown_link_and_image_in_an_answer_stay_text(browser, every_answer_server, tmp_path):
    article = tmp_path / "zephyr-plant.txt"
    article.write_text(HOSTILE_TEXT)

    def check(page):
        page.set_input_files("#upload input[type=file]", str(article))
        playwright.expect(page.locator("#upload-status")).to_contain_text("Now searchable")

        bubble = submit(page, "What can visitors click for the Zephyr tour timetable?")
        shown = bubble.inner_text()
        assert "[click](javascript:alert(1))" in shown and "![x](http://evil.example/x.png)" in shown
        passage = page.locator("#sources .turn.latest .passage").first.inner_text()
        assert "![x](http://evil.example/x.png)" in passage
        bubble = submit(page, "How many tonnes of carbonate will the Zephyr plant produce?")
        assert "<script>alert(document.cookie)</script>" in bubble.inner_text()
        assert '<img src=x onerror="alert(1)">' in bubble.inner_text()

        page.wait_for_timeout(500)  # time for any image or script the page might wrongly load
        scope = ":is(#chat, #sources)"
        assert page.locator(f"{scope} a[href^='javascript:'], {scope} img").count() == 0
        assert page.locator(f"{scope} a:not(.cite):not(.open-article):not(.original)").count() == 0
        for link in page.locator(f"{scope} a.original").all():  # an article's own http(s) URL
            assert link.get_attribute("href").startswith(("http://", "https://"))
        assert page.locator(f"{scope} script, {scope} [onerror], {scope} [onload]").count() == 0
        assert not [url for url in page.requests if "evil" in url], page.requests
        assert page.dialogs == []

    browser.on_page(every_answer_server.url, check)
