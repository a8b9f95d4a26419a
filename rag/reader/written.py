"""Questions written by a local language model, for the reader's training pairs.

The questions of rag/reader/questions.py are made from the sentence's own parse, so they repeat its
words, and a reader trained on them learned to look for the question's words (evals/README.md,
"Checking a reader"). People ask in their own words. A model asked to write a question that a
sentence answers, "the way a reader who has not seen it would ask", rewords it ("Who will lead
Ireland's team after D'Arcy's injury?" of "The side will now be led by Munster lock Paul
O'Connell."), and the pair (question, that sentence) is a positive. The negatives are made as for the generated questions:
the article's other sentence sharing most words with the question (one that does not state the
answer), the closest sentence of another article, and the question with one of its names or
numbers swapped for another of the same kind, which the sentence then no longer answers (SQuAD
2.0's unanswerable questions are made so).

The model writes at temperature 0 and the sentences are drawn with a seed, so the same command
writes the same questions. Each one is kept in a file as it is written, so a stopped run goes on
where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from rag.reader import questions
from rag.reader.questions import Pair

WRITER_PROMPT = (
    "You write one quiz question about a sentence from a news article, and its answer. The answer must "
    "be a few words copied exactly from the sentence: a name, number, date, place or reason. Ask the "
    "question the way a reader who has not seen the sentence would, in your own words rather than the "
    "sentence's, and do not put the answer in the question.\n"
    "Reply in two lines:\nQuestion: ...\nAnswer: ..."
)
MIN_SENTENCE_WORDS = 10
MIN_QUESTION_WORDS, MAX_QUESTION_WORDS = 4, 25
MAX_ANSWER_WORDS = 8
# Bumped when the pairs made from the same written questions change, so older pairs are not reused.
PAIRS_VERSION = 2

# A near miss: a question on the sentence's subject, in some of its words, that it does not answer,
# as SQuAD 2.0's unanswerable questions are written. Without examples Qwen 1.5B copied the question
# it was given; with them, most of its questions were still answered by the sentence. So a second
# call asks it to answer from the sentence, and only those it finds not stated are kept (its chance
# of "yes" to "is the answer stated?" was 0.53-0.89 for every one, and told nothing). Even so, 18 of
# 40 it kept were answered after all (evals/README.md, "Checking a reader").
NEAR_MISS_PROMPT = (
    "You write a quiz question that a sentence from a news article does NOT answer. Use some of the sentence's "
    "words and stay on its topic, but ask for a detail the sentence does not give (who, when, where, how much, "
    "or why), so that a careless reader might think the sentence answers it.\nReply in one line:\nQuestion: ..."
)
NEAR_MISS_EXAMPLES = (
    ("The city council approved the new bridge on Tuesday after a two-hour debate.",
     "How much will the new bridge cost?"),
    ("Striker Tom Hale scored twice as Riverside beat Norton 3-1 in the cup semi-final.",
     "Who will Riverside play in the cup final?"),
)
NOT_STATED = "NOT STATED"
JUDGE_PROMPT = (
    "Answer the question from the sentence alone. If the sentence states the answer, copy the answer's words "
    f"from it. If it does not, reply exactly: {NOT_STATED}"
)
# What decides the near misses written: their data and cache keys name it.
NEAR_MISS_PROMPTS = [NEAR_MISS_PROMPT, NEAR_MISS_EXAMPLES, JUDGE_PROMPT]
_REPLY_RE = re.compile(r"^\W*question\W*:\s*(?P<question>.+?)\s*\n\W*answer\W*:\s*(?P<answer>.+?)\s*$", re.I | re.S)

Complete = Callable[[list[dict[str, str]]], str]


@dataclass(frozen=True)
class Written:
    article: str
    sentence: str
    question: str  # empty when the model's reply was not a usable question and answer
    answer: str = ""  # the words of the sentence the model gave as the answer


def write_questions(
    articles: list[tuple[str, str]], complete: Complete, wanted: int, seed: int, cache: Path, progress=None
) -> list[Written]:
    """One written question for a sentence drawn from each article, until `wanted` are usable."""
    rng = random.Random(seed)
    order = list(range(len(articles)))
    rng.shuffle(order)
    known = _read_cache(cache)
    usable: list[Written] = []
    for index in order:
        if len(usable) >= wanted:
            break
        name, text = articles[index]
        sentences = [s for s in questions.article_sentences(text) if len(s.split()) >= MIN_SENTENCE_WORDS]
        if not sentences:
            continue
        sentence = rng.choice(sentences)
        written = known.get((name, sentence)) or _write(complete, name, _title(text), sentence, cache)
        if written.question:
            usable.append(written)
            if progress:
                progress(len(usable), wanted)
    return usable


@dataclass(frozen=True)
class NearMiss:
    article: str
    sentence: str
    question: str  # empty when the reply was not a usable question
    judged: str = ""  # the model's answer to it from the sentence alone


def write_near_misses(
    written: list[Written], complete: Complete, wanted: int, cache: Path, progress=None
) -> list[NearMiss]:
    """A near-miss question for each written question's sentence, until `wanted` are kept: those the
    model itself finds the sentence does not answer."""
    known = {(n.article, n.sentence): n for n in _read_lines(cache, NearMiss)}
    kept: list[NearMiss] = []
    for item in written:
        if len(kept) >= wanted:
            break
        near = known.get((item.article, item.sentence)) or _write_near_miss(complete, item, cache)
        if near.question and near.judged.upper().startswith(NOT_STATED):
            kept.append(near)
            if progress:
                progress(len(kept), wanted)
    return kept


def _write_near_miss(complete: Complete, item: Written, cache: Path) -> NearMiss:
    messages = [{"role": "system", "content": NEAR_MISS_PROMPT}]
    for sentence, question in NEAR_MISS_EXAMPLES:
        messages += [{"role": "user", "content": f"Sentence: {sentence}"},
                     {"role": "assistant", "content": f"Question: {question}"}]
    reply = complete(messages + [{"role": "user", "content": f"Sentence: {item.sentence}"}])
    question = usable_near_miss(reply, item)
    judged = complete(judge_messages(question, item.sentence)).strip() if question else ""
    near = NearMiss(item.article, item.sentence, question, judged)
    _append(cache, near)
    return near


def judge_messages(question: str, sentence: str) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": JUDGE_PROMPT},
        {"role": "user", "content": f"Sentence: {sentence}\nQuestion: {question}"},
    ]


def usable_near_miss(reply: str, item: Written) -> str:
    """The question of the reply, or "" unless it is one question of a sensible length, not the
    written question again, and without the written answer in it."""
    found = re.match(r"^\W*question\W*:\s*(?P<question>[^\n]+)", reply.strip(), re.I)
    if not found:
        return ""
    question = found["question"].strip(" \"'*")
    if (
        not _one_question(question)
        or question.lower() == item.question.lower()
        or _states(question, item.answer)
    ):
        return ""
    return question


def written_pairs(
    written: list[Written], articles: list[tuple[str, str]], nlp, seed: int, context: bool
) -> list[Pair]:
    """Each written question with its sentence (a positive) and its negatives. `nlp` (spaCy) finds
    the names and numbers a swapped question changes."""
    rng = random.Random(seed)
    index_of = {name: i for i, (name, _) in enumerate(articles)}
    docs = list(nlp.pipe([item.sentence for item in written]))
    entity_pool = questions.pool_entities(docs, {})
    pairs: list[Pair] = []
    for item, doc in zip(written, docs, strict=True):
        text = articles[index_of[item.article]][1]
        sentences = questions.article_sentences(text)
        other_text, other = questions.other_article(articles, index_of[item.article], rng)
        made = list(_pairs_for(item, doc, sentences, other, entity_pool, rng))
        if context:
            read_as = questions.contexts(text, sentences) | questions.contexts(other_text, other)
            made = [Pair(p.question, read_as.get(p.sentence, p.sentence), p.label, p.kind, p.article) for p in made]
        pairs += made
    return pairs


def _pairs_for(item: Written, doc, sentences: list[str], other_article: list[str], entity_pool, rng):
    yield Pair(item.question, item.sentence, 1, "written", item.article)
    others = [s for s in sentences if s != item.sentence and not _states(s, item.answer)]
    if others:
        yield Pair(item.question, questions.closest(item.question, others), 0, "written_other_sentence", item.article)
    if other_article:
        yield Pair(item.question, questions.closest(item.question, other_article), 0, "written_other_article", item.article)
    # The answer is never in the question, so only the names the question shares with the sentence
    # are swapped.
    swapped = questions.swapped_name(item.question, doc, None, entity_pool, rng)
    if swapped:
        yield Pair(swapped, item.sentence, 0, "written_swapped", item.article)


def _write(complete: Complete, name: str, title: str, sentence: str, cache: Path) -> Written:
    reply = complete([
        {"role": "system", "content": WRITER_PROMPT},
        {"role": "user", "content": f"Article: {title}\nSentence: {sentence}"},
    ])
    written = Written(name, sentence, *usable_question(reply, sentence))
    _append(cache, written)
    return written


def _append(cache: Path, item) -> None:
    cache.parent.mkdir(parents=True, exist_ok=True)
    with cache.open("a", encoding="utf-8") as out:
        out.write(json.dumps(asdict(item)) + "\n")


def usable_question(reply: str, sentence: str) -> tuple[str, str]:
    """(question, answer) from the reply, or ("", "") unless it is one question of a sensible
    length whose answer is a few words the sentence states and the question does not. The answer
    is what proves the question is about this sentence: a model asked for a question often writes
    one about the article's subject that the sentence does not answer."""
    found = _REPLY_RE.match(reply.strip())
    if not found:
        return "", ""
    question = found["question"].strip(" \"'*")
    answer = found["answer"].splitlines()[0].strip(" \"'*.")
    if (
        not _one_question(question)
        or len(answer) < 2
        or len(answer.split()) > MAX_ANSWER_WORDS
        or not _states(sentence, answer)
        or _states(question, answer)
    ):
        return "", ""
    return question, answer


def _one_question(question: str) -> bool:
    """One question of a sensible length."""
    return (
        question.endswith("?")
        and question.count("?") == 1
        and MIN_QUESTION_WORDS <= len(question.split()) <= MAX_QUESTION_WORDS
    )


def _states(text: str, answer: str) -> bool:
    return bool(answer) and re.search(rf"(?<!\w){re.escape(answer)}(?!\w)", text, re.I) is not None


def cache_file(work_dir: Path, writer: str, seed: int, kind: str = "written") -> Path:
    """Where the questions of one kind one writer wrote with one seed and this prompt are kept."""
    prompts = WRITER_PROMPT if kind == "written" else json.dumps(NEAR_MISS_PROMPTS)
    prompt_key = hashlib.sha256(prompts.encode()).hexdigest()[:8]
    return work_dir / f"{kind}-{re.sub(r'[^A-Za-z0-9.-]+', '-', writer)}-{seed}-{prompt_key}.jsonl"


def _read_cache(cache: Path) -> dict[tuple[str, str], Written]:
    return {(w.article, w.sentence): w for w in _read_lines(cache, Written)}


def _read_lines(cache: Path, kind) -> list:
    if not cache.exists():
        return []
    found = []
    for line in cache.read_text(encoding="utf-8").splitlines():
        try:
            found.append(kind(**json.loads(line)))
        except (ValueError, TypeError):
            continue  # a line cut short by a stopped run: written again
    return found


def _title(text: str) -> str:
    return text.strip().split("\n", 1)[0].strip()
