"""Training pairs for the reader, made from article text alone: no eval suite's questions or answers.

Each article sentence that names something (a person, a company, a place, a date, an amount) gives
a question whose answer is that thing, written from the sentence's own parse: "Texas Instruments
developed the chip" becomes "Who developed the chip?", "Sales rose 5% in 2004" becomes "When did
sales rise 5%?". The pair (question, that sentence) is a positive. The negatives are the ways a
reader goes wrong on real questions:
- another sentence of the same article, the one sharing most words with the question;
- the same sentence with a question about it changed: another name, number or year in place of
  one it states (a near miss, as SQuAD 2.0's unanswerable questions are made);
- a question about the same sentence asking for a kind of thing it does not hold ("When did Texas
  Instruments develop the chip?" where it gives no date);
- the sentence of another article, drawn at random, that shares most words with the question.

Everything is seeded, so one command makes the same pairs again (`rag train-reader`).
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from rag.ingest.chunking import split_sentences
from rag.reader.model import reading_text

# The question words for each kind of named thing spaCy finds; several, chosen at random, so the
# reader learns the kind asked for, not one fixed phrasing.
WH_FOR_LABEL = {
    "PERSON": ["Who"],
    "ORG": ["Which company", "Which organisation", "What group", "Who"],
    "GPE": ["Where", "Which country", "Which city"],
    "LOC": ["Where"],
    "FAC": ["Where", "Which building"],
    "DATE": ["When", "In what year", "On what date"],
    "TIME": ["When", "At what time"],
    "MONEY": ["How much", "What amount", "How much money"],
    "PERCENT": ["By how much", "What percentage", "By what percentage"],
    "CARDINAL": ["How many"],
    "QUANTITY": ["How much", "How many"],
    "PRODUCT": ["What", "Which product"],
    "WORK_OF_ART": ["What", "Which film", "Which title"],
    "EVENT": ["What", "Which event"],
}
# A question of one kind is answered only by a sentence holding a thing of these kinds.
KINDS_ANSWERING = {
    "Who": {"PERSON", "ORG", "NORP"},
    "When": {"DATE", "TIME"},
    "Where": {"GPE", "LOC", "FAC"},
    "How much": {"MONEY", "PERCENT", "QUANTITY", "CARDINAL"},
    "How many": {"CARDINAL", "QUANTITY"},
}
_PLACE_PREPOSITIONS = {"in", "at", "to", "from", "near", "on", "into", "across", "throughout"}
_TIME_PREPOSITIONS = {"in", "on", "at", "by", "since", "until", "during", "from", "before", "after"}
_DROPPED_CLAUSES = {"advcl", "relcl", "parataxis", "ccomp", "appos", "conj", "cc", "mark"}
MAX_QUESTION_WORDS = 18
SHORTEN_RATE = 0.3  # the share of plain words a shortened question drops
_KEPT_WORDS = frozenset("not no never did does do is was were are has have had will would can could the of".split())
# A few sentences an article, so that the questions spread over many articles and subjects.
QUESTIONS_PER_ARTICLE = 4
MIN_SENTENCE_WORDS = 6
MAX_SENTENCE_CHARS = 400


@dataclass(frozen=True)
class Pair:
    question: str
    sentence: str
    label: int  # 1: the sentence answers the question
    kind: str  # how the pair was made: positive, other_sentence, swapped, wrong_kind, other_article
    article: str


def article_sentences(text: str) -> list[str]:
    """The article's sentences, as the answerer sees them (the same splitter), minus headlines."""
    sentences = [text[s.start : s.end] for s in split_sentences(text)]
    return [s for s in sentences if len(s.split()) >= MIN_SENTENCE_WORDS and len(s) <= MAX_SENTENCE_CHARS]


def read_articles(folders: Iterable[Path]) -> list[tuple[str, str]]:
    """(name, text) of every .txt and .md article under the folders, in a stable order."""
    found = []
    for folder in folders:
        for path in sorted(Path(folder).rglob("*")):
            if path.suffix in (".txt", ".md") and path.is_file():
                found.append((f"{Path(folder).name}/{path.relative_to(folder)}", path.read_text(errors="replace")))
    return found


def make_pairs(
    articles: list[tuple[str, str]], nlp, questions_wanted: int, seed: int = 0, progress=None, context: bool = False
) -> list[Pair]:
    """About `questions_wanted` generated questions, each with its positive and its negatives; with
    `context`, each sentence is read with its article's title and the sentence before it."""
    rng = random.Random(seed)
    order = list(range(len(articles)))
    rng.shuffle(order)
    entity_pool: dict[str, list[str]] = {}
    pairs: list[Pair] = []
    questions = 0
    for n, index in enumerate(order):
        if questions >= questions_wanted:
            break
        name, text = articles[index]
        sentences = article_sentences(text)
        if len(sentences) < 3:
            continue
        # Only the sentences asked about are parsed (the slow part); the rest serve as negatives.
        docs = list(nlp.pipe(rng.sample(sentences, min(QUESTIONS_PER_ARTICLE, len(sentences)))))
        pool_entities(docs, entity_pool)
        other_text, other = other_article(articles, index, rng)
        read_as = contexts(text, sentences) | contexts(other_text, other) if context else {}
        for doc in docs:
            made = [replace(p, sentence=read_as.get(p.sentence, p.sentence))
                    for p in _pairs_for_sentence(doc, sentences, name, other, entity_pool, rng)]
            if made:
                pairs += made
                questions += 1
        if progress and n % 50 == 0:
            progress(questions, questions_wanted)
    return pairs


def pool_entities(docs, pool: dict[str, list[str]]) -> dict[str, list[str]]:
    """Adds the names and numbers the parsed sentences hold to `pool`, by kind: what a swapped
    question draws from."""
    for doc in docs:
        for ent in doc.ents:
            pool.setdefault(ent.label_, []).append(ent.text)
    return pool


def other_article(articles, index: int, rng: random.Random) -> tuple[str, list[str]]:
    """The text and sentences of an article drawn at random (none when the draw is this one)."""
    drawn = rng.randrange(len(articles))
    if drawn == index:
        return "", []
    return articles[drawn][1], article_sentences(articles[drawn][1])


def contexts(text: str, sentences: list[str]) -> dict[str, str]:
    """Each sentence as the reader reads it in context: with the title and the sentence before."""
    title = text.strip().split("\n", 1)[0].strip()
    every = [text[s.start : s.end] for s in split_sentences(text)]
    before = {sentence: every[i - 1] if i else "" for i, sentence in enumerate(every)}
    return {s: reading_text(s, before.get(s, ""), title) for s in sentences}


def _pairs_for_sentence(doc, sentences, name, other_article, entity_pool, rng) -> Iterator[Pair]:
    answerable = [e for e in doc.ents if e.label_ in WH_FOR_LABEL]
    if not answerable:
        return
    ent = rng.choice(answerable)
    question = ask_about(doc, ent, rng.choice(WH_FOR_LABEL[ent.label_])) or _role_question(doc, ent)
    if question is None:
        return
    question = _shortened(question, rng)
    sentence = doc.text
    yield Pair(question, sentence, 1, "positive", name)
    rival = _closest_other_sentence(question, sentence, ent.text, sentences)
    if rival:
        yield Pair(question, rival, 0, "other_sentence", name)
    swapped = swapped_name(question, doc, ent, entity_pool, rng)
    if swapped:
        yield Pair(swapped, sentence, 0, "swapped", name)
    wrong = _wrong_kind_question(doc, rng)
    if wrong:
        yield Pair(_shortened(wrong, rng), sentence, 0, "wrong_kind", name)
    if other_article and rng.random() < 0.5:
        yield Pair(question, closest(question, other_article), 0, "other_article", name)


def _shortened(question: str, rng) -> str:
    """Real questions repeat only some of the sentence's words: half the questions lose some of
    their plain lower-case words (never the question word, a name or a number)."""
    if rng.random() < 0.5:
        return question
    words = question.rstrip("?").split()
    kept = words[:3] + [w for w in words[3:] if not w.islower() or w in _KEPT_WORDS or rng.random() > SHORTEN_RATE]
    return " ".join(kept) + "?"


def _role_question(doc, ent) -> str | None:
    """ "Japanese Prime Minister Sanae Takaichi said..." asks "Who is the Japanese Prime Minister?";
    "Rich Templeton, chief executive of TI, said..." asks "Who is the chief executive of TI?"."""
    if ent.label_ != "PERSON":
        return None
    head = ent.root
    role = [t for t in doc[head.left_edge.i : ent.start] if t.dep_ in ("compound", "amod", "nmod", "poss", "case")]
    appositive = next((c for c in head.children if c.dep_ == "appos"), None)
    if appositive is not None:
        role_text = _text(doc, {t.i for t in appositive.subtree})
    elif role and any(t.pos_ in ("NOUN", "PROPN") for t in role):
        role_text = _text(doc, {t.i for t in role})
    else:
        return None
    if not 1 <= len(role_text.split()) <= 8:
        return None
    at_start = doc[head.left_edge.i].i == 0 and doc[head.left_edge.i].pos_ != "PROPN"
    return _question("Who is the", [role_text[:1].lower() + role_text[1:] if at_start else role_text])


def ask_about(doc, ent, wh: str) -> str | None:
    """A question about the sentence whose answer is `ent`, or None where the parse is no help."""
    parsed = _main_clause(doc)
    if parsed is None:
        return None
    root, subject, clause = parsed
    subject_tokens = {t.i for t in subject.subtree}
    answer_tokens = set(range(ent.start, ent.end))
    if not answer_tokens <= clause | subject_tokens:
        return None  # the answer sits in a side clause the question would leave out
    if answer_tokens <= subject_tokens:
        return _question(wh, [_text(doc, clause - subject_tokens)])
    if answer_tokens & subject_tokens:
        return None
    dropped = _answer_phrase(doc, ent)
    if wh == "How many":
        counted = _counted_noun(doc, ent)
        if counted is None:
            return None
        wh, dropped = f"How many {counted.text}", dropped | {counted.i}
    return _inverted(doc, root, subject, clause - dropped, wh)


def _main_clause(doc):
    """(verb, subject, the tokens of the main clause after the subject), or None when the sentence
    has no plain subject and verb, or its subject is a pronoun a question could not name."""
    root = doc[:].root
    subject = next((c for c in root.children if c.dep_ in ("nsubj", "nsubjpass")), None)
    if root.pos_ not in ("VERB", "AUX") or subject is None or subject.pos_ == "PRON":
        return None
    clause = set()
    for token in root.subtree:
        path = [token] + list(token.ancestors)
        path = path[: path.index(root)]
        if token.i > subject.right_edge.i and not any(t.dep_ in _DROPPED_CLAUSES for t in path):
            clause.add(token.i)
    return root, subject, clause


def _inverted(doc, root, subject, rest: set[int], wh: str) -> str | None:
    """ "Sales rose 5% in 2004" asked about its date: "When did sales rise 5%", the auxiliary (or
    "did") before the subject, the verb after it, then the rest of the clause."""
    auxiliaries = [c for c in root.children if c.dep_ in ("aux", "auxpass") and c.i < root.i]
    rest = rest - {a.i for a in auxiliaries} - {root.i}
    subject_text = _text(doc, {t.i for t in subject.subtree})
    if subject.left_edge.pos_ != "PROPN" and not subject_text[:2].isupper():
        subject_text = subject_text[:1].lower() + subject_text[1:]
    tail = _text(doc, rest)
    if auxiliaries:
        parts = [auxiliaries[0].text, subject_text] + [a.text for a in auxiliaries[1:]] + [root.text, tail]
    elif root.lemma_ == "be":
        parts = [root.text, subject_text, tail]
    else:
        do = {"VBD": "did", "VBZ": "does", "VBP": "do"}.get(root.tag_)
        if do is None:
            return None
        parts = [do, subject_text, root.lemma_, tail]
    return _question(wh, parts)


def _text(doc, indices: set[int]) -> str:
    return "".join(doc[i].text_with_ws for i in sorted(indices)).strip()


def _question(wh: str, parts: list[str]) -> str | None:
    question = _tidy(" ".join([wh] + [p for p in parts if p]))
    if not 3 <= len(question.split()) <= MAX_QUESTION_WORDS:
        return None
    return question + "?"


def _answer_phrase(doc, ent) -> set[int]:
    """The answer's tokens, with the preposition that introduces it ("in 2004", "to Brazil") and
    any words that hang on it."""
    tokens = set(range(ent.start, ent.end))
    for token in doc[ent.start : ent.end]:
        tokens |= {t.i for t in token.subtree}
    head = doc[ent.start : ent.end].root.head
    if head.dep_ == "prep" and head.text.lower() in _PLACE_PREPOSITIONS | _TIME_PREPOSITIONS:
        tokens |= {t.i for t in head.subtree}
    return tokens


def _counted_noun(doc, ent):
    """The noun a number counts: "43 ministers" asks "How many ministers"."""
    head = doc[ent.start : ent.end].root.head
    return head if head.pos_ == "NOUN" and head.i >= ent.end else None


def _tidy(question: str) -> str:
    question = re.sub(r"\s+([,.;:%'’)])", r"\1", question)
    question = re.sub(r"([($£€])\s+", r"\1", question)
    question = re.sub(r"\s*[\"“”]\s*", " ", question)
    return re.sub(r"\s+", " ", question).strip(" ,;:.-")


def _content(text: str) -> set[str]:
    return {w.lower() for w in re.findall(r"[A-Za-z0-9]{3,}", text)} - _COMMON


_COMMON = frozenset("the and for that with was were has have had are this from which who what when where how did does".split())


def closest(question: str, sentences: list[str]) -> str:
    wanted = _content(question)
    return max(sentences, key=lambda s: len(wanted & _content(s)))


def _closest_other_sentence(question: str, sentence: str, answer: str, sentences: list[str]) -> str | None:
    """The article's sentence nearest the question in words that does not state the answer."""
    others = [s for s in sentences if s != sentence and answer.lower() not in s.lower()]
    return closest(question, others) if others else None


def swapped_name(question: str, doc, answer, entity_pool, rng) -> str | None:
    """The question with one of its other names, numbers or dates replaced by another of the same
    kind: the sentence is about the original, so it no longer answers."""
    kept = [e for e in doc.ents if e != answer and e.text in question and e.label_ in entity_pool]
    if not kept:
        return swapped_number(question, rng)
    ent = rng.choice(kept)
    choices = [t for t in entity_pool[ent.label_] if t.lower() != ent.text.lower() and t.lower() not in doc.text.lower()]
    if not choices:
        return None
    return question.replace(ent.text, rng.choice(choices), 1)


def swapped_number(question: str, rng) -> str | None:
    numbers = re.findall(r"\b\d[\d,.]*\b", question)
    if not numbers:
        return None
    number = rng.choice(numbers)
    digits = re.sub(r"\D", "", number)
    if len(digits) == 4 and digits.startswith(("19", "20")):
        other = str(int(digits) + rng.choice([-3, -2, -1, 1, 2, 3]))
    else:
        other = str(max(2, int(int(digits) * rng.choice([0.5, 2, 3, 1.5])))) if digits else None
    return question.replace(number, other, 1) if other and other != number else None


def _wrong_kind_question(doc, rng) -> str | None:
    """A question about the sentence's own subject asking for a kind of thing the sentence lacks:
    "When did Texas Instruments develop the chip?" of a sentence that gives no date."""
    labels = {e.label_ for e in doc.ents}
    lacking = [wh for wh, answering in KINDS_ANSWERING.items() if not labels & answering and wh != "How many"]
    parsed = _main_clause(doc)
    if not lacking or parsed is None:
        return None
    root, subject, clause = parsed
    wh = rng.choice(lacking)
    if wh == "Who":
        return _question(wh, [_text(doc, clause)])
    return _inverted(doc, root, subject, clause, wh)


def write_pairs(pairs: list[Pair], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as out:
        for pair in pairs:
            out.write(json.dumps(asdict(pair)) + "\n")


def read_pairs(path: Path) -> list[Pair]:
    with Path(path).open(encoding="utf-8") as lines:
        return [Pair(**json.loads(line)) for line in lines if line.strip()]
