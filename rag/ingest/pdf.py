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
            raise UnreadableFile(f"not a valid PDF: {short_reason(exc)}") from exc
        page_texts = []
        for page in pages:
            try:
                page_texts.append(page.extract_text() or "")
            except Exception:  # one bad page (odd font, broken stream) should not lose the rest
                page_texts.append("")
        pdf_title = ""
        try:
            pdf_title = one_line((reader.metadata or {}).get("/Title") or "")
        except Exception:  # a damaged info dictionary just means no title
            pdf_title = ""
    finally:
        pypdf_logger.setLevel(previous_level)

    raw = "\n\n".join(t.strip("\n") for t in page_texts if t.strip())
    if not has_words(raw):
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


def _decrypt_with_empty_password(reader) -> None:
    # Many PDFs are "encrypted" only to restrict printing and open with an empty password.
    try:
        opened = reader.decrypt("")
    except Exception as exc:  # e.g. AES without the optional crypto dependency
        raise UnreadableFile("encrypted PDF") from exc
    if not opened:
        raise UnreadableFile("encrypted PDF")
