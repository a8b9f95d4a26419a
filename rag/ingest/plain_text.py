"""The reader for plain text (.txt): text copied from a news page, maybe under YAML-style front matter.

Front matter (`title:`, `publisher:`, `date:`, `url:` between `---` lines) wins over what the cleaning
finds in the text. Markdown is read the same way once rendered (rag/ingest/markdown.py).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from rag.ingest.article import Article
from rag.ingest.cleaning import clean, drop_leading_title, iso_date, normalize_publisher

_FRONT_MATTER_FENCE = re.compile(r"^---\s*$")
_FRONT_MATTER_END = re.compile(r"^(?:---|\.\.\.)\s*$")
_FRONT_MATTER_ITEM = re.compile(r"^(?P<key>[A-Za-z_][\w-]*)\s*:\s*(?P<value>.*?)\s*$")
_FRONT_MATTER_KEYS = {
    "title": "title",
    "headline": "title",
    "publisher": "publisher",
    "source": "publisher",
    "site": "publisher",
    "sitename": "publisher",
    "published": "published",
    "date": "published",
    "url": "url",
    "link": "url",
}
# A block that never closes is body text starting with a rule, not front matter.
_FRONT_MATTER_MAX_LINES = 60


def _split_front_matter(text: str) -> tuple[dict[str, str], str]:
    lines = text.split("\n")
    if not lines or not _FRONT_MATTER_FENCE.match(lines[0].lstrip("\ufeff")):
        return {}, text
    for end in range(1, min(len(lines), _FRONT_MATTER_MAX_LINES)):
        if _FRONT_MATTER_END.match(lines[end]):
            break
    else:
        return {}, text
    meta: dict[str, str] = {}
    for line in lines[1:end]:
        match = _FRONT_MATTER_ITEM.match(line)
        if not match:
            continue
        key = _FRONT_MATTER_KEYS.get(match["key"].lower())
        value = match["value"].strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1].strip()
        if key and value and key not in meta:
            meta[key] = value
    if not meta:
        return {}, text
    return meta, "\n".join(lines[end + 1 :])


def read(text: str, render: Callable[[str], str] | None = None) -> Article:
    """The article in `text`; `render` first turns the body under the front matter into plain text."""
    meta, body = _split_front_matter(text)
    if render:
        body = render(body)
    given_title = meta.get("title", "")
    cleaned = clean(body, take_title=not given_title)
    body_text = drop_leading_title(cleaned.text, given_title) if given_title else cleaned.text
    return Article(
        text=body_text,
        title=given_title or cleaned.title,
        publisher=normalize_publisher(meta["publisher"]) if "publisher" in meta else cleaned.publisher,
        published=iso_date(meta.get("published", "")) or cleaned.published,
        url=meta.get("url") or cleaned.url,
    )
