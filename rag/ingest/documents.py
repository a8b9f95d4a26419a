"""Reading one article file into clean text plus metadata: `load_article` picks the reader for its format.

Articles arrive as text copied from news sites, Markdown, saved HTML pages or PDFs. Each format has its
reader in this package (plain_text, markdown, html, pdf), and every reader ends with the shared cleaning
(cleaning.py). Whatever the format, the result is an `Article` whose `text` is the article body only.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from pathlib import Path

from rag.ingest import html, markdown, pdf, plain_text
from rag.ingest.article import Article, UnreadableFile
from rag.ingest.cleaning import has_words, normalize

__all__ = ["MAX_FILE_BYTES", "SUPPORTED_SUFFIXES", "Article", "UnreadableFile", "load_article"]

# Each format's reader: it is given the decoded text, or for a PDF the file's bytes.
TEXT_READERS: dict[str, Callable[[str], Article]] = {
    ".txt": plain_text.read,
    ".md": markdown.read,
    ".markdown": markdown.read,
    ".html": html.read,
    ".htm": html.read,
}
BYTES_READERS: dict[str, Callable[[bytes], Article]] = {".pdf": pdf.read}
SUPPORTED_SUFFIXES = frozenset(TEXT_READERS) | frozenset(BYTES_READERS)
MAX_FILE_BYTES = 20 * 1024 * 1024

# Binary sniffing only looks at the start: enough to catch images, archives and executables cheaply.
_SNIFF_BYTES = 8192


def load_article(path: Path, max_bytes: int = MAX_FILE_BYTES) -> Article:
    """Read one article file; raises UnreadableFile with a short reason when it cannot."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise UnreadableFile(f"unsupported file type '{path.suffix or path.name}'")
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise UnreadableFile(f"too large ({_size_text(size, decimals=True)} > {_size_text(max_bytes)})")
        if not path.is_file():
            raise UnreadableFile("not a regular file")
        data = path.read_bytes()
    except OSError as exc:
        raise UnreadableFile(f"cannot read file ({exc.strerror or exc.__class__.__name__})") from exc
    if not data:
        raise UnreadableFile("empty file")

    if suffix in BYTES_READERS:
        article = BYTES_READERS[suffix](data)
    else:
        text, decoded_note = _decode(data)
        if not text.strip():
            raise UnreadableFile("empty file")
        article = TEXT_READERS[suffix](text)
        if decoded_note:
            article = dataclasses.replace(article, notes=(decoded_note, *article.notes))

    if not has_words(article.text):
        raise UnreadableFile("no article text found")
    if not article.title:
        article = dataclasses.replace(article, title=_title_from_filename(path))
    return article


def _size_text(n: int, decimals: bool = False) -> str:
    if n < 1024:
        return f"{n} B"
    for unit, scale in (("MB", 1024 * 1024), ("KB", 1024)):
        if n >= scale:
            value = n / scale
            return f"{value:.1f} {unit}" if decimals else f"{value:g} {unit}"
    raise AssertionError("unreachable")


def _title_from_filename(path: Path) -> str:
    readable = " ".join(re.split(r"[-_\s]+", path.stem)).strip()
    return readable[:1].upper() + readable[1:]


# UTF-32 BOMs start with the UTF-16 ones, so they are tested first.
_BOMS = (
    (b"\xff\xfe\x00\x00", "utf-32"),
    (b"\x00\x00\xfe\xff", "utf-32"),
    (b"\xef\xbb\xbf", "utf-8-sig"),
    (b"\xff\xfe", "utf-16"),
    (b"\xfe\xff", "utf-16"),
)


def _decode(data: bytes) -> tuple[str, str | None]:
    """Bytes to normalized text, and a note when the bytes were not valid Unicode: BOM-marked
    Unicode, else UTF-8, else a fallback that is said. Text that is mostly UTF-8 keeps it, with
    its broken bytes replaced (decoding it all as Windows-1252 would mangle every accent); text
    with no UTF-8 in it is read as Windows-1252, as Windows editors save it."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                return normalize(data.decode(encoding)), None
            except UnicodeDecodeError as exc:
                raise UnreadableFile(f"invalid {encoding.upper()} text") from exc
    # UTF-16 without a BOM is indistinguishable from binary here, and rare enough to refuse.
    if b"\x00" in data[:_SNIFF_BYTES]:
        raise UnreadableFile("binary file")
    try:
        return normalize(data.decode("utf-8")), None
    except UnicodeDecodeError:
        pass
    as_utf8 = data.decode("utf-8", errors="replace")
    broken = as_utf8.count("\ufffd") - data.decode("utf-8", errors="ignore").count("\ufffd")
    if sum(ord(c) > 127 for c in as_utf8) > 2 * broken:  # the valid UTF-8 characters outnumber the breaks
        return normalize(as_utf8), f"not valid UTF-8: {broken} broken byte sequence(s) replaced with \ufffd"
    try:
        return normalize(data.decode("cp1252")), "not UTF-8: read as Windows-1252"
    except UnicodeDecodeError:
        # cp1252 leaves five byte values undefined; latin-1 maps every byte, so this cannot fail.
        return normalize(data.decode("latin-1")), "not UTF-8: read as Latin-1"
