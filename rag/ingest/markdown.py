"""The reader for Markdown (.md, .markdown): rendered to the text a reader sees, then read as plain text."""

from __future__ import annotations

import re

from rag.ingest import plain_text
from rag.ingest.article import Article


def read(text: str) -> Article:
    return plain_text.read(text, render=_markdown_to_text)


def _markdown_to_text(md: str) -> str:
    """Reduce Markdown to the text a reader sees, parsed by markdown-it (CommonMark): headings,
    paragraphs and list items become lines ("- item", "1. item"), blocks are separated by a blank
    line, and line breaks inside a paragraph are kept so the cleaner can work on them. Images,
    HTML tags and link targets are dropped; link text, code and emphasised words are kept."""
    from markdown_it import MarkdownIt

    lines: list[str] = []
    depth, item_prefix, previous_was_item = 0, "", False
    for token in MarkdownIt("commonmark").enable("strikethrough").parse(md):
        if token.type in ("bullet_list_open", "ordered_list_open"):
            depth += 1
        elif token.type in ("bullet_list_close", "ordered_list_close"):
            depth -= 1
        elif token.type == "list_item_open":
            marker = f"{token.info}{token.markup}" if token.info else "-"
            item_prefix = "  " * (depth - 1) + marker + " "
        elif token.type in ("inline", "fence", "code_block", "html_block"):
            text = _block_text(token)
            if text:
                # List items stand on consecutive lines; other blocks are apart by a blank line.
                if lines and not (item_prefix and previous_was_item):
                    lines.append("")
                lines.append(item_prefix + text)
                previous_was_item = bool(item_prefix)
            item_prefix = ""
    return "\n".join(lines)


_HTML_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
_HTML_TAG = re.compile(r"</?[A-Za-z][\w:-]*(?:\s[^<>]*)?/?>")


def _block_text(token) -> str:
    """The visible text of one block: an inline run (text, code, line breaks), code, or HTML."""
    if token.type == "inline":
        parts = []
        for child in token.children or []:
            if child.type in ("text", "code_inline"):
                parts.append(child.content)
            elif child.type in ("softbreak", "hardbreak"):
                parts.append("\n")
        return "".join(parts).strip()
    if token.type == "html_block":
        return _HTML_TAG.sub("", _HTML_COMMENT.sub("", token.content)).strip()
    return token.content.strip("\n")
