"""HTML for the chat: answers whose [n] markers link to their sources, and the sources panel.

Article text is untrusted, and so are answers (they quote articles) and questions. Everything
shown passes through `esc` here, and nothing is rendered as Markdown, so a passage holding
`<script>`, `<img onerror>` or `[a link](http://...)` shows as the text it is.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from urllib.parse import urlparse

from rag import CITATION_RE, REFUSAL, Answer, Citation, Passage

ArticleLink = Callable[[str], str | None]  # a passage's source -> URL of the whole cleaned article

_EARLIER_TURNS_SHOWN = 8
NEAREST_LABEL = "Closest passages, judged not to answer it:"
NEAREST_MARKED = "Each marks its sentence closest to the question."
PROVISIONAL_LABEL = "Quick answer quoted from the articles — the model is reading…"
PROVISIONAL_TENTATIVE_LABEL = "The closest sentences, quoted from the articles (they may not answer it) — the model is reading…"
QUOTED = "quoted from the articles"


def esc(text: object) -> str:
    return html.escape("" if text is None else str(text), quote=True)


def source_id(turn: int, n: int) -> str:
    return f"source-{turn}-{n}"


@dataclass
class SourceEntry:
    """One passage as the panel shows it, whether just retrieved or cited by the answer."""

    n: int
    title: str
    publisher: str
    published: str
    source: str
    text: str
    url: str
    start: int  # the passage's offset in the cleaned article
    spans: list[tuple[int, int]] = field(default_factory=list)

    @classmethod
    def from_passage(cls, n: int, passage: Passage) -> SourceEntry:
        return cls(n, passage.title, passage.publisher, passage.published, passage.source, passage.text,
                   passage.url, passage.start)

    @classmethod
    def from_citation(cls, n: int, citation: Citation) -> SourceEntry:
        return cls(n, citation.title, citation.publisher, citation.published, citation.source, citation.text,
                   citation.url, citation.start, [tuple(s) for s in citation.quote_spans])

    def article_spans(self) -> list[tuple[int, int]]:
        """The highlighted sentences (or, with none, the whole passage) as offsets in the article."""
        spans = _merged(self.spans, len(self.text)) or [(0, len(self.text))]
        return [(self.start + a, self.start + b) for a, b in spans]


# -- answers ---------------------------------------------------------------------------------------


def link_citations(text: str, turn: int, known: Iterable[int]) -> str:
    """Escape an answer and turn each [n] naming a known source into a link to its panel entry."""
    known = set(known)

    def link(match: re.Match) -> str:
        n = int(match.group(1))
        return cite_link(turn, n) if n in known else match.group(0)

    return CITATION_RE.sub(link, esc(text))


def cite_link(turn: int, n: int) -> str:
    return f'<a class="cite" href="#{source_id(turn, n)}">[{n}]</a>'


def pending_bubble() -> str:
    return '<div class="answer pending"><span class="spinner"></span> Searching the articles…</div>'


def searched_note(searched: str) -> str:
    if not searched:
        return ""
    return f'<div class="searched">Searched as: <q>{esc(searched)}</q></div>'


def draft_bubble(draft: str, turn: int, sources: int, searched: str, note: str = "") -> str:
    """The answer as it streams in; its markers number the retrieved passages in order."""
    body = link_citations(draft, turn, range(1, sources + 1)) if draft else "Writing the answer…"
    return (
        f'<div class="answer streaming">{searched_note(searched)}{note}'
        f'<div class="answer-text">{body}<span class="cursor"></span></div></div>'
    )


def provisional_bubble(quick: str, tentative: bool, draft: str, turn: int, sources: int, searched: str) -> str:
    """The extractive answer, shown while the model reads the passages, with what the model has
    written so far under it; the model's answer replaces both once it passes the checks."""
    known = range(1, sources + 1)
    label = PROVISIONAL_TENTATIVE_LABEL if tentative else PROVISIONAL_LABEL
    writing = (f'<div class="model-draft">The model\'s draft, to be checked: {link_citations(draft, turn, known)}'
               '<span class="cursor"></span></div>') if draft else ""
    return (
        f'<div class="answer streaming provisional">{searched_note(searched)}'
        f'<div class="provisional-label"><span class="spinner"></span> {label}</div>'
        f'<div class="answer-text">{link_citations(quick, turn, known)}</div>{writing}</div>'
    )


def replaced_note(reason: str) -> str:
    return (
        '<div class="replaced">The model\'s answer failed the citation check, so this one is quoted from '
        f"the articles: {esc(reason)}</div>"
    )


def final_bubble(answer: Answer, turn: int) -> str:
    note = replaced_note(answer.fallback) if answer.fallback else ""
    if answer.abstained:
        body = _abstention(answer, turn)
        classes = "answer final abstained"
    else:
        cited = [c.n for c in answer.citations]
        body = f'<div class="answer-text">{link_citations(answer.answer, turn, cited)}</div>'
        classes = "answer final"
    return f'<div class="{classes}">{searched_note(answer.searched)}{note}{body}{_answer_meta(answer)}</div>'


def error_bubble(message: str) -> str:
    return f'<div class="answer error">{esc(message)}</div>'


def user_bubble(question: str) -> str:
    return f'<div class="question">{esc(question)}</div>'


def _abstention(answer: Answer, turn: int) -> str:
    reason = refusal_reason(answer)
    # One line per article, with a link to each of its passages: three passages of one article
    # would otherwise list its title three times.
    by_article: dict[str, list[int]] = {}
    for n, citation in enumerate(answer.nearest, 1):
        by_article.setdefault(citation.title or citation.source, []).append(n)
    nearest = "".join(f"<li>{''.join(cite_link(turn, n) for n in numbers)} {esc(title)}</li>"
                      for title, numbers in by_article.items())
    listing = f'<div class="nearest">{NEAREST_LABEL}<ul>{nearest}</ul></div>' if nearest else ""
    return (
        f'<div class="abstain-banner">{esc(REFUSAL.rstrip("."))}</div>'
        f'<div class="answer-text">{esc(reason)}</div>{listing}'
    )


def refusal_reason(answer: Answer) -> str:
    """Why the answer was withheld: the refusal without its leading phrase."""
    return answer.answer.strip().removeprefix(REFUSAL).strip()


def _answer_meta(answer: Answer) -> str:
    seconds = answer.timings.get("total_ms", 0) / 1000
    cited = len(answer.citations)
    sources = f"{cited} source{'s' if cited != 1 else ''}" if not answer.abstained else "no source"
    return (
        f'<div class="answer-meta">{esc(answered_by(answer))} · {sources} · {confidence_label(answer)} · '
        f"{seconds:.1f} s</div>"
    )


def answered_by(answer: Answer) -> str:
    """Who wrote what is shown, in a few words: which model, or the articles' own sentences."""
    if answer.model and not answer.fallback:
        return f"written by {model_label(answer.model)}"
    return QUOTED


def model_label(model: str) -> str:
    """A model's name as a reader knows it: "llamacpp:smollm2-135m.gguf" is smollm2-135m."""
    kind, _, name = model.partition(":")
    return name.removesuffix(".gguf") if kind in ("llamacpp", "openai") and name else model


def confidence_label(answer: Answer) -> str:
    """What the confidence means, in words a reader can check against the eval."""
    if answer.confidence is None and answer.model:
        return '<span class="confidence" title="its chance of being right was fitted on another model\'s eval runs">confidence not measured for this model</span>'
    if answer.confidence is None:
        return "confidence unknown"
    percent = round(100 * answer.confidence)
    if answer.abstained:
        return f'<span class="confidence" title="estimated chance that the articles do not answer this">{percent}% sure it is not there</span>'
    return f'<span class="confidence" title="estimated chance that this answer is right, from the eval suites">{percent}% likely right</span>'


def plain_answer(answer: Answer) -> str:
    """The answer as text to copy: the prose, then the numbered sources it cites."""
    lines = [answer.answer]
    listed = answer.citations or answer.nearest
    if listed:
        lines += ["", "Sources:" if answer.citations else NEAREST_LABEL]
    for n, citation in enumerate(listed, 1):
        details = ", ".join(x for x in (citation.publisher, citation.published) if x)
        lines.append(f"[{citation.n or n}] {citation.title}" + (f" ({details})" if details else ""))
    return "\n".join(lines)


# -- the sources panel -----------------------------------------------------------------------------


def highlight(text: str, spans: Iterable[tuple[int, int]]) -> str:
    """Escape a passage, marking the given character spans (the supporting sentences)."""
    out, position = [], 0
    for start, end in _merged(spans, len(text)):
        out += [esc(text[position:start]), "<mark>", esc(text[start:end]), "</mark>"]
        position = end
    out.append(esc(text[position:]))
    return "".join(out)


def _merged(spans: Iterable[tuple[int, int]], length: int) -> list[tuple[int, int]]:
    merged: list[list[int]] = []
    for start, end in sorted((max(0, a), min(length, b)) for a, b in spans):
        if start >= end:
            continue
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [(a, b) for a, b in merged]


def article_href(base: str, spans: Iterable[tuple[int, int]]) -> str:
    """The article view's address with the sentences to highlight, as `at=start-end` offsets."""
    return base + "".join(f"&at={a}-{b}" for a, b in spans)


def source_card(entry: SourceEntry, element_id: str, article_link: ArticleLink, label: str = "") -> str:
    details = " · ".join(esc(x) for x in (entry.publisher, entry.published) if x)
    meta = f'<div class="source-meta">{details}</div>' if details else ""
    badge = f'<span class="source-label">{esc(label)}</span>' if label else ""
    number = entry.n or "•"
    return (
        f'<article class="source" id="{element_id}" tabindex="-1">'
        f'<div class="source-head"><span class="source-n">{number}</span>'
        f'<span class="source-title">{esc(entry.title) or esc(entry.source)}</span>{badge}</div>{meta}'
        f'<blockquote class="passage">{highlight(entry.text, entry.spans)}</blockquote>'
        f"{_source_links(entry, article_link)}</article>"
    )


def _source_links(entry: SourceEntry, article_link: ArticleLink) -> str:
    links = []
    whole = article_link(entry.source)
    if whole:
        href = article_href(whole, entry.article_spans())
        links.append(f'<a class="open-article" href="{esc(href)}" target="_blank" rel="noopener">'
                     "Open the whole article ↗</a>")
    if urlparse(entry.url).scheme in ("http", "https"):
        links.append(f'<a class="original" href="{esc(entry.url)}" target="_blank" rel="noopener noreferrer">'
                     "Original page ↗</a>")
    links.append(f'<span class="source-file">{esc(entry.source)}</span>')
    return f'<div class="source-links">{" · ".join(links)}</div>'


def retrieved_section(passages: list[Passage], turn: int, article_link: ArticleLink) -> str:
    """Shown as soon as retrieval finishes, while the answer is still being written."""
    if not passages:
        return '<p class="panel-note">No passage matched (check the filters).</p>'
    cards = "".join(source_card(SourceEntry.from_passage(n, p), source_id(turn, n), article_link)
                    for n, p in enumerate(passages, 1))
    return f'<p class="panel-note">Retrieved {len(passages)} passages; writing the answer…</p>{cards}'


def answered_section(answer: Answer, passages: list[Passage], turn: int, article_link: ArticleLink) -> str:
    if answer.abstained:
        # A filter can hide every passage: then there is no closest one to label.
        label = f"{NEAREST_LABEL.rstrip(':')}. {NEAREST_MARKED}" if answer.nearest else "No passage came close."
        note = f'<p class="panel-note">{esc(REFUSAL)} {label}</p>'
        cards = "".join(source_card(SourceEntry.from_citation(n, c), source_id(turn, n), article_link, "nearest")
                        for n, c in enumerate(answer.nearest, 1))
        return note + cards
    cited = {c.chunk_id for c in answer.citations}
    cards = "".join(source_card(SourceEntry.from_citation(c.n, c), source_id(turn, c.n), article_link)
                    for c in answer.citations)
    others = [p for p in passages if p.chunk_id not in cited]
    return cards + _uncited(others, turn, article_link)


def _uncited(passages: list[Passage], turn: int, article_link: ArticleLink) -> str:
    if not passages:
        return ""
    cards = "".join(source_card(SourceEntry.from_passage(0, p), f"retrieved-{turn}-{i}", article_link, "not cited")
                    for i, p in enumerate(passages, 1))
    return f'<details class="uncited"><summary>{len(passages)} more retrieved, not cited</summary>{cards}</details>'


def sources_panel(sections: list[tuple[str, str]]) -> str:
    """The latest question's sources, then earlier questions' sources folded away (their answers
    still link to them). `sections` holds (question, section HTML), oldest first."""
    if not sections:
        return ('<div class="sources-empty">Sources appear here: each passage the answer cites, '
                "with the supporting sentences highlighted.</div>")
    *earlier, (question, latest) = sections
    parts = [f'<div class="turn latest"><div class="turn-question">{esc(question)}</div>{latest}</div>']
    for question, section in reversed(earlier[-_EARLIER_TURNS_SHOWN:]):
        parts.append(f'<details class="turn earlier"><summary>{esc(question)}</summary>{section}</details>')
    return "".join(parts)


# -- uploads -----------------------------------------------------------------------------------------


def upload_report(outcomes: Iterable[tuple[str, bool, str]], summary: str = "") -> str:
    """One line per uploaded file, (name, added, message); names are the user's, so escaped."""
    items = "".join(
        f'<li class="{"ok" if added else "bad"}">{"✓" if added else "✗"} <b>{esc(name)}</b>: {esc(message)}</li>'
        for name, added, message in outcomes
    )
    note = f"<div>{esc(summary)}</div>" if summary else ""
    return f"<ul>{items}</ul>{note}"


# -- the article view ------------------------------------------------------------------------------

_SPAN = re.compile(r"^(\d+)-(\d+)$")


def parse_spans(values: Iterable[str]) -> list[tuple[int, int]]:
    """`at=start-end` values from the article view's address; anything else is ignored."""
    spans = []
    for value in values:
        match = _SPAN.match(value.strip())
        if match:
            spans.append((int(match.group(1)), int(match.group(2))))
    return spans


def article_page(title: str, publisher: str | None, published: str | None, url: str | None, text: str,
                 spans: Iterable[tuple[int, int]]) -> str:
    """An indexed article, its cited sentences marked; the first mark is where the page scrolls."""
    details = " · ".join(esc(x) for x in (publisher, published) if x)
    original = (f' · <a href="{esc(url)}" target="_blank" rel="noopener noreferrer">Original page ↗</a>'
                if urlparse(url or "").scheme in ("http", "https") else "")
    body = highlight(text, spans).replace("<mark>", '<mark id="cited">', 1)
    note = '<p class="article-note">The cited sentences are highlighted.</p>' if "<mark" in body else ""
    return (
        f'<article class="whole-article"><h1>{esc(title)}</h1>'
        f'<div class="article-meta">{details}{original}</div>{note}'
        f'<div class="article-text">{body}</div></article>'
    )


def missing_article() -> str:
    return ('<article class="whole-article"><h1>Article not found</h1><p>The index holds no article with '
            "this id. An article removed or changed since the answer was given has a new id, or none: ask "
            "again to get a fresh link.</p></article>")
