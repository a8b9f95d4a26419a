"""The reader for PDFs: pypdf's text of every page, and the title from the document's information."""

from __future__ import annotations

import io
import logging

from rag.ingest.article import Article, UnreadableFile, short_reason
from rag.ingest.cleaning import clean, drop_leading_title, has_words, normalize, one_line


def read(data: bytes) -> Article:
    from pypdf import PdfReader

    # Anything without the header is some other file renamed to .pdf.
    if b"%PDF-" not in data[:1024]:
        raise UnreadableFile("not a valid PDF: no PDF header")
    pypdf_logger = logging.getLogger("pypdf")
    previous_level = pypdf_logger.level
    # pypdf logs a warning for every repair it attempts; the reason we raise is what matters to users.
    pypdf_logger.setLevel(logging.ERROR)
    try:
        try:
            reader = PdfReader(io.BytesIO(data))
        except Exception as exc:  # pypdf signals damage with many exception types
            raise UnreadableFile(f"not a valid PDF: {short_reason(exc)}") from exc
        if reader.is_encrypted:
            _decrypt_with_empty_password(reader)
        try:
            pages = list(reader.pages)
        except Exception as exc:  # pypdf signals damage with many exception types
            _refuse_bomb(exc)
            raise UnreadableFile(f"not a valid PDF: {short_reason(exc)}") from exc
        page_texts, page_errors = [], []
        for page in pages:
            try:
                page.get_contents()  # decoded here, where pypdf's limit raises: extract_text hides it
                page_texts.append(page.extract_text() or "")
            except Exception as exc:  # one bad page (odd font, broken stream) should not lose the rest
                _refuse_bomb(exc)
                page_texts.append("")
                page_errors.append(exc)
        pdf_title = ""
        try:
            pdf_title = one_line((reader.metadata or {}).get("/Title") or "")
        except Exception:  # a damaged info dictionary just means no title
            pdf_title = ""
    finally:
        pypdf_logger.setLevel(previous_level)

    raw = "\n\n".join(t.strip("\n") for t in page_texts if t.strip())
    if not has_words(raw):
        if page_errors and len(page_errors) == len(pages):
            raise UnreadableFile(f"no page's text could be read: {short_reason(page_errors[0])}")
        raise UnreadableFile("no text in PDF (scanned?)")
    cleaned = clean(normalize(raw), take_title=not pdf_title)
    text = drop_leading_title(cleaned.text, pdf_title) if pdf_title else cleaned.text
    return Article(
        text=text,
        title=pdf_title or cleaned.title,
        publisher=cleaned.publisher,
        published=cleaned.published,
        url=cleaned.url,
    )


def _refuse_bomb(exc: Exception) -> None:
    """A stream that inflates past pypdf's limit is a decompression bomb: no news article is
    tens of megabytes of text, and it must not read as a scan."""
    from pypdf.errors import LimitReachedError

    if isinstance(exc, LimitReachedError):
        raise UnreadableFile(
            f"a decompression bomb: a compressed stream expands past pypdf's limit ({short_reason(exc)})"
        ) from exc


def _decrypt_with_empty_password(reader) -> None:
    # Many PDFs are "encrypted" only to restrict printing and open with an empty password.
    try:
        opened = reader.decrypt("")
    except Exception as exc:  # e.g. AES without the optional crypto dependency
        raise UnreadableFile("encrypted PDF") from exc
    if not opened:
        raise UnreadableFile("encrypted PDF")
