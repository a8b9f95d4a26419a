"""The citation format and the refusal phrase: one definition shared by the prompt, the parser,
the extractive answerer and the tests.

Below them, the parser and validator of an LLM's answer: markers are normalised to [n], the
answer is split into claim sentences with the passages each cites, and every claim must cite a
passage it was given and state no number, date or name that its passages do not. A claim written
without a marker can be attributed after the fact to the passage that supports it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from rag.answer import entities
from rag.answer import text as textlib
from rag.ingest.chunking import split_sentences

REFUSAL = "Not in these articles."
CITATION_FORMAT = "[{n}]"
CITATION_RE = re.compile(r"\[(\d+)\]")


def cite(n: int) -> str:
    return CITATION_FORMAT.format(n=n)


def strip_citations(text: str) -> str:
    return re.sub(r"\s*\[\d+\]", "", text).strip()


# --- normalising the markers a model writes -------------------------------------------------

_SOURCE_WORD = r"(?:passages?|sources?|refs?|references?|docs?|documents?|articles?)\.?\s*:?\s*"
_NUMBER_LIST = r"\d{1,3}(?:\s*(?:,|;|&|and|-|–)\s*(?:" + _SOURCE_WORD + r")?\d{1,3})*"
# OpenAI-style "【4†source】" keeps only its leading number.
_FULLWIDTH = re.compile(r"【\s*(\d{1,3}(?:\s*[,;]\s*\d{1,3})*)[^】]{0,40}】")
_FOOTNOTE = re.compile(r"\[\^\s*(\d{1,3})\s*\]")
_BRACKETED = re.compile(r"\[\s*(?:" + _SOURCE_WORD + r")?(" + _NUMBER_LIST + r")\s*\]", re.I)
# "(Passage 2)" is a citation wherever it stands.
_NAMED_PARENS = re.compile(r"\s*\(\s*(?:see\s+)?" + _SOURCE_WORD + r"(" + _NUMBER_LIST + r")\s*\)", re.I)
# A bare "(1)" only when it sits where a citation sits: after a word or a sentence's end, and
# before punctuation, another marker or the end; "(1) first, ..." or "(1,000 tons)" are not.
_BARE_PARENS = re.compile(
    r"(?<=[\w.!?,;:\"'”’%)\]])\s*\((\d{1,2}(?:\s*,\s*\d{1,2})*)\)(?=\s*(?:[.,;:!?]|\[|\(\d|$))", re.M
)
_ANSWER_LABEL = re.compile(r"^\s*(?:\*\*)?(?:final answer|answer|response)\s*:\s*(?:\*\*)?\s*", re.I)
_GLUED_MARKER = re.compile(r"(?<=[^\s\[(])(?=\[\d+\])")


def normalise_markers(text: str, max_n: int | None = None) -> str:
    """Rewrite the citation markers models produce ([1,2], [1][2], 【1】, [^1], [Passage 1], (1))
    as the canonical "[1] [2]". `max_n` is the number of passages given: a bare "(n)" beyond it
    is left alone, since it is more likely part of the text than a citation."""
    text = _ANSWER_LABEL.sub("", text)
    text = _FULLWIDTH.sub(lambda m: _markers(m.group(1)), text)
    text = _FOOTNOTE.sub(lambda m: cite(int(m.group(1))), text)
    text = _BRACKETED.sub(lambda m: _markers(m.group(1)), text)
    text = _NAMED_PARENS.sub(lambda m: " " + _markers(m.group(1)), text)
    text = _BARE_PARENS.sub(lambda m: _bare_parens(m, max_n), text)
    text = _GLUED_MARKER.sub(" ", text)
    return re.sub(r"[ \t]{2,}", " ", text).strip()


def _markers(number_list: str) -> str:
    return " ".join(cite(n) for n in _expand(number_list))


def _expand(number_list: str) -> list[int]:
    numbers: list[int] = []
    for part in re.split(r"\s*(?:,|;|&|\band\b)\s*", number_list):
        ends = [int(n) for n in re.findall(r"\d+", part)]
        if len(ends) == 2 and 0 < ends[1] - ends[0] <= 10:  # a range, "[1-3]"
            numbers.extend(range(ends[0], ends[1] + 1))
        else:
            numbers.extend(ends)
    return numbers


def _bare_parens(match: re.Match, max_n: int | None) -> str:
    numbers = _expand(match.group(1))
    if max_n is not None and not all(1 <= n <= max_n for n in numbers):
        return match.group(0)
    return " " + " ".join(cite(n) for n in numbers)


def is_refusal(text: str) -> bool:
    """Does the answer decline (start with the refusal phrase, allowing quotes, markup and case)?"""
    bare = re.sub(r"^[\s\"'“‘*_>`-]+", "", strip_citations(_ANSWER_LABEL.sub("", text)))
    return bare.lower().startswith(REFUSAL.lower().rstrip("."))


# --- claims and their checks ---------------------------------------------------------------


@dataclass
class Claim:
    """One sentence of an answer, without its markers, and the passage numbers it cites."""

    text: str
    cited: list[int]


_LEADING_MARKERS = re.compile(r"^(?:\s*\[\d+\])+")
_HAS_WORD = re.compile(r"[A-Za-z0-9]")


def split_claims(text: str) -> list[Claim]:
    """The sentences of a normalised answer. Markers that open a sentence ("It rose. [1] Then...")
    belong to the sentence before them."""
    claims: list[Claim] = []
    for span in split_sentences(text):
        piece = text[span.start : span.end]
        leading = _LEADING_MARKERS.match(piece)
        if leading and claims:
            claims[-1].cited.extend(int(n) for n in CITATION_RE.findall(leading.group()))
            piece = piece[leading.end() :]
        cited = [int(n) for n in CITATION_RE.findall(piece)]
        body = strip_citations(piece)
        if _HAS_WORD.search(body):
            claims.append(Claim(body, cited))
        elif cited and claims:
            claims[-1].cited.extend(cited)
    return claims


def check_claims(claims: list[Claim], sources: list[str]) -> str | None:
    """Why the claims cannot be shown as a cited answer, or None when they can. `sources[n - 1]`
    is what passage [n] states (`EvidencePassage.stated_text`)."""
    if not claims:
        return "the model wrote no answer"
    for i, claim in enumerate(claims, 1):
        problem = check_claim(i, claim, sources)
        if problem:
            return problem
    return None


def check_claim(i: int, claim: Claim, sources: list[str]) -> str | None:
    """Why claim number `i` cannot be shown citing its passages, or None when it can."""
    if not claim.cited:
        return f"sentence {i} cites nothing"
    for n in claim.cited:
        if not 1 <= n <= len(sources):
            given = f"{len(sources)} passage was" if len(sources) == 1 else f"{len(sources)} passages were"
            return f"it cites {cite(n)} but only {given} given"
    cited = "\n".join(sources[n - 1] for n in dict.fromkeys(claim.cited))
    unsupported = (
        [("number", q) for q in unsupported_numbers(claim.text, cited)]
        + [("date", m) for m in unsupported_months(claim.text, cited)]
        + [("name", t) for t in unsupported_names(claim.text, cited)]
    )
    if unsupported:
        kind, what = unsupported[0]
        return f"the {kind} {what} in sentence {i} is in none of the passages it cites"
    if _is_bare_value(claim.text):  # "$25m (£13m)": its figures, checked above, are all it says
        return None
    if not set(textlib.content_stems(claim.text)) & set(textlib.content_stems(cited)):
        return f"sentence {i} shares no words with the passages it cites"
    return None


def _is_bare_value(claim: str) -> bool:
    """A figure alone ("$10bn", "1994"), the short answer to "how much" or "which year"."""
    return bool(textlib.numbers(claim)) and not textlib.content_stems(_FIGURE.sub(" ", claim))


# The share of an uncited sentence's distinct content stems that a passage must also have to be
# credited with it (on top of stating every number, date and name of the sentence).
MIN_SHARED_STEMS = 0.5


def supporting_passage(claim: str, sources: list[str]) -> int | None:
    """The passage number [n] an uncited claim can be attributed to after the fact, or None.

    A passage supports the claim when the claim, citing it alone, passes `check_claim` (all its
    numbers, dates and names are in the passage) and the passage has at least MIN_SHARED_STEMS of
    the claim's content stems. Of several, the one sharing the most stems wins; a tie goes to the
    lower number, the stronger evidence. A refusal sentence is nobody's claim."""
    if _is_bare_value(claim):  # the best-ranked passage that states the figure answers with it
        return next((n for n in range(1, len(sources) + 1) if check_claim(1, Claim(claim, [n]), sources) is None), None)
    stems = set(textlib.content_stems(claim))
    if not stems or is_refusal(claim):
        return None
    best, best_shared = None, 0
    for n, source in enumerate(sources, 1):
        shared = len(stems & set(textlib.content_stems(source)))
        if shared < MIN_SHARED_STEMS * len(stems) or shared <= best_shared:
            continue
        if check_claim(1, Claim(claim, [n]), sources) is None:
            best, best_shared = n, shared
    return best


# A figure with the word after it, which may be its scale ("600 million", "$10bn", "1,00,000 tons").
_FIGURE = re.compile(r"(?<![\w.])\d[\d,]*(?:\.\d+)?(?:\s*-?\s*[A-Za-z]+)?")
_WORD_FIGURE = re.compile(r"\b[A-Za-z]+\b(?:\s+(?:trillion|billion|million|thousand)\b)?", re.I)
# "one" is as often a pronoun ("one of the partners") as a count.
_NOT_A_COUNT = {"one"}


def unsupported_numbers(claim: str, source: str) -> list[str]:
    """The quantities of the claim whose value is nowhere in the source. A quantity is compared by
    its most specific value, so "USD 600 million" needs 600,000,000, while a bare "600" needs 600."""
    available = textlib.numbers(source)
    missing = []
    for written in _quantities(claim):
        value = max(textlib.numbers(written))
        if not any(math.isclose(value, v, rel_tol=1e-9) for v in available):
            missing.append(written)
    return missing


def _quantities(claim: str) -> list[str]:
    found = [
        _without_plain_word(m.group().strip()) for m in _FIGURE.finditer(claim) if textlib.numbers(m.group())
    ]
    for match in _WORD_FIGURE.finditer(claim):
        if match.group().lower() not in _NOT_A_COUNT and textlib.numbers(match.group()):
            found.append(match.group())
    return found


def _without_plain_word(figure: str) -> str:
    """ "55 countries" is reported as "55"; "600 million" keeps its scale."""
    bare = re.sub(r"\s*-?\s*[A-Za-z]+$", "", figure)
    return bare if bare and max(textlib.numbers(bare)) == max(textlib.numbers(figure)) else figure


_MONTH_RE = re.compile(r"\b(" + "|".join(m.capitalize() for m in textlib.MONTHS) + r")\b")


def unsupported_months(claim: str, source: str) -> list[str]:
    lowered = source.lower()
    return [m for m in _MONTH_RE.findall(claim) if m.lower() not in lowered]


def unsupported_names(claim: str, source: str) -> list[str]:
    """Names and acronyms of the claim that the source does not mention in any form."""
    return [term.text for term in claim_names(claim) if not textlib.mentions(source, term)]


# Entity labels that are names: people, organisations, places, buildings.
_NAME_LABELS = frozenset({"PERSON", "ORG", "GPE", "LOC", "FAC"})


def claim_names(claim: str) -> list[textlib.KeyTerm]:
    """The names and acronyms a claim states. `key_terms` cannot tell a name opening the sentence
    ("Germany signed it") from any capitalised first word, so the entity tagger decides that one."""
    terms = [t for t in textlib.key_terms(claim) if t.kind in ("name", "acronym")]
    opening = next(
        (text for label, text in entities.entities(claim) if label in _NAME_LABELS and claim.startswith(text)),
        None,
    )
    if opening and not any(t.text == opening for t in terms):
        terms.append(textlib.KeyTerm(opening, "acronym" if opening.isupper() else "name"))
    return terms
