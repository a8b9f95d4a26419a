"""The reader for saved HTML pages (.html, .htm): trafilatura finds the article and its metadata."""

from __future__ import annotations

from html.parser import HTMLParser

from rag.ingest.article import Article, UnreadableFile, short_reason
from rag.ingest.cleaning import (
    clean,
    drop_leading_title,
    has_words,
    iso_date,
    normalize,
    normalize_publisher,
    one_line,
)


def read(page: str) -> Article:
    import trafilatura

    # A string, never a URL: trafilatura must not fetch anything.
    try:
        doc = trafilatura.bare_extraction(
            page,
            with_metadata=True,
            include_comments=False,
            include_tables=True,
            include_images=False,
            include_links=False,
        )
    except Exception as exc:  # lxml and trafilatura raise a wide range of parse errors
        raise UnreadableFile(f"not a readable HTML page: {short_reason(exc)}") from exc
    body = (getattr(doc, "text", None) or "") if doc is not None else ""
    notes: tuple[str, ...] = ()
    if not _has_prose(body):
        # The extractor's parser (libxml2) stops at 256 levels of nested markup, and loses the
        # article inside; the standard library's parser has no such limit.
        body = page_text(page)
        if not _has_prose(body):
            raise UnreadableFile("no article text found")
        notes = ("the article extractor found no text (markup nested too deep?): read the page's whole text",)

    meta_title = one_line(getattr(doc, "title", None) or "")
    cleaned = clean(normalize(body), take_title=not meta_title)
    text = drop_leading_title(cleaned.text, meta_title) if meta_title else cleaned.text
    sitename = one_line(getattr(doc, "sitename", None) or "")
    # An explicit "Source:" line names the original publisher; the site may only be republishing.
    publisher = cleaned.source or (normalize_publisher(sitename) if sitename else None) or cleaned.desk
    return Article(
        text=text,
        title=meta_title or cleaned.title,
        publisher=publisher,
        published=iso_date(getattr(doc, "date", None) or "") or cleaned.published,
        url=getattr(doc, "url", None) or cleaned.url,
        notes=notes,
    )


# Given a page without an article, the extractor falls back to its menus ("Home", "World", "Log in"):
# an article has at least one line of this many words.
_MIN_PROSE_WORDS = 5


def _has_prose(text: str) -> bool:
    return any(len(line.split()) >= _MIN_PROSE_WORDS and has_words(line) for line in text.splitlines())


class _PageText(HTMLParser):
    """The visible text of a page, a line per block, without what is never article text."""

    SKIPPED = {"head", "script", "style", "noscript", "template", "nav", "header", "footer", "aside", "form"}
    BLOCKS = {"p", "div", "br", "li", "tr", "section", "article", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag, attrs):
        self._skipping += tag in self.SKIPPED
        if tag in self.BLOCKS:
            self.parts.append("\n")

    def handle_endtag(self, tag):
        if tag in self.SKIPPED and self._skipping:
            self._skipping -= 1
        if tag in self.BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data):
        if not self._skipping:
            self.parts.append(data)


def page_text(page: str) -> str:
    parser = _PageText()
    parser.feed(page)
    parser.close()
    lines = (" ".join(line.split()) for line in "".join(parser.parts).split("\n"))
    return "\n\n".join(line for line in lines if line)
