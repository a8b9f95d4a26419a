"""Reading one article file into clean text plus metadata: `load_article` picks the reader for its format.

Articles arrive as text copied from news sites, Markdown, saved HTML pages or PDFs. Each format has its
reader in this package (plain_text, markdown, html, pdf), and every reader ends with the shared cleaning
(cleaning.py). Whatever the format, the result is an `Article` whose `text` is the article body only.
"""

from __future__ import annotations

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
        text = _decode(data)
        if not text.strip():
            raise UnreadableFile("empty file")
        article = TEXT_READERS[suffix](text)

    if not has_words(article.text):
        raise UnreadableFile("no article text found")
    if not article.title:
        article = Article(
            text=article.text,
            title=_title_from_filename(path),
            publisher=article.publisher,
            published=article.published,
            url=article.url,
        )
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


def _decode(data: bytes) -> str:
    """Bytes to normalized text: BOM-marked Unicode, else UTF-8, else the Windows/Latin-1 family."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                return normalize(data.decode(encoding))
            except UnicodeDecodeError as exc:
                raise UnreadableFile(f"invalid {encoding.upper()} text") from exc
    # UTF-16 without a BOM is indistinguishable from binary here, and rare enough to refuse.
    if b"\x00" in data[:_SNIFF_BYTES]:
        raise UnreadableFile("binary file")
    for encoding in ("utf-8", "cp1252"):
        try:
            return normalize(data.decode(encoding))
        except UnicodeDecodeError:
            continue
    # cp1252 leaves five byte values undefined; latin-1 maps every byte, so this cannot fail.
    return normalize(data.decode("latin-1"))
