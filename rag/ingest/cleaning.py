"""The cleaning every reader shares: news-page boilerplate out; title, publisher, date and URL found.

Whatever the format, a reader ends with `clean`: citation offsets index into the text it returns, so
boilerplate must go, and the real sentences must stay character-for-character as published. The rules
are general patterns seen on news pages (tickers, "Also read" lists, comment boxes, source lines,
datelines, bylines), never matches on particular articles. Over 500 lines on purpose: `clean` applies
the rules in one order, and each rule sits next to the patterns it uses.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import date
from urllib.parse import urlparse

from rag.ingest.article import Article

# Lines longer than this are paragraphs, never boilerplate labels, bylines or headlines.
_MAX_TITLE_CHARS = 150
_SHORT_LINE = 200
# Datelines and bylines sit just under the headline; further down a date is part of the story.
_TOP_LINES = 6


def normalize(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return unicodedata.normalize("NFC", text)


def has_words(text: str) -> bool:
    return any(ch.isalpha() for ch in text)


def one_line(text: str) -> str:
    return " ".join(text.split())


def drop_leading_title(text: str, title: str) -> str:
    """Remove the headline from the top of the body when the metadata already carries it."""
    first, _, rest = text.partition("\n")
    if _same_text(first, title) and has_words(rest):
        return rest.lstrip("\n")
    return text


def _same_text(a: str, b: str) -> bool:
    return " ".join(a.split()).casefold() == " ".join(b.split()).casefold()


@dataclass
class Cleaned:
    text: str
    title: str = ""
    source: str | None = None  # an explicit "Source:" or "inputs from" attribution
    desk: str | None = None  # weaker: the "<Name> Desk" of a byline
    published: str | None = None
    url: str | None = None

    @property
    def publisher(self) -> str | None:
        return self.source or self.desk


def clean_news_text(raw: str) -> Article:
    """Strip news-page boilerplate from plain text and pull out title, publisher, date; title may be ""."""
    cleaned = clean(raw, take_title=True)
    return Article(
        text=cleaned.text,
        title=cleaned.title,
        publisher=cleaned.publisher,
        published=cleaned.published,
        url=cleaned.url,
    )


def clean(raw: str, take_title: bool) -> Cleaned:
    lines = [line.rstrip() for line in normalize(raw).split("\n")]
    result = Cleaned(text="")
    lines = _drop_tickers(lines)
    lines = _drop_related_sections(lines)
    lines = _drop_comment_boxes(lines)
    lines = _drop_image_names(lines)
    lines = _drop_labels(lines)
    lines = _take_sources(lines, result)
    lines = _take_dateline(lines, result)
    if take_title:
        lines = _take_title(lines, result)
    result.text = _tidy_whitespace(lines)
    return result


def _is_blank(line: str) -> bool:
    return not line.strip()


# --- tickers ----------------------------------------------------------------------------------------

_TICKER_HEADER = re.compile(
    r"^\s*(?:news\s+updates?|breaking(?:\s+news)?|latest(?:\s+(?:news|headlines|updates))?|"
    r"top\s+(?:stories|news|headlines)|headlines|trending(?:\s+(?:now|news|stories))?|just\s+in|"
    r"news\s+ticker|flash\s+news)\s*[:\-–—|]?\s*$",
    re.IGNORECASE,
)
# Ticker items are bullets ending in the separator the ticker scrolls them with.
_TICKER_ITEM = re.compile(r"^\s*[•·▪►»‣◦*\-–]?\s*\S.{0,200}?[\s\u00a0]*\|[\s\u00a0|]*$")
_BULLET_ITEM = re.compile(r"^\s*[•·▪►»‣◦*\-–—]\s+\S")
_BULLET_TICKER_ITEM = re.compile(r"^\s*[•·▪►»‣◦]\s*\S.{0,200}?\|[\s\u00a0|]*$")


def _drop_tickers(lines: list[str]) -> list[str]:
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if _TICKER_HEADER.match(line):
            j = i + 1
            items = 0
            while j < len(lines) and (
                _is_blank(lines[j]) or _TICKER_ITEM.match(lines[j]) or _BULLET_ITEM.match(lines[j])
            ):
                # A blank line ends the block once items have been seen: what follows is the page again.
                if _is_blank(lines[j]) and items:
                    break
                items += not _is_blank(lines[j])
                j += 1
            if items:
                i = j
                continue
        if _BULLET_TICKER_ITEM.match(line):
            i += 1
            continue
        out.append(line)
        i += 1
    return out


# --- "Also read" and related-link lists --------------------------------------------------------------

_RELATED_KEYWORDS = (
    r"also\s+read|read\s+also|read\s+more|more\s+to\s+read|must\s+read|see\s+also|don'?t\s+miss|"
    r"related(?:\s+(?:articles?|stories|news|posts|reading|content|coverage|links))?|"
    r"recommended(?:\s+(?:for\s+you|stories|articles|reading))?|"
    r"you\s+(?:may|might)\s+also\s+like|more\s+stories|more\s+from\s+\w+(?:\s+\w+){0,3}|trending\s+now"
)
_RELATED_HEADER = re.compile(rf"^\s*(?:{_RELATED_KEYWORDS})\s*(?::-|[:\-–—|>»]+)?\s*$", re.IGNORECASE)
# The one-line form needs its separator, so "Read more about the plan here." stays.
_RELATED_INLINE = re.compile(
    rf"^\s*(?:{_RELATED_KEYWORDS})\s*(?::-|[:\-–—|>»]+)\s*\S.{{0,200}}$", re.IGNORECASE
)
_LONE_MARKER = re.compile(r"^\s*[-•*·▪►»–—]\s*$")


def _drop_related_sections(lines: list[str]) -> list[str]:
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if _RELATED_INLINE.match(line):
            i += 1
            continue
        if _RELATED_HEADER.match(line):
            i = _end_of_headline_list(lines, i + 1)
            continue
        out.append(line)
        i += 1
    return out


def _end_of_headline_list(lines: list[str], start: int) -> int:
    """Index just past the list of other headlines that follows an "Also read" style header."""
    i = start
    after_marker = False
    while i < len(lines):
        line = lines[i].strip()
        if not line:
            i += 1
        elif _LONE_MARKER.match(line):
            after_marker = True
            i += 1
        elif len(line) <= _SHORT_LINE and (after_marker or _BULLET_ITEM.match(line)):
            # Whatever a marker introduces is an item, even a headline that ends with a full stop.
            after_marker = False
            i += 1
        elif _looks_like_headline(line) and len(line.split()) >= 3:
            i += 1
        else:
            break
    # Trailing blank lines belong to the page, not the list; leave them for the whitespace rule.
    while i > start and _is_blank(lines[i - 1]):
        i -= 1
    return i


def _looks_like_headline(line: str) -> bool:
    line = line.strip()
    return (
        0 < len(line) <= _MAX_TITLE_CHARS
        and not line.endswith((".", ",", ";", ":"))
        and not _BULLET_ITEM.match(line)
        and has_words(line)
    )


# --- comment boxes, share widgets, copyright -----------------------------------------------------------

_COMMENT_BOX = re.compile(
    r"^\s*(?:no\s+comments?\s*:?|\d+\s+comments?\s*:?|comments?\s*(?:\(\d+\))?\s*:?|"
    r"post\s+a\s+comment|leave\s+a\s+(?:comment|reply)|add\s+a\s+comment|write\s+a\s+comment|"
    r"view\s+comments|show\s+comments|load(?:ing)?\s+comments(?:\.\.\.|…)?|be\s+the\s+first\s+to\s+comment|"
    r"join\s+the\s+conversation|comments\s+are\s+closed\.?|"
    r"subscribe\s+to:\s+post\s+comments.*|newer\s+post\s+older\s+post(?:\s+home)?|"
    r"share\s+(?:this(?:\s+(?:article|story|post|page|news))?|via\s+\w+(?:\s+\w+)?|"
    r"on\s+(?:facebook|twitter|x|whatsapp|linkedin|telegram|reddit|email)(?:[\s,/|]+\w+)*)\s*:?|share\s*:?|"
    r"(?:follow|like)\s+us\s+on\b.{0,80}|click\s+here\s+to\s+(?:join|follow|subscribe)\b.{0,80}|"
    r"advertisement|story\s+continues\s+below(?:\s+this)?\s+advertisement|"
    r"scroll\s+to\s+continue\s+with\s+content)\s*$",
    re.IGNORECASE,
)


# "Copyright" opens real sentences too; the notice is told apart by its symbol or the year right after.
_COPYRIGHT = re.compile(
    r"^\s*(?:(?:©|\(c\)|copyright\s*(?:©|\(c\))?\s*(?=\d{4})).{0,120}|.{0,120}\ball\s+rights\s+reserved\.?)\s*$",
    re.IGNORECASE,
)


def _drop_comment_boxes(lines: list[str]) -> list[str]:
    return [line for line in lines if not (_COMMENT_BOX.match(line) or _COPYRIGHT.match(line))]


# --- image file names ---------------------------------------------------------------------------------

_IMAGE_NAME = re.compile(
    r"^\s*(?:(?:image|photo|picture|file|img)\s*[:\-–]\s*)?\S+\.(?:jpe?g|png|gif|webp|avif|bmp)(?:\?\S*)?\s*$",
    re.IGNORECASE,
)


def _drop_image_names(lines: list[str]) -> list[str]:
    return [line for line in lines if not _IMAGE_NAME.match(line)]


# --- labels -------------------------------------------------------------------------------------------

_LABEL_PREFIX = re.compile(
    r"^(\s*)(?:summary|synopsis|abstract|in\s+brief|tl;?\s*dr|key\s+takeaways?|highlights?)"
    r"\s*(?::-|[:\-–—])\s+(?=\S)",
    re.IGNORECASE,
)
_LONE_LABEL = re.compile(
    r"^\s*(?:article|story|full\s+story|summary|body|content|text)\s*(?::-|[:\-–—])?\s*$", re.IGNORECASE
)
# "- Country:" / "- United States": a field name and its value, laid out as two bullets by the page.
_FIELD_LABEL = re.compile(r"^\s*[-•*]\s*[A-Z][\w&/ ]{0,30}:\s*$")
_FIELD_VALUE = re.compile(r"^\s*[-•*]\s*\S.{0,60}$")
_FIELD_INLINE = re.compile(
    r"^\s*[-•*]?\s*(?:country|countries|region|category|categories|section|topics?|tags?|sector|location)"
    r"\s*:\s*\S.{0,60}$",
    re.IGNORECASE,
)


def _drop_labels(lines: list[str]) -> list[str]:
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if _LONE_LABEL.match(line) or _FIELD_INLINE.match(line):
            i += 1
            continue
        if _FIELD_LABEL.match(line) and i + 1 < len(lines) and _is_field_value(lines[i + 1]):
            i += 1
            while i < len(lines) and _is_field_value(lines[i]):
                i += 1
            continue
        out.append(_LABEL_PREFIX.sub(r"\1", line, count=1))
        i += 1
    return out


def _is_field_value(line: str) -> bool:
    return (
        bool(_FIELD_VALUE.match(line))
        and not line.rstrip().endswith((".", ":"))
        and not _FIELD_LABEL.match(line)
    )


# --- source and attribution lines ---------------------------------------------------------------------

_SOURCE_LINE = re.compile(
    r"^\s*\(?\s*sources?\s*(?::-|[:\-–—])\s*(?P<name>[^()\n]{2,100}?)\s*\)?\s*\.?\s*$", re.IGNORECASE
)
_ATTRIBUTION_LINES = (
    re.compile(
        r"^\s*\(?\s*based\s+on\s+(?:an?\s+|the\s+)?(?P<name>.{2,80}?)\s+(?:reports?|inputs?)\s*\)?\s*\.?\s*$",
        re.IGNORECASE,
    ),
    re.compile(
        r"^\s*\(?\s*based\s+on\s+(?:reports?|inputs?)\s+(?:from|by)\s+(?P<name>.{2,80}?)\s*\)?\s*\.?\s*$",
        re.IGNORECASE,
    ),
    re.compile(
        r"^\s*(?:\(\s*(?:with\s+)?|with\s+)(?:additional\s+)?inputs?\s+(?:from|by)\s+(?P<name>.{2,80}?)"
        r"\s*\)?\s*\.?\s*$",
        re.IGNORECASE,
    ),
    re.compile(
        r"^\s*\(?\s*(?:this\s+(?:article|story|report)\s+)?(?:was\s+)?(?:originally|first)\s+"
        r"(?:published|appeared)\s+(?:on|in|by)\s+(?P<name>.{2,80}?)\s*\)?\s*\.?\s*$",
        re.IGNORECASE,
    ),
)
# Attributions to these are not a publisher anyone could filter by.
_GENERIC_SOURCES = {
    "agencies",
    "agency",
    "agency inputs",
    "wires",
    "wire services",
    "news agencies",
    "staff",
    "web",
}
_NAME_SEPARATORS = re.compile(r"\s*(?:,|;|/|&|\band\b|\bwith\b)\s*", re.IGNORECASE)


def _take_sources(lines: list[str], result: Cleaned) -> list[str]:
    out: list[str] = []
    for line in lines:
        name = _source_name(line)
        if name is None:
            out.append(line)
            continue
        if result.source is None:
            url = _url_in(name)
            if url and result.url is None:
                result.url = url
            result.source = normalize_publisher(name)
    return out


def _source_name(line: str) -> str | None:
    """The attributed name when the line is a source/attribution line, else None."""
    if len(line.strip()) > _SHORT_LINE:
        return None
    match = _SOURCE_LINE.match(line)
    if match is None:
        for pattern in _ATTRIBUTION_LINES:
            match = pattern.match(line)
            if match:
                break
    if match is None:
        return None
    name = match["name"].strip()
    return name if _url_in(name) or _looks_like_name(name) else None


# Lowercase words that still fit in an outlet's name or a generic attribution ("PTI and agencies").
_NAME_FILLERS = {
    "and",
    "of",
    "the",
    "&",
    "for",
    "on",
    "agencies",
    "agency",
    "inputs",
    "wires",
    "wire",
    "services",
}


def _looks_like_name(name: str) -> bool:
    """Outlet names are a few capitalized words or a domain; a clause with ordinary words is a sentence."""
    words = re.findall(r"[^\s,;]+", name)
    return 0 < len(words) <= 6 and all(
        w[0].isupper() or w[0].isdigit() or "." in w.strip(".") or w.lower() in _NAME_FILLERS for w in words
    )


def _url_in(text: str) -> str | None:
    match = re.search(r"https?://\S+", text)
    return match.group(0).rstrip(".,)") if match else None


_DOMAIN_SUFFIX = re.compile(
    r"\.(?:com|net|org|info|news|biz|tv|io|co|in|uk|us|au|ca|de|fr|jp|pk|bd|lk|np|sg|my|ph|za|ng|ke|nz|ie)"
    r"(?:\.[a-z]{2})?$",
    re.IGNORECASE,
)
_SMALL_WORDS = {"of", "the", "and", "for", "on", "in", "at", "a", "an", "to", "de"}


def normalize_publisher(name: str) -> str | None:
    """'Fox business.com' -> 'Fox Business', 'https://www.thehindu.com/x' -> 'Thehindu', 'ANI' stays."""
    name = name.strip().strip("()[]\"'").strip()
    url = _url_in(name)
    if url:
        name = urlparse(url).hostname or name
    name = re.sub(r"^www\.", "", name, flags=re.IGNORECASE)
    name = _NAME_SEPARATORS.split(name)[0]
    name = _DOMAIN_SUFFIX.sub("", name).strip(" .-")
    if not name or name.casefold() in _GENERIC_SOURCES:
        return None
    words = name.split()
    titled = []
    for index, word in enumerate(words):
        # Keep any capitalization the source chose (ANI, McClatchy); only lift words typed all lowercase.
        if word.islower() and (index == 0 or word not in _SMALL_WORDS):
            word = word[:1].upper() + word[1:]
        titled.append(word)
    return " ".join(titled)


# --- datelines and bylines ----------------------------------------------------------------------------

_MONTHS = {
    "jan": 1, "feb": 2, "mar": 3, "apr": 4, "may": 5, "jun": 6,
    "jul": 7, "aug": 8, "sep": 9, "oct": 10, "nov": 11, "dec": 12,
}  # fmt: skip
_MONTH = (
    r"(?P<month>jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|"
    r"sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?"
)
_DATE_PATTERNS = (
    re.compile(r"\b(?P<year>\d{4})[-/.](?P<mnum>\d{1,2})[-/.](?P<day>\d{1,2})(?!\d)"),
    re.compile(
        rf"\b(?P<day>\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?{_MONTH},?\s+(?P<year>\d{{4}})\b", re.IGNORECASE
    ),
    re.compile(rf"\b{_MONTH}\s+(?P<day>\d{{1,2}})(?:st|nd|rd|th)?,?\s+(?P<year>\d{{4}})\b", re.IGNORECASE),
)
_TIME = re.compile(
    r"\b\d{1,2}[:.]\d{2}(?::\d{2})?\s*(?:[ap]\.?m\.?)?|\b\d{1,2}\s*[ap]\.?m\.?\b", re.IGNORECASE
)
_DATELINE_WORDS = {
    "by", "on", "at", "updated", "update", "published", "posted", "last", "modified", "date", "dated",
    "ist", "gmt", "utc", "et", "edt", "est", "pt", "pst", "bst", "cet", "am", "pm", "desk", "and",
    "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday",
    "mon", "tue", "tues", "wed", "thu", "thur", "thurs", "fri", "sat", "sun",
}  # fmt: skip
_MAX_DATELINE_WORDS = 8
_BYLINE = re.compile(
    r"^\s*(?:[Bb]y|[Ww]ritten\s+by|[Rr]eported\s+by)\s+[A-Z][\w.'’-]*,?(?:\s+(?:[A-Z][\w.'’-]*,?|and|&))*\s*$"
)
_DESK = re.compile(r"((?:[A-Z][\w&.'’-]*\s+){1,4})Desk\b")
# Without a date, only a line that ends in "Desk" is a byline; "Help Desk Software Sales Soar" is a headline.
_DESK_LINE = re.compile(r"^\s*(?:[A-Z][\w&.'’-]*\s+){1,4}Desk\s*$")
# Section names newsrooms put before "Desk"; they name a department, not the publisher.
_GENERIC_DESK_WORDS = {
    "by", "news", "web", "digital", "online", "staff", "editorial", "city", "national", "international",
    "business", "sports", "sport", "politics", "diplomacy", "metro", "world", "desk", "the", "our",
}  # fmt: skip


def _find_date(text: str) -> tuple[str, re.Match[str]] | None:
    for pattern in _DATE_PATTERNS:
        for match in pattern.finditer(text):
            groups = match.groupdict()
            month = int(groups["mnum"]) if groups.get("mnum") else _MONTHS[groups["month"].lower()[:3]]
            try:
                found = date(int(groups["year"]), month, int(groups["day"]))
            except ValueError:
                continue
            return found.isoformat(), match
    return None


def iso_date(text: str) -> str | None:
    found = _find_date(text or "")
    return found[0] if found else None


def _take_dateline(lines: list[str], result: Cleaned) -> list[str]:
    seen = 0
    out = list(lines)
    for index, line in enumerate(lines):
        if _is_blank(line):
            continue
        seen += 1
        if seen > _TOP_LINES:
            break
        is_dateline, published = _dateline(line)
        if not is_dateline:
            continue
        if published and result.published is None:
            result.published = published
        if result.desk is None:
            result.desk = _desk_name(line)
        out[index] = ""
    # Never leave nothing behind: a file that is only a dateline is still text someone meant to index.
    return out if any(has_words(line) for line in out) else lines


def _dateline(line: str) -> tuple[bool, str | None]:
    """(is this a byline/dateline, the ISO date it gives)."""
    stripped = line.strip()
    if len(stripped) > _MAX_TITLE_CHARS:
        return False, None
    found = _find_date(stripped)
    if found is None:
        return bool(_BYLINE.match(stripped) or _DESK_LINE.match(stripped)), None
    iso, match = found
    if stripped.endswith(".") and not stripped.endswith(("a.m.", "p.m.")):
        return False, None
    rest = _TIME.sub(" ", stripped[: match.start()] + " " + stripped[match.end() :])
    words = re.findall(r"[^\W\d_][\w.'’&-]*", rest)
    # A byline is names, places and dateline vocabulary; any other lowercase word means a sentence.
    plausible = all(w.lower().strip(".") in _DATELINE_WORDS or w[0].isupper() for w in words)
    return (plausible and len(words) <= _MAX_DATELINE_WORDS), (iso if plausible else None)


def _desk_name(line: str) -> str | None:
    match = _DESK.search(line)
    if not match:
        return None
    words = match.group(1).split()
    while words and words[0].lower() in _GENERIC_DESK_WORDS:
        words.pop(0)
    while words and words[-1].lower() in _GENERIC_DESK_WORDS:
        words.pop()
    return normalize_publisher(" ".join(words)) if words else None


# --- title --------------------------------------------------------------------------------------------


def _take_title(lines: list[str], result: Cleaned) -> list[str]:
    for index, line in enumerate(lines):
        if _is_blank(line):
            continue
        rest = lines[index + 1 :]
        # A lone headline with nothing under it is the whole text, not a title.
        if _looks_like_headline(line) and any(has_words(r) for r in rest):
            result.title = line.strip()
            return lines[:index] + rest
        return lines
    return lines


# --- whitespace ---------------------------------------------------------------------------------------

_BLANK_RUNS = re.compile(r"\n{3,}")


def _tidy_whitespace(lines: list[str]) -> str:
    text = "\n".join(line.rstrip() for line in lines)
    return _BLANK_RUNS.sub("\n\n", text).strip("\n")
