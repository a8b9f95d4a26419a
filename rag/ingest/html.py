"""The reader for saved HTML pages (.html, .htm): trafilatura finds the article and its metadata."""

from __future__ import annotations

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
    if not _has_prose(body):
        raise UnreadableFile("no article text found")

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
    )


# Given a page without an article, the extractor falls back to its menus ("Home", "World", "Log in"):
# an article has at least one line of this many words.
_MIN_PROSE_WORDS = 5


def _has_prose(text: str) -> bool:
    return any(len(line.split()) >= _MIN_PROSE_WORDS and has_words(line) for line in text.splitlines())
