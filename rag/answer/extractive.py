"""The offline answerer: it picks the sentences of the retrieved passages that answer the question.

The sentences come ranked (ranking.py) against what the question asks for (question.py). It
abstains when no passage mentions a key term, when no sentence near the question's terms has the
kind of answer wanted, or when the best evidence is weak. It never writes a word of its own into
a claim: every sentence of the answer is quoted from a passage.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from rag.answer import text as textlib
from rag.answer.citations import REFUSAL, cite
from rag.answer.question import QuestionShape, negated, question_shape
from rag.answer.ranking import Corpus, Sentence, answer_numbers, idf_of, passage_about, weighted_overlap
from rag.answer.retrieve import Passage, Retrieval

MIN_SCORE = 0.42  # below this the best sentence is too weak a match to state as an answer
MIN_SIMILARITY = 0.30  # cosine of the best sentence, whatever its word overlap
EXTRA_SENTENCE_RATIO = 0.8  # a second sentence must score this close to the best one
NEXT_SENTENCE_RATIO = 0.6  # ... or this close, when it is the sentence right after the best one
TYPED_ANSWER_RATIO = 0.7  # how far below the best a sentence with the wanted kind of answer may score
PAIR_POOL = 10  # sentences searched for a pair that answers a two-part question

LONG_SENTENCE_CHARS = 200  # above this, a numeric answer is cut down to its clause
_CLAUSE_BREAK = re.compile(r",\s+(?:and\s+|including\s+)?|;\s+")
MAX_SENTENCES = {"list": 3, "compare": 3}
DEFAULT_MAX_SENTENCES = 2


@dataclass
class Decision:
    """The sentences to answer with, or why not to answer."""

    sentences: list[Sentence]
    abstain_reason: str | None = None
    kind: str = "other"
    hard: bool = False  # refused before any candidate was weighed (nothing in the index to quote)
    hidden_by_filter: bool = False  # ... because the filters hid the articles that mention the question's names
    signals: dict[str, float] = field(default_factory=dict)  # what the confidence model reads
    concerns: list[str] = field(default_factory=list)  # what speaks against the candidate
    confidence: float | None = None

    @property
    def abstained(self) -> bool:
        return self.abstain_reason is not None

    def withhold(self, confidence: float) -> Decision:
        """The same candidate, refused for low confidence, with the first concern as the reason."""
        reason = self.concerns[0] if self.concerns else "the closest passages do not clearly answer it"
        return replace(self, abstain_reason=reason, confidence=confidence)


class ExtractiveAnswerer:
    """Finds the best candidate answer and the signals that say how far to trust it. Only a name,
    acronym or number that no article in the whole index mentions ends the search early: that
    refusal is true of the corpus. Everything softer is left to the confidence model."""

    def decide(
        self, question: str, retrieval: Retrieval, ranked: list[Sentence], corpus: Corpus | None = None
    ) -> Decision:
        shape = question_shape(question)
        if not ranked:
            return _nothing_retrieved(shape, corpus)
        everything = "\n".join(f"{passage_about(p)}\n{p.text}" for p in retrieval.passages)
        absent_here = [t for t in shape.terms if not textlib.mentions(everything, t)]
        refusal, hidden_by_filter = _absence_refusal(absent_here, corpus)
        if refusal:
            return Decision([], refusal, shape.kind, hard=True, hidden_by_filter=hidden_by_filter)
        best, chosen, concerns = self._candidate(shape, ranked)
        if absent_here:
            concerns.insert(0, f"the articles mention {_join([t.text for t in absent_here], 'and')}, "
                            "but the passages that match the question do not")
        chosen = [_focused(_with_list_items(s, retrieval.passages[s.passage]), shape) for s in chosen]
        signals = _signals(shape, retrieval, best, chosen, ranked, absent_here, corpus)
        return Decision(chosen, None, shape.kind, signals=signals, concerns=concerns)

    def _candidate(self, shape: QuestionShape, ranked: list[Sentence]):
        """The best sentence, the sentences to answer with, and what speaks against them."""
        concerns: list[str] = []
        candidates = [s for s in ranked if len(s.missing) <= shape.allowed_missing()]
        if not candidates:
            pair = _covering_pair(ranked, shape) if shape.multi_part else None
            if pair:
                return pair[0], pair, concerns
            concerns.append(f"no passage mentions {_join([t.text for t in shape.terms], 'and')} together")
            candidates = ranked
        if shape.kind == "number":
            # "How many foreign ministers" is answered by "43 foreign ministers", not by any number.
            typed = [s for s in candidates if s.cue >= (1.0 if shape.counts else 0.5)]
            if typed:
                candidates = typed
            else:
                concerns.append("no passage gives the number asked for")
        best = _prefer_typed_answer(candidates)
        if best.score < MIN_SCORE or best.similarity < MIN_SIMILARITY:
            concerns.append("the closest passage is only loosely related to the question")
        return best, self._select(best, ranked, shape), concerns

    def _select(self, best: Sentence, ranked: list[Sentence], shape: QuestionShape) -> list[Sentence]:
        """Add sentences that are nearly as good and bring question words the answer lacks so
        far: the second half of a two-part question, the other article of a comparison. The
        sentence right after the best one may score lower: it often completes it ("Project Vault
        was announced... The EXIM Board approved a loan of USD 10 billion")."""
        chosen = [best]
        limit = MAX_SENTENCES.get(shape.kind, DEFAULT_MAX_SENTENCES)
        covered = shape.stems & set(textlib.content_stems(best.text))
        for candidate in ranked:
            if len(chosen) >= limit or candidate.score < NEXT_SENTENCE_RATIO * best.score:
                break
            follows = candidate.passage == best.passage and 0 <= candidate.start - best.end <= 3
            if candidate is best or (candidate.score < EXTRA_SENTENCE_RATIO * best.score and not follows):
                continue
            adds = (shape.stems & set(textlib.content_stems(candidate.text))) - covered
            listing = shape.kind in ("list", "compare") and candidate.cue >= 1.0
            if adds or listing:
                chosen.append(candidate)
                covered |= adds
        return chosen

    def compose(self, decision: Decision, numbering: dict[int, int]) -> str:
        """The answer text: each chosen sentence, verbatim, followed by its passage's [n]."""
        if decision.abstained:
            return f"{REFUSAL} {decision.abstain_reason[0].upper()}{decision.abstain_reason[1:]}."
        return " ".join(
            f"{_as_claim(s.claim or s.text)} {cite(numbering[s.passage])}" for s in decision.sentences
        )


def _share_named(stems: list[str], sentence: str) -> float:
    if not stems:
        return 1.0
    return len(set(stems) & set(textlib.content_stems(sentence))) / len(set(stems))


def _nothing_retrieved(shape: QuestionShape, corpus: Corpus | None) -> Decision:
    """With filters on, an empty retrieval means the filters let no article through: the index
    itself is not empty (a missing index fails before the answerer is asked)."""
    if corpus is None or not corpus.filtering():
        return Decision([], "no passage was retrieved", shape.kind, hard=True)
    reason = (f"no article within the {corpus.filter_description()} matches the question (a date filter "
              "leaves out undated articles): ask again without the filter")
    return Decision([], reason, shape.kind, hard=True, hidden_by_filter=True)


def _absence_refusal(absent_here: list[textlib.KeyTerm], corpus: Corpus | None) -> tuple[str | None, bool]:
    """ "No article mentions X", said only when it is true of the whole index, or of what the
    filters let through (then the reason says so, and the second value is True)."""
    if not absent_here:
        return None, False
    if corpus is None:
        return f"no article mentions {_join([t.text for t in absent_here])}", False
    nowhere = [t.text for t in absent_here if not corpus.mentions(t, filtered=False)]
    if nowhere:
        suggestions = [s for s in map(corpus.spelled_like, nowhere) if s]
        hint = f" (did you mean {_join(suggestions)}?)" if suggestions else ""
        return f"no article mentions {_join(nowhere)}{hint}", False
    hidden = [t.text for t in absent_here if not corpus.mentions(t, filtered=True)]
    if hidden:
        reason = (
            f"no article within the {corpus.filter_description()} mentions {_join(hidden)}, "
            "though other articles in the index do: ask again without the filter"
        )
        return reason, True
    return None, False


def _signals(
    shape: QuestionShape,
    retrieval: Retrieval,
    best: Sentence,
    chosen: list[Sentence],
    ranked: list[Sentence],
    absent_here: list,
    corpus: Corpus | None,
) -> dict[str, float]:
    """What the confidence model reads about a candidate (rag/answer/confidence.py names each one)."""
    passage = retrieval.passages[best.passage]
    passage_stems = set(textlib.content_stems(f"{passage_about(passage)}\n{passage.text}"))
    idf = corpus.idf(shape.stems) if corpus else idf_of([passage_stems])
    ceiling = max(idf.values(), default=1.0) or 1.0
    missing = shape.stems - passage_stems
    missing_here = shape.stems - set(textlib.content_stems(best.text))
    typed = shape.kind in ("number", "date", "person", "place", "organisation", "definition")
    return {
        "score": best.score,
        "similarity": best.similarity,
        "overlap": best.overlap,
        "answer_overlap": weighted_overlap(
            shape.stems, set(textlib.content_stems(" ".join(s.text for s in chosen))), idf
        ),
        "passage_overlap": weighted_overlap(shape.stems, passage_stems, idf),
        "rarest_missing": max((idf.get(w, ceiling) for w in missing), default=0.0) / ceiling,
        "rarest_missing_sentence": max((idf.get(w, ceiling) for w in missing_here), default=0.0) / ceiling,
        "key_coverage": best.key_coverage,
        "cue": best.cue,
        "asked_for_named": _share_named(shape.asked_for, best.text),
        "negation_mismatch": float(shape.negated != negated(best.text)),
        "typed": float(typed),
        "typed_without_cue": float(typed and best.cue == 0),
        "top_similarity": max(p.similarity for p in retrieval.passages),
        "absent_here": float(bool(absent_here)),
        "apart": float(not any(len(s.missing) <= shape.allowed_missing() for s in ranked)),
    }


def _as_claim(sentence: str) -> str:
    """A quoted sentence as an answer line: list lines joined with semicolons, one full stop."""
    lines = [line.strip().lstrip("-•* ").strip() for line in sentence.strip().split("\n")]
    claim = lines[0] + " " + "; ".join(lines[1:]) if len(lines) > 1 else lines[0]
    return claim if claim[-1:] in ".!?\"'”’…" else claim + "."


def _covering_pair(ranked: list[Sentence], shape: QuestionShape) -> list[Sentence] | None:
    """Two strong sentences that together mention every key term of a two-part question."""
    strong = [s for s in ranked[:PAIR_POOL] if s.score >= MIN_SCORE and s.similarity >= MIN_SIMILARITY]
    for first in strong:
        for second in strong:
            if (
                second is not first
                and len(set(first.missing) & set(second.missing)) <= shape.allowed_missing()
            ):
                return [first, second]
    return None


def _prefer_typed_answer(candidates: list[Sentence]) -> Sentence:
    """A sentence with the kind of answer asked for (the number, the date, the place) beats a
    slightly closer one without it: "54 countries" does not answer "how many foreign ministers"."""
    best = candidates[0]
    strongest_cue = max(s.cue for s in candidates)
    if best.cue >= strongest_cue:
        return best
    typed = [
        s
        for s in candidates
        if s.cue == strongest_cue
        and s.score >= TYPED_ANSWER_RATIO * best.score
        and s.similarity >= MIN_SIMILARITY
    ]
    return typed[0] if typed else best


def _focused(sentence: Sentence, shape: QuestionShape) -> Sentence:
    """A long sentence listing several amounts answers "how much went to Brazil?" with its opening
    clause and the one clause about Brazil, both verbatim, rather than the whole list."""
    if shape.kind != "number" or len(sentence.text) < LONG_SENTENCE_CHARS:
        return sentence
    lead, *clauses = _CLAUSE_BREAK.split(sentence.text)
    # The clause must carry what the question names that the sentence's opening does not.
    named_here = [
        t for t in shape.terms if textlib.mentions(sentence.text, t) and not textlib.mentions(lead, t)
    ]
    if not named_here:
        return sentence
    wanted = [
        clause
        for clause in clauses
        if answer_numbers(clause, shape.numbers) and all(textlib.mentions(clause, t) for t in named_here)
    ]
    if len(wanted) != 1:
        return sentence
    opening = "" if answer_numbers(lead, shape.numbers) else lead + " "
    return replace(sentence, claim=f"{opening}… {wanted[0].rstrip('.')} …")


def _with_list_items(sentence: Sentence, passage: Passage) -> Sentence:
    """A sentence that introduces a list ("including:") is nothing without the list after it."""
    if not sentence.text.rstrip().endswith(":"):
        return sentence
    end = sentence.end
    for line in passage.text[sentence.end :].split("\n")[1:]:
        if not line.lstrip().startswith(("-", "•", "*")):
            break
        end += len(line) + 1
    return replace(sentence, end=end, text=passage.text[sentence.start : end])


def _join(items: list[str], word: str = "or") -> str:
    items = list(dict.fromkeys(items))
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + f" {word} " + items[-1]
