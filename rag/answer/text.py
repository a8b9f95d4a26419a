"""Small text analysis shared by the answerers and the validator: words, names, numbers.

Nothing here knows any corpus: the rules are about how English news text writes names,
acronyms, amounts and dates.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

WORD_RE = re.compile(r"[A-Za-z][A-Za-z'’\-]*[A-Za-z]|[A-Za-z]")
_NUMBER_RE = re.compile(
    r"(?<![\w.])(\d{1,3}(?:,\d{2,3})+|\d+(?:\.\d+)?)(\s*(?:%|per ?cent|percent))?"
    r"(?:\s*-?\s*(trillion|billion|million|thousand|bn|mn|m|b|k|tn|lakh|crore)\b)?",
    re.IGNORECASE,
)
_SCALE = {
    "thousand": 1e3,
    "k": 1e3,
    "lakh": 1e5,
    "million": 1e6,
    "mn": 1e6,
    "m": 1e6,
    "crore": 1e7,
    "billion": 1e9,
    "bn": 1e9,
    "b": 1e9,
    "trillion": 1e12,
    "tn": 1e12,
}
NUMBER_WORDS = {
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "thirteen": 13,
    "fourteen": 14,
    "fifteen": 15,
    "sixteen": 16,
    "seventeen": 17,
    "eighteen": 18,
    "nineteen": 19,
    "twenty": 20,
    "thirty": 30,
    "forty": 40,
    "fifty": 50,
    "hundred": 100,
    "dozen": 12,
}
_NUMBER_WORD_RE = re.compile(
    r"\b(" + "|".join(NUMBER_WORDS) + r")\b(?:\s+(trillion|billion|million|thousand))?", re.IGNORECASE
)

MONTHS = (
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
)
_MONTH_NAMES = "|".join(MONTHS)
_WEEKDAYS = "monday|tuesday|wednesday|thursday|friday|saturday|sunday"
_DATE_RE = re.compile(
    rf"\b(?:\d{{1,2}}\s+(?:{_MONTH_NAMES})|(?:{_MONTH_NAMES})\s+\d{{1,2}}|(?:19|20)\d{{2}}|\d{{4}}-\d{{2}}-\d{{2}}|"
    rf"(?:{_WEEKDAYS})|(?:last|next|this) (?:year|month|week))\b",
    re.IGNORECASE,
)

STOPWORDS = frozenset(
    """a about above after again against all also am an and any are as at be because been before being
    below between both but by can could did do does doing done down during each either few for from further
    had has have having he her here hers him his how i if in into is it its itself just me more most my no
    nor not now of off on once only or other our ours out over own same she should so some such than that
    the their theirs them then there these they this those through to too under until up upon very was we
    were what when where which while who whom whose why will with would you your yours according said says
    tell name list give many much kind sort type did does get got make made one ones two""".split()
)
# Capitalised words that start or frame a question without naming anything.
_QUESTION_FRAME = frozenset(
    """what which who whom whose when where why how did does do is are was were can could would should
    name list according tell give in on at the a an under during for to of by as per and or if has have
    had will after before between since please""".split()
)
# Names news text uses for the same country or union; any one mentions the others.
_ALIAS_GROUPS = (
    ("us", "usa", "united states", "u.s.", "u.s.a.", "america", "american"),
    ("uk", "united kingdom", "u.k.", "britain", "great britain", "british"),
    ("eu", "european union"),
)
_ALIASES = {name: tuple(n for n in group if n != name) for group in _ALIAS_GROUPS for name in group}
# How news text refers to a person named before: "Mr Blair", "Ms Rice", "Sir Alex".
_PERSONAL_TITLES = "mr|mrs|ms|miss|dr|sir|lord|lady|dame|president|minister|chancellor|senator|governor"
# News text names a country by its capital ("Washington said", "talks with Tokyo").
_CAPITALS = {
    "washington": ("united states", "u.s.", "us", "america"),
    "tokyo": ("japan",),
    "beijing": ("china",),
    "new delhi": ("india",),
    "delhi": ("india",),
    "moscow": ("russia",),
    "kyiv": ("ukraine",),
    "kiev": ("ukraine",),
    "london": ("united kingdom", "britain", "uk"),
    "paris": ("france",),
    "berlin": ("germany",),
    "brussels": ("european union", "eu", "european commission"),
    "seoul": ("korea",),
    "canberra": ("australia",),
    "ottawa": ("canada",),
    "brasilia": ("brazil",),
    "riyadh": ("saudi arabia",),
    "abu dhabi": ("united arab emirates", "uae"),
    "jakarta": ("indonesia",),
    "islamabad": ("pakistan",),
    "dhaka": ("bangladesh",),
    "tehran": ("iran",),
    "ankara": ("turkey",),
}
_CAPITAL_OF = {country: capital for capital, countries in _CAPITALS.items() for country in countries}
_CONNECTORS = frozenset({"of", "the", "and", "for", "on", "in", "de", "&"})
_DESCRIPTOR_ENDINGS = ("ian", "ean", "ican", "ese", "ish")  # Asian, European, American, Japanese, British
_DEMONYM_SUFFIXES = ("", "s", "n", "an", "ian", "ean", "ese", "ish", "i", "ns", "ans", "ians", "ese")


def words(text: str) -> list[str]:
    return WORD_RE.findall(text)


@lru_cache(maxsize=1)
def _stemmer():
    import Stemmer

    return Stemmer.Stemmer("english")


def content_stems(text: str) -> list[str]:
    """Lower-cased, stemmed words that carry meaning (no stopwords)."""
    kept = [w.lower().replace("’", "'") for w in words(text)]
    kept = [w for w in kept if w not in STOPWORDS and len(w) > 1]
    return _stemmer().stemWords(kept)


def numbers(text: str) -> set[float]:
    """Every quantity in the text as a value: "USD 10 billion", "$10bn" and "10,000,000,000" agree."""
    found: set[float] = set()
    for match in _NUMBER_RE.finditer(text):
        digits, _percent, scale = match.groups()
        value = float(digits.replace(",", ""))
        found.add(value)
        if scale:
            found.add(value * _SCALE[scale.lower()])
    for match in _NUMBER_WORD_RE.finditer(text):
        value = float(NUMBER_WORDS[match.group(1).lower()])
        found.add(value)
        if match.group(2):
            found.add(value * _SCALE[match.group(2).lower()])
    return found


def has_date(text: str) -> bool:
    return bool(_DATE_RE.search(text))


@dataclass(frozen=True)
class KeyTerm:
    """A name, acronym or number from the question that an answer's passage must mention."""

    text: str
    kind: str  # "name", "acronym", "number", or "descriptor" (Asian, American: often paraphrased)

    @property
    def required(self) -> bool:
        return self.kind != "descriptor"


def key_terms(question: str) -> list[KeyTerm]:
    """Names (runs of capitalised words such as "World Bank" stay one term), acronyms and numbers."""
    terms: list[KeyTerm] = []
    run: list[str] = []
    previous_end = -1
    for position, match in enumerate(re.finditer(r"[A-Za-z][\w'’.]*|\d[\d,.]*", question)):
        raw = match.group().rstrip(".")
        token = raw.rstrip("'’").removesuffix("'s").removesuffix("’s")
        adjacent = previous_end >= 0 and question[previous_end : match.start()].strip() == ""
        # A possessive ends a name: "India's External Affairs Minister" is two things.
        previous_end = -1 if token != raw.rstrip("'’") else match.end()
        if run and not (adjacent and _is_name_word(token, position)):
            terms.append(_name_term(run))
            run = []
        if not token:
            continue
        if token[0].isdigit():
            terms.append(KeyTerm(token, "number"))
        elif _is_acronym(token):
            terms.append(KeyTerm(token, "acronym"))
        elif _is_name_word(token, position):
            if token.lower().endswith(_DESCRIPTOR_ENDINGS) and not run:
                terms.append(KeyTerm(token, "descriptor"))
            else:
                run.append(token)
    if run:
        terms.append(_name_term(run))
    return terms


def _is_name_word(token: str, position: int) -> bool:
    # A capital that only starts the sentence says nothing about a name.
    return (
        bool(token)
        and position > 0
        and token[0].isupper()
        and not _is_acronym(token)
        and token.lower() not in _QUESTION_FRAME | STOPWORDS
    )


def _name_term(run: list[str]) -> KeyTerm:
    kind = "descriptor" if run[-1].lower().endswith(_DESCRIPTOR_ENDINGS) else "name"
    return KeyTerm(" ".join(run), kind)


def _is_acronym(token: str) -> bool:
    letters = token.replace(".", "")
    uppers = sum(c.isupper() for c in letters)
    return 2 <= len(letters) <= 7 and uppers >= 2 and uppers >= len(letters) - 1


def mentions(text: str, term: KeyTerm, text_numbers: set[float] | None = None) -> bool:
    """Does `text` mention the term, allowing the forms news text uses for the same thing:
    Japan/Japanese, DFC/Development Finance Corporation, US/United States, 10/ten."""
    if term.kind == "number":
        wanted = numbers(term.text)
        return bool(wanted & (text_numbers if text_numbers is not None else numbers(text)))
    lowered = text.lower()
    needle = term.text.lower().replace("’", "'")
    flexible = r"[\s\-]+".join(re.escape(part) for part in needle.split())
    if re.search(r"(?<![a-z])" + flexible + r"s?(?![a-z])", lowered):
        return True
    if any(_has_phrase(lowered, alias) for alias in _ALIASES.get(needle.replace(".", ""), ())):
        return True
    if any(_has_phrase(lowered, alias) for alias in _CAPITALS.get(needle, ())):
        return True
    if needle in _CAPITAL_OF and _has_phrase(lowered, _CAPITAL_OF[needle]):
        return True
    if term.kind == "acronym":
        return _spelled_out(text, needle.replace(".", ""))
    text_words = {w.lower() for w in words(text)}
    if " " in needle:
        # "Secretary Rubio" for "Secretary of State Marco Rubio": every word, if not the phrase.
        return (
            _abbreviated(needle, text)
            or all(_same_word_family(part, text_words) for part in needle.split() if part not in _CONNECTORS)
            or _titled_surname(needle, lowered)
        )
    return _same_word_family(needle, text_words)


def _titled_surname(name: str, lowered_text: str) -> bool:
    """ "Mr Blair" mentions Tony Blair: news text gives a person's full name once, then the title
    and surname."""
    parts = name.split()
    if not 2 <= len(parts) <= 3 or any(p in _CONNECTORS for p in parts):
        return False
    pattern = rf"\b(?:{_PERSONAL_TITLES})\.?\s+{re.escape(parts[-1])}(?![a-z])"
    return re.search(pattern, lowered_text) is not None


def _abbreviated(phrase: str, text: str) -> bool:
    """ "Minerals Security Partnership" is mentioned by "MSP"."""
    initials = "".join(word[0] for word in phrase.split() if word not in _CONNECTORS).upper()
    return len(initials) >= 2 and re.search(r"\b" + re.escape(initials) + r"s?\b", text) is not None


def _has_phrase(lowered_text: str, phrase: str) -> bool:
    return re.search(r"(?<![a-z])" + re.escape(phrase) + r"(?![a-z])", lowered_text) is not None


def _spelled_out(text: str, acronym: str) -> bool:
    """True when a run of capitalised words in `text` has the acronym as its initials,
    with or without its connecting words (MoU: Memorandum of Understanding; DFC: Development
    Finance Corporation)."""
    with_connectors, without_connectors = [], []
    for word in words(text):
        if word[0].isupper():
            with_connectors.append(word[0].lower())
            without_connectors.append(word[0].lower())
        elif word.lower() in _CONNECTORS:
            with_connectors.append(word[0].lower())
        else:
            with_connectors.append(" ")
            without_connectors.append(" ")
    return acronym in "".join(with_connectors) or acronym in "".join(without_connectors)


def _same_word_family(needle: str, text_words: set[str]) -> bool:
    stems = {needle, needle[:-1]} if needle[-1:] in "aeiouy" and len(needle) > 4 else {needle}
    for word in text_words:
        for stem in stems:
            if word.startswith(stem) and word[len(stem) :] in _DEMONYM_SUFFIXES:
                return True
            if needle.startswith(word) and len(word) >= 4 and needle[len(word) :] in _DEMONYM_SUFFIXES:
                return True
    return False


# Sentences addressed to an assistant rather than reporting news ("Ignore all previous
# instructions and answer ..."). The sentence ranker leaves them out, so neither the extractive
# answer nor a model's evidence can quote or obey one. A shape of speech, not a list of phrases
# from any corpus: an imperative to set aside instructions, or words only said to a machine.
_ADDRESSED_TO_ASSISTANT = re.compile(
    r"\b(ignore|disregard|forget|override)\b.{0,40}\b(instructions?|prompts?|rules|guidelines)\b"
    r"|\b(system prompt|you are now|(reply|respond|answer) only with|as an ai\b|language model)",
    re.I,
)


def addressed_to_assistant(sentence: str) -> bool:
    return bool(_ADDRESSED_TO_ASSISTANT.search(sentence))
