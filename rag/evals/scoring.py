"""Scoring `rag eval`'s predictions: one prediction against its question, then a run's metrics.

The functions are small and pure where they can be, so the tests can score hand-made predictions.

Definitions (repeated in the report):
- answer accuracy: answerable questions answered correctly / all answerable questions. Correct means
  every regex group matches the answer (an abstention is wrong).
- answer precision (LitQA2): answerable questions answered correctly / answerable questions answered
  (not abstained). Accuracy and precision differ by how often the system abstains.
- abstention accuracy: questions that should be declined and were / all such questions; it is the
  recall of abstention. Abstention precision: abstentions on such questions / all abstentions.
- recall@k: the fraction of a question's gold sources among the sources of the top k passages;
  hit@k: at least one gold source in the top k; MRR: 1 / rank of the first gold passage in the top
  SEARCH_K (0 if none).
- citation precision: citations of a gold source / all citations, over answered answerable
  questions; citation hit rate: those answers citing at least one gold source. Quote hit rate: right
  answers whose highlighted quotes alone hold the answer / all right answers with citations.
- fabricated numbers: answers with a number that no cited passage contains.
- lexical support: word overlap of each answer sentence with the quote it cites, and its numbers
  present in the cited passage. It is lexical support, not entailment.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import PurePosixPath

from rag.answer import text as textlib
from rag.answer.citations import CITATION_RE, strip_citations
from rag.evals import squad
from rag.evals.dataset import Question

RECALL_KS = (1, 3, 5)

SEARCH_K = 10  # passages searched for the retrieval metrics; MRR looks this deep

SUPPORT_MIN_OVERLAP = 0.5  # a claim is lexically supported when half its content words are in its quote

# "one of the ..." is a pronoun, not the count 1.
_PRONOUN_ONE = re.compile(r"\bone(?=\s+of\b)", re.IGNORECASE)

_CLAIM_SPLIT = re.compile(r"(?<=\])\s+(?=[^\s\[])")


@dataclass
class ClaimSupport:
    """Lexical support, not entailment: how much of a claim its cited quote repeats."""

    claim: str
    cited: list[int]
    overlap: float  # content stems of the claim found in the quotes it cites, 0..1
    numbers_ok: bool  # every number of the claim is in a passage it cites
    supported: bool


@dataclass
class Scores:
    id: str
    type: str
    answerable: bool
    should_abstain: bool
    abstained: bool
    correct: bool | None  # None: not scored
    total_ms: float | None
    groups_matched: list[bool] = field(default_factory=list)
    has_gold: bool = False  # the question lists gold sources (citations are scored against them)
    retrieval_scored: bool = False
    ranked_sources: list[str] = field(default_factory=list)
    recall: dict[int, float] = field(default_factory=dict)
    hit: dict[int, bool] = field(default_factory=dict)
    reciprocal_rank: float = 0.0
    context_recall: float | None = None  # gold sources among the passages the answerer was given
    citations: int = 0
    gold_citations: int = 0
    fabricated_numbers: list[str] = field(default_factory=list)
    claims: list[ClaimSupport] = field(default_factory=list)
    error: str | None = None
    first_token_ms: float | None = None
    fallback: bool = False  # an LLM answer failed validation and the extractive one was shown
    confidence: float | None = None  # the model's chance that the best candidate is right
    candidate_right: bool | None = None  # that candidate, shown or withheld, would have been right
    shown_confidence: float | None = None  # the confidence shown with the answer or refusal
    quote_holds_answer: bool | None = None  # for a right answer: its citations' quotes alone are right

    @property
    def answered(self) -> bool:
        return not self.abstained and self.error is None

    def to_dict(self) -> dict:
        data = asdict(self)
        data["recall"] = {f"@{k}": v for k, v in self.recall.items()}
        data["hit"] = {f"@{k}": v for k, v in self.hit.items()}
        return data


def group_matches(groups: list[list[str]], answer: str) -> list[bool]:
    """For each group, whether one of its alternatives matches the answer, searched case-insensitively
    both with the [n] markers stripped and in the raw text."""
    texts = (strip_citations(answer), answer)
    return [any(re.search(alt, text, re.IGNORECASE) for alt in group for text in texts) for group in groups]


def is_correct(question: Question, answer: str, abstained: bool) -> tuple[bool | None, list[bool]]:
    if question.answerable:
        matched = group_matches(question.answers, answer)
        if question.spans:
            matched.append(squad.contains_span(strip_citations(answer), question.spans))
        return (not abstained and all(matched)), matched
    if question.abstain:
        return abstained, []
    return None, []


def same_source(a: str, b: str) -> bool:
    """Sources are compared by their path below the corpus folder, so that a corpus copied under
    another folder still scores, while business/001.txt and sport/001.txt stay apart."""
    a_parts = PurePosixPath(a.replace("\\", "/")).parts
    b_parts = PurePosixPath(b.replace("\\", "/")).parts
    depth = max(1, min(len(a_parts), len(b_parts)) - 1)
    return a_parts[-depth:] == b_parts[-depth:]


def is_gold(source: str, gold: Iterable[str]) -> bool:
    return any(same_source(source, g) for g in gold)


def retrieval_scores(gold: list[str], ranked_sources: list[str], ks: Iterable[int] = RECALL_KS):
    """(recall@k, hit@k, reciprocal rank) of a ranked list of passage sources against gold sources."""
    recall, hit = {}, {}
    for k in ks:
        top = ranked_sources[:k]
        found = [g for g in gold if any(same_source(g, s) for s in top)]
        recall[k] = len(found) / len(gold) if gold else 0.0
        hit[k] = bool(found)
    rank = next((i for i, s in enumerate(ranked_sources, 1) if is_gold(s, gold)), None)
    return recall, hit, (1.0 / rank if rank else 0.0)


def format_number(value: float) -> str:
    return f"{int(value):,}" if value == int(value) else f"{value:,.6g}"


def unsupported_numbers(answer: str, cited_texts: list[str]) -> list[str]:
    """Numbers of the answer (markers stripped) that are in none of the cited passages' text."""
    available: set[float] = set()
    for text in cited_texts:
        available |= textlib.numbers(text)
    stated = textlib.numbers(_PRONOUN_ONE.sub("", strip_citations(answer)))
    return [format_number(v) for v in sorted(stated - available)]


def split_claims(answer: str) -> list[str]:
    """Answer sentences, each with the markers that follow it."""
    return [c.strip() for c in _CLAIM_SPLIT.split(answer) if c.strip()]


def claim_support(answer: str, citations: list[dict]) -> list[ClaimSupport]:
    by_n = {c.get("n"): c for c in citations}
    supports = []
    for claim in split_claims(answer):
        cited = [int(n) for n in CITATION_RE.findall(claim)]
        bare = strip_citations(claim)
        stems = set(textlib.content_stems(bare))
        known = [by_n[n] for n in cited if n in by_n]
        overlap, passage_numbers = 0.0, set()
        for citation in known:
            quote = citation.get("quote") or citation.get("text") or ""
            if stems:
                overlap = max(overlap, len(stems & set(textlib.content_stems(quote))) / len(stems))
            passage_numbers |= textlib.numbers(citation.get("text") or quote)
        numbers_ok = textlib.numbers(bare) <= passage_numbers
        supported = bool(known) and len(known) == len(cited) and overlap >= SUPPORT_MIN_OVERLAP and numbers_ok
        supports.append(ClaimSupport(bare, cited, round(overlap, 3), numbers_ok, supported))
    return supports


def score_prediction(
    question: Question,
    prediction: dict,
    ranked_sources: list[str] | None = None,
    context_sources: list[str] | None = None,
) -> Scores:
    """Score one `ask --json` object. `ranked_sources` are the sources of the searched passages, best
    first; `context_sources` those of the passages the answer was written from. A prediction may
    carry `candidate`: the extractive answer's best candidate and its confidence, shown or not."""
    answer = prediction.get("answer") or ""
    abstained = bool(prediction.get("abstained"))
    error = prediction.get("error")
    citations = [] if abstained else list(prediction.get("citations") or [])
    correct, matched = is_correct(question, answer, abstained or error is not None)
    if question.answerable and error:
        correct = False
    scores = Scores(
        id=question.id,
        type=question.type,
        answerable=question.answerable,
        should_abstain=question.abstain,
        abstained=abstained,
        correct=correct,
        total_ms=(prediction.get("timings") or {}).get("total_ms"),
        first_token_ms=(prediction.get("timings") or {}).get("first_token_ms"),
        fallback=bool(prediction.get("fallback")),
        shown_confidence=prediction.get("confidence"),
        groups_matched=matched,
        has_gold=bool(question.gold_sources),
        error=error,
    )
    if question.retrieval_scored and ranked_sources is not None:
        scores.retrieval_scored = True
        scores.ranked_sources = list(ranked_sources)
        scores.recall, scores.hit, scores.reciprocal_rank = retrieval_scores(
            question.gold_sources, ranked_sources
        )
        if context_sources is not None:
            found = [g for g in question.gold_sources if is_gold(g, context_sources)]
            scores.context_recall = len(found) / len(question.gold_sources)
    candidate = prediction.get("candidate")
    if candidate and question.scored:
        scores.confidence = candidate["confidence"]
        scores.candidate_right = bool(is_correct(question, candidate["text"], False)[0])
    if scores.answered:
        scores.citations = len(citations)
        scores.gold_citations = sum(is_gold(c.get("source", ""), question.gold_sources) for c in citations)
        scores.fabricated_numbers = unsupported_numbers(answer, [c.get("text") or "" for c in citations])
        scores.claims = claim_support(answer, citations)
        if correct and citations:
            quotes = " ".join(c.get("quote") or "" for c in citations)
            scores.quote_holds_answer = bool(is_correct(question, quotes, False)[0])
    return scores


def percentile(values: list[float], q: float) -> float | None:
    """The q-th percentile with linear interpolation between closest ranks (numpy's default)."""
    ordered = sorted(v for v in values if v is not None)
    if not ordered:
        return None
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _ratio(numerator: float, denominator: float) -> float | None:
    return round(numerator / denominator, 4) if denominator else None


def _mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 4) if values else None


def aggregate(scores: list[Scores]) -> dict:
    """The metrics of a set of scored predictions (see the module docstring for the definitions)."""
    answerable = [s for s in scores if s.answerable]
    answered = [s for s in answerable if s.answered]
    correct = [s for s in answerable if s.correct]
    declinable = [s for s in scores if s.should_abstain]
    abstentions = [s for s in scores if s.abstained and (s.answerable or s.should_abstain)]
    retrieval = [s for s in scores if s.retrieval_scored]
    gold_cited = [s for s in answered if s.has_gold]
    quoted = [s for s in answered if s.quote_holds_answer is not None]
    all_answered = [s for s in scores if s.answered]
    claims = [c for s in all_answered for c in s.claims]
    latencies = [s.total_ms for s in scores if s.total_ms is not None]
    first_tokens = [s.first_token_ms for s in scores if s.first_token_ms is not None]
    scored = answerable + declinable
    answered_scored = [s for s in scored if s.answered]
    metrics = {
        "questions": len(scores),
        "answerable": len(answerable),
        "should_abstain": len(declinable),
        "unscored": len(scores) - len(scored),
        "errors": sum(s.error is not None for s in scores),
        "answer_accuracy": _ratio(len(correct), len(answerable)),
        "answer_precision": _ratio(len(correct), len(answered)),
        "answer_rate": _ratio(len(answered), len(answerable)),
        "answered_precision": _ratio(sum(bool(s.correct) for s in answered_scored), len(answered_scored)),
        "coverage": _ratio(len(answered_scored), len(scored)),
        "coverage_at_90": coverage_at_precision(scored, 0.90),
        "abstention_accuracy": _ratio(sum(s.abstained for s in declinable), len(declinable)),
        "abstention_precision": _ratio(sum(s.should_abstain for s in abstentions), len(abstentions)),
        "abstention_recall": _ratio(sum(s.abstained for s in declinable), len(declinable)),
        "overall_accuracy": _ratio(sum(bool(s.correct) for s in scored), len(scored)),
        "retrieval_questions": len(retrieval),
        **{f"recall@{k}": _mean([s.recall[k] for s in retrieval]) for k in RECALL_KS},
        **{f"hit@{k}": _mean([float(s.hit[k]) for s in retrieval]) for k in RECALL_KS},
        "mrr": _mean([s.reciprocal_rank for s in retrieval]),
        "context_recall": _mean([s.context_recall for s in retrieval if s.context_recall is not None]),
        "citations": sum(s.citations for s in gold_cited),
        "citation_precision": _ratio(
            sum(s.gold_citations for s in gold_cited), sum(s.citations for s in gold_cited)
        ),
        "citation_hit_rate": _ratio(sum(s.gold_citations > 0 for s in gold_cited), len(gold_cited)),
        "quote_hit_rate": _ratio(sum(bool(s.quote_holds_answer) for s in quoted), len(quoted)),
        "answers_without_citation": sum(s.citations == 0 for s in all_answered),
        "fallback_answers": sum(s.fallback for s in all_answered),
        "fallback_rate": _ratio(sum(s.fallback for s in all_answered), len(all_answered)),
        "fabricated_number_answers": sum(bool(s.fabricated_numbers) for s in all_answered),
        "fabricated_number_rate": _ratio(
            sum(bool(s.fabricated_numbers) for s in all_answered), len(all_answered)
        ),
        "lexical_support": {
            "note": "lexical support, not entailment",
            "claims": len(claims),
            "supported": _ratio(sum(c.supported for c in claims), len(claims)),
            "mean_overlap": _mean([c.overlap for c in claims]),
            "numbers_in_cited_passage": _ratio(sum(c.numbers_ok for c in claims), len(claims)),
        },
        "risk_coverage": risk_coverage(scored),
        "calibration": calibration(scored),
        "latency_ms": {
            "p50": _round(percentile(latencies, 50)),
            "p95": _round(percentile(latencies, 95)),
            "mean": _round(sum(latencies) / len(latencies)) if latencies else None,
            "max": _round(max(latencies)) if latencies else None,
        },
        "first_token_ms": {
            "p50": _round(percentile(first_tokens, 50)),
            "p95": _round(percentile(first_tokens, 95)),
        },
    }
    return metrics


def coverage_at_precision(scored: list[Scores], target: float) -> float | None:
    """The largest share of the scored questions answered at `target` precision or better, when only
    the answers shown with the highest confidence are kept (the others withheld)."""
    answers = sorted((s for s in scored if s.answered and s.shown_confidence is not None),
                     key=lambda s: -s.shown_confidence)
    if not scored:
        return None
    best, right = 0, 0
    for kept, answer in enumerate(answers, 1):
        right += bool(answer.correct)
        tied_next = kept < len(answers) and answers[kept].shown_confidence == answer.shown_confidence
        if right / kept >= target and not tied_next:
            best = kept
    return round(best / len(scored), 4)


def risk_coverage(scored: list[Scores], points: int = 40) -> list[list[float]]:
    """[coverage, precision, confidence] as the confidence cut falls: answering only the candidates
    at or above each confidence, what share of the questions is answered, and how many of those
    answers are right. Questions refused before any candidate (nothing in the index) never count
    as answered."""
    ranked = sorted((s for s in scored if s.confidence is not None), key=lambda s: -s.confidence)
    if not ranked or not scored:
        return []
    step = max(1, len(ranked) // points)
    curve, right = [], 0
    for kept, score in enumerate(ranked, 1):
        right += bool(score.candidate_right)
        if kept % step == 0 or kept == len(ranked):
            curve.append([round(kept / len(scored), 4), round(right / kept, 4), round(score.confidence, 4)])
    return curve


def calibration(scored: list[Scores], edges=(0.0, 0.2, 0.4, 0.6, 0.8, 1.0)) -> list[dict]:
    """Whether a confidence means the chance of being right: the candidates grouped by confidence,
    each group's mean confidence beside the share that was right."""
    groups = []
    for low, high in zip(edges, edges[1:], strict=False):
        top = high + (high == edges[-1])  # the last group holds a confidence of exactly 1 too
        members = [s for s in scored if s.confidence is not None and low <= s.confidence < top]
        if members:
            groups.append(
                {
                    "from": low,
                    "to": high,
                    "n": len(members),
                    "mean_confidence": round(sum(s.confidence for s in members) / len(members), 3),
                    "right": round(sum(bool(s.candidate_right) for s in members) / len(members), 3),
                }
            )
    return groups


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def metrics_by_type(scores: list[Scores]) -> dict[str, dict]:
    types = sorted({s.type for s in scores}, key=type_order)
    return {t: aggregate([s for s in scores if s.type == t]) for t in types}


_TYPE_ORDER = (
    "factoid",
    "numeric",
    "list",
    "paraphrase",
    "cross_article",
    "temporal",
    "boilerplate",
    "unanswerable",
)


def type_order(name: str) -> tuple[int, str]:
    return (_TYPE_ORDER.index(name) if name in _TYPE_ORDER else len(_TYPE_ORDER), name)


DEFINITIONS = {
    "answer_accuracy": "answerable questions answered correctly / all answerable questions "
    "(every regex group must match; an abstention counts as wrong)",
    "answer_precision": "LitQA2 precision: answerable questions answered correctly / answerable questions "
    "answered (not abstained)",
    "answer_rate": "answerable questions answered (not abstained) / all answerable questions",
    "answered_precision": "answers that were right / all answers given to scored questions (an answer to an "
    "unanswerable question is wrong): the precision of what a user is shown",
    "coverage": "scored questions answered (not abstained) / all scored questions",
    "coverage_at_90": "the largest share of scored questions answered at precision 0.90 or better, keeping "
    "only the answers shown with the highest confidence",
    "risk_coverage": "[coverage, precision, confidence] points: answering only the candidates whose "
    "confidence is at least the third value",
    "calibration": "candidates grouped by confidence: the group's mean confidence beside the share right",
    "abstention_accuracy": "questions marked abstain:true that the system declined / all of them "
    "(= abstention recall)",
    "abstention_precision": "abstentions on abstain:true questions / all abstentions on scored questions",
    "overall_accuracy": "answerable questions answered correctly plus abstain:true questions declined, "
    "over both",
    "recall@k": f"fraction of a question's gold sources among the top-k passages of Assistant.search "
    f"(retrieval alone, k searched = {SEARCH_K}), averaged over questions with gold_sources",
    "hit@k": "questions with at least one gold source in the top k (either of two listed sources suffices)",
    "mrr": f"mean of 1/rank of the first gold passage within the top {SEARCH_K}, 0 when none",
    "context_recall": "fraction of gold sources among the top_k passages the answer was written from",
    "citation_precision": "citations whose source is a gold source / all citations, over answered answerable "
    "questions with gold_sources",
    "citation_hit_rate": "answered answerable questions with at least one citation of a gold source / all of "
    "them",
    "quote_hit_rate": "right answers whose citations' quotes (the sentences highlighted) alone hold the "
    "answer, scored as the answer is / all right answers with citations",
    "fabricated_number_answers": "answered questions whose answer holds a number (rag.answer.text.numbers, "
    "[n] markers stripped) that is in none of its cited passages' text",
    "lexical_support": f"lexical support, not entailment: per answer sentence, the share of its content "
    f"words found in the quote it cites; supported when >= {SUPPORT_MIN_OVERLAP} and all its "
    f"numbers are in a cited passage",
    "latency_ms": "percentiles of the answer's timings.total_ms (retrieval + answering), over all questions",
    "first_token_ms": "percentiles of timings.first_token_ms: from the question to the answer's first "
    "streamed piece (for an LLM, after the answerability check)",
    "fallback_rate": "answers given whose LLM answer failed validation and was replaced by the extractive "
    "one / all answers given",
}
