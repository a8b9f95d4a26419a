"""`rag eval`: answer a question set through the public API and score the answers.

One run asks every question with `Assistant.stream` (the same path as `rag ask`), searches it again
with `Assistant.search` for the retrieval metrics (no answerer involved), scores each prediction,
and writes `predictions.jsonl`, `metrics.json`, `report.md` and `metrics.png` (see DESIGN.md).
`--compare` repeats the run for named presets and writes `compare.md`, `compare.json` and
`compare.png` (rendered by rag/evals/report.py). The functions are small and pure where they can be, so the tests can score
hand-made predictions.

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
  questions; citation hit rate: those answers citing at least one gold source.
- fabricated numbers: answers with a number that no cited passage contains.
- lexical support: word overlap of each answer sentence with the quote it cites, and its numbers
  present in the cited passage. It is lexical support, not entailment.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

from rag.answer import text as textlib
from rag.answer.citations import CITATION_RE, strip_citations
from rag.evals import squad
from rag.settings import INDEX_SHAPING_FIELDS, PRESETS, Settings, preset

RECALL_KS = (1, 3, 5)
SEARCH_K = 10  # passages searched for the retrieval metrics; MRR looks this deep
SUPPORT_MIN_OVERLAP = 0.5  # a claim is lexically supported when half its content words are in its quote
DEFAULT_COMPARE = ("hybrid", "dense", "bm25", "k3", "k8", "chunk400", "chunk1000", "openai", "llamacpp")
UNTYPED = "untyped"
GOLD_FIELDS = ("answers", "gold_sources", "abstain")
_CLAIM_SPLIT = re.compile(r"(?<=\])\s+(?=[^\s\[])")


class DatasetError(RuntimeError):
    """A dataset file that cannot be read; the message names the file and line."""


# -- the dataset -------------------------------------------------------------------------------


@dataclass
class Question:
    id: str
    question: str
    type: str = UNTYPED
    answers: list[list[str]] = field(default_factory=list)
    gold_sources: list[str] = field(default_factory=list)
    abstain: bool = False
    spans: list[str] = field(default_factory=list)  # SQuAD-style: the answer must contain one of these

    @property
    def answerable(self) -> bool:
        """Scored on its answer text."""
        return bool(self.answers or self.spans)

    @property
    def scored(self) -> bool:
        return self.answerable or self.abstain

    @property
    def retrieval_scored(self) -> bool:
        return bool(self.gold_sources)


def load_dataset(path: Path, limit: int | None = None) -> list[Question]:
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise DatasetError(f"cannot read the dataset {path}: {exc.strerror or exc}") from exc
    questions: list[Question] = []
    seen: set[str] = set()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            question = parse_question(json.loads(line))
        except (ValueError, TypeError, re.error) as exc:
            raise DatasetError(f"{path} line {number}: {exc}") from exc
        if question.id in seen:
            raise DatasetError(f"{path} line {number}: duplicate id {question.id!r}")
        seen.add(question.id)
        questions.append(question)
    if not questions:
        raise DatasetError(f"{path} holds no questions")
    return questions[:limit] if limit else questions


def parse_question(data: dict) -> Question:
    if not isinstance(data, dict):
        raise ValueError("each line must be a JSON object")
    for name in ("id", "question"):
        if not isinstance(data.get(name), str) or not data[name].strip():
            raise ValueError(f"{name!r} is required and must be a non-empty string")
    answers = [[group] if isinstance(group, str) else list(group) for group in data.get("answers") or []]
    for group in answers:
        if not group or not all(isinstance(alt, str) for alt in group):
            raise ValueError("'answers' must be a list of non-empty lists of regex strings")
        for alternative in group:
            re.compile(alternative)
    spans = data.get("spans") or []
    if not all(isinstance(span, str) for span in spans):
        raise ValueError("'spans' must be a list of strings")
    abstain = bool(data.get("abstain", False))
    if abstain and (answers or spans):
        raise ValueError("a question with 'abstain': true cannot also list answers")
    return Question(
        id=data["id"],
        question=data["question"],
        type=str(data.get("type") or UNTYPED),
        answers=answers,
        gold_sources=[str(s) for s in data.get("gold_sources") or []],
        abstain=abstain,
        spans=spans,
    )


# -- scoring one prediction --------------------------------------------------------------------


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
    return [format_number(v) for v in sorted(textlib.numbers(strip_citations(answer)) - available)]


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
    return scores


# -- aggregating -------------------------------------------------------------------------------


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


# -- running -----------------------------------------------------------------------------------


@dataclass
class RunResult:
    label: str
    settings: Settings
    questions: list[Question]
    predictions: list[dict]
    scores: list[Scores]
    wall_s: float
    metrics: dict = field(default_factory=dict)


def predict(assistant, question: Question) -> tuple[dict, list[str] | None, list[str] | None]:
    """Ask one question. Returns the prediction (`ask --json` object, or an error record), the
    sources of the searched passages (retrieval alone, no answerer) and those behind the answer."""
    from rag.assistant import Final, Sources
    from rag.index.manifest import IndexUnusable

    context: list[str] | None = None
    prediction: dict | None = None
    try:
        for event in assistant.stream(question.question):
            if isinstance(event, Sources):
                context = [p.source for p in event.passages]
            elif isinstance(event, Final):
                prediction = event.answer.to_dict()
                prediction["candidate"] = candidate_record(event.decision)
        if prediction is None:
            raise RuntimeError("the answer stream ended without an answer")
    except IndexUnusable:
        raise  # no question can be answered: scoring them all as wrong would hide the cause
    except Exception as exc:  # one bad question must not end the run; it is scored as wrong
        prediction = {
            "question": question.question,
            "answer": "",
            "abstained": False,
            "citations": [],
            "timings": {},
            "error": f"{exc.__class__.__name__}: {exc}",
        }
    ranked = None
    if question.retrieval_scored:
        try:
            ranked = [p.source for p in assistant.search(question.question, k=SEARCH_K).passages]
        except Exception:  # the answer already recorded the error, if any
            ranked = []
    return prediction, ranked, context


def candidate_record(decision) -> dict | None:
    """The extractive candidate behind an answer, shown or withheld, with its confidence and the
    signals it was computed from (what `rag calibrate` fits on)."""
    if decision is None or decision.hard or not decision.sentences:
        return None
    return {
        "text": " ".join(s.claim or s.text for s in decision.sentences),
        "confidence": round(decision.confidence, 4),
        "signals": {k: round(v, 4) for k, v in decision.signals.items()},
    }


def evaluate(
    settings: Settings, questions: list[Question], label: str = "default", assistant=None
) -> RunResult:
    """Ask every question with one configuration and score the answers."""
    from tqdm import tqdm

    from rag.assistant import Assistant

    assistant = assistant or Assistant.from_settings(settings)
    assistant.retriever.refresh()  # a missing index fails here, once, not on every question
    started = time.perf_counter()
    predictions, scores = [], []
    bar = tqdm(
        questions, desc=f"eval {label}", unit="q", file=sys.stderr, dynamic_ncols=True, mininterval=0.5
    )
    for question in bar:
        prediction, ranked, context = predict(assistant, question)
        score = score_prediction(question, prediction, ranked, context)
        prediction = {
            "id": question.id,
            "type": question.type,
            "correct": score.correct,
            **prediction,
            "eval": score.to_dict(),
        }
        predictions.append(prediction)
        scores.append(score)
        graded = [s.correct for s in scores if s.correct is not None]
        if graded:
            bar.set_postfix(correct=f"{sum(graded)}/{len(graded)}", refresh=False)
    bar.close()
    result = RunResult(label, settings, questions, predictions, scores, time.perf_counter() - started)
    result.metrics = build_metrics(result)
    return result


def build_metrics(result: RunResult, dataset: Path | None = None) -> dict:
    return {
        "label": result.label,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "dataset": str(dataset) if dataset else None,
        "settings": settings_summary(result.settings),
        "code_version": _git_version(),
        "wall_s": round(result.wall_s, 1),
        "overall": aggregate(result.scores),
        "by_type": metrics_by_type(result.scores),
        "definitions": DEFINITIONS,
    }


DEFINITIONS = {
    "answer_accuracy": "answerable questions answered correctly / all answerable questions "
    "(every regex group must match; an abstention counts as wrong)",
    "answer_precision": "LitQA2 precision: answerable questions answered correctly / answerable questions "
    "answered (not abstained)",
    "answer_rate": "answerable questions answered (not abstained) / all answerable questions",
    "answered_precision": "answers that were right / all answers given to scored questions (an answer to an "
    "unanswerable question is wrong): the precision of what a user is shown",
    "coverage": "scored questions answered (not abstained) / all scored questions",
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


def settings_summary(settings: Settings) -> dict:
    summary = {
        "corpus_dir": str(settings.corpus_dir),
        "index_dir": str(settings.index_dir),
        "retrieval": settings.retrieval,
        "top_k": settings.top_k,
        "chunk_chars": settings.chunk_chars,
        "chunk_overlap_sentences": settings.chunk_overlap_sentences,
        "embed_model": settings.embed_model or "bundled all-MiniLM-L6-v2",
        "llm": settings.llm,
    }
    if settings.chroma_url:
        summary["chroma_url"] = settings.chroma_url
    if settings.llm != "extractive":
        summary["llm_check_answerable"] = settings.llm_check_answerable
    if settings.llm == "openai":
        summary["openai_model"] = settings.openai_model
    if settings.llm == "llamacpp":
        summary["gguf_path"] = str(settings.gguf_path)
    return summary


def _git_version() -> str | None:
    root = Path(__file__).resolve().parents[2]
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{head}{' (with uncommitted changes)' if dirty else ''}"


# -- writing -----------------------------------------------------------------------------------


def write_predictions(path: Path, predictions: list[dict]) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        for prediction in predictions:
            handle.write(json.dumps(prediction, ensure_ascii=False) + "\n")


def read_predictions(run: Path) -> list[dict]:
    """The predictions a run folder's predictions.jsonl holds, as `write_run` wrote them."""
    lines = (Path(run) / "predictions.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def write_json(path: Path, data) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def compact_prediction(prediction: dict) -> dict:
    """A prediction without the passages' whole text: the citations keep source, chunk and quote,
    the scores keep the top sources and only the claims that lack lexical support."""
    kept = ("n", "source", "chunk_id", "quote", "score")
    compact = {k: v for k, v in prediction.items() if k not in ("citations", "nearest", "eval")}
    compact["citations"] = [{k: c.get(k) for k in kept} for c in prediction.get("citations") or []]
    compact["nearest"] = [
        {k: c.get(k) for k in ("source", "chunk_id", "score")} for c in prediction.get("nearest") or []
    ]
    if "eval" in prediction:
        scores = dict(prediction["eval"])
        scores["ranked_sources"] = scores.get("ranked_sources", [])[: max(RECALL_KS)]
        scores["claims"] = [c for c in scores.get("claims", []) if not c["supported"]]
        compact["eval"] = scores
    return compact


def write_run(
    out: Path, result: RunResult, dataset: Path | None = None, plot: bool = True, compact: bool = False
) -> None:
    """`compact` drops the passages' text from predictions.jsonl (used for the --compare presets)."""
    from rag.evals.report import plot_metrics, render_report

    out.mkdir(parents=True, exist_ok=True)
    result.metrics["dataset"] = str(dataset) if dataset else result.metrics.get("dataset")
    predictions = [compact_prediction(p) for p in result.predictions] if compact else result.predictions
    write_predictions(out / "predictions.jsonl", predictions)
    write_json(out / "metrics.json", result.metrics)
    if plot:
        plot_metrics(result.metrics, out / "metrics.png")
    (out / "report.md").write_text(
        render_report(result, plot="metrics.png" if plot else None), encoding="utf-8"
    )


# -- comparing presets -------------------------------------------------------------------------


@dataclass
class PresetPlan:
    name: str
    settings: Settings | None
    skipped: str | None = None  # why it was not run
    needs_index: bool = False


def plan_presets(names: list[str], base: Settings, out: Path) -> list[PresetPlan]:
    plans, seen = [], set()
    for name in names:
        if name in seen:
            continue
        seen.add(name)
        if name not in PRESETS:
            plans.append(PresetPlan(name, None, f"unknown preset; choose from {', '.join(PRESETS)}"))
            continue
        settings = preset(name, base)
        reason = backend_unavailable(settings)
        if reason:
            plans.append(PresetPlan(name, None, reason))
            continue
        needs_index = any(getattr(settings, f) != getattr(base, f) for f in INDEX_SHAPING_FIELDS)
        if needs_index:
            overrides = {"index_dir": out / "indexes" / name, "chroma_url": None}
            settings = settings.replaced(**overrides)
        plans.append(PresetPlan(name, settings, None, needs_index))
    return plans


def backend_unavailable(settings: Settings) -> str | None:
    """Why this configuration's answer backend cannot run here, or None."""
    import importlib.util

    if settings.llm in ("extractive", "auto"):
        return None
    if settings.llm == "openai" and not (settings.openai_base_url and settings.openai_model):
        return "not configured: set RAG_OPENAI_BASE_URL and RAG_OPENAI_MODEL (or the flags)"
    if settings.llm == "llamacpp":
        if not settings.gguf_path:
            return "not configured: set RAG_GGUF_PATH (or --gguf-path) to a local GGUF model"
        if not Path(settings.gguf_path).exists():
            return f"RAG_GGUF_PATH {settings.gguf_path} does not exist"
        if importlib.util.find_spec("llama_cpp") is None:
            return "llama-cpp-python is not installed (pip install '.[llamacpp]')"
    if importlib.util.find_spec("rag.answer.llm") is None:
        return "the LLM backends (rag.answer.llm) are not in this checkout"
    return None


def build_index(settings: Settings, show_progress: bool = False) -> None:
    """Bring an eval's own index (a cache under evals/ or the eval's output folder) up to date."""
    from rag.index.ingestor import Ingestor

    settings.index_dir.mkdir(parents=True, exist_ok=True)
    ignore = settings.index_dir.parent / ".gitignore"
    if not ignore.exists():
        ignore.write_text("# indexes built by rag eval: a cache, not a result\n*\n", encoding="utf-8")
    try:
        report = Ingestor(settings).run(show_progress=show_progress)
    except RuntimeError as exc:  # built with other settings: it is our cache, start it afresh
        print(f"rebuilding {settings.index_dir}: {exc}", file=sys.stderr)
        report = Ingestor(settings).run(rebuild=True, show_progress=show_progress)
    print(
        f"index {settings.index_dir}: {report.documents} documents, {report.chunks} chunks", file=sys.stderr
    )


def compare_row(name: str, result: RunResult) -> dict:
    overall = result.metrics["overall"]
    return {
        "preset": name,
        "overrides": PRESETS.get(name, {}),
        "settings": settings_summary(result.settings),
        "answer_accuracy": overall["answer_accuracy"],
        "answer_precision": overall["answer_precision"],
        "abstention_accuracy": overall["abstention_accuracy"],
        "overall_accuracy": overall["overall_accuracy"],
        "recall@5": overall["recall@5"],
        "hit@5": overall["hit@5"],
        "mrr": overall["mrr"],
        "context_recall": overall["context_recall"],
        "citation_precision": overall["citation_precision"],
        "answered_precision": overall["answered_precision"],
        "citation_hit_rate": overall["citation_hit_rate"],
        "fabricated_number_answers": overall["fabricated_number_answers"],
        "fallback_rate": overall["fallback_rate"],
        "first_token_p50_ms": overall["first_token_ms"]["p50"],
        "latency_p50_ms": overall["latency_ms"]["p50"],
        "latency_p95_ms": overall["latency_ms"]["p95"],
        "errors": overall["errors"],
        "wall_s": round(result.wall_s, 1),
    }


def run_compare(
    base: RunResult, names: list[str], questions: list[Question], out: Path, dataset: Path
) -> tuple[list[dict], list[dict]]:
    from rag.evals.report import plot_compare, render_compare

    rows, skipped = [], []
    for plan in plan_presets(names, base.settings, out):
        if plan.skipped:
            print(f"skipping preset {plan.name}: {plan.skipped}", file=sys.stderr)
            skipped.append({"preset": plan.name, "reason": plan.skipped})
            continue
        if plan.settings.model_dump() == base.settings.model_dump():
            result = RunResult(
                plan.name,
                base.settings,
                base.questions,
                base.predictions,
                base.scores,
                base.wall_s,
                {**base.metrics, "label": plan.name},
            )
        else:
            if plan.needs_index:
                build_index(plan.settings)
            result = evaluate(plan.settings, questions, plan.name)
        write_run(out / "presets" / plan.name, result, dataset, plot=False, compact=True)
        if result.metrics["overall"]["errors"] == len(questions):
            first = next(p["error"] for p in result.predictions if p.get("error"))
            skipped.append({"preset": plan.name, "reason": f"every question failed: {first}"})
            continue
        rows.append(compare_row(plan.name, result))
    write_json(
        out / "compare.json",
        {
            "questions": len(questions),
            "dataset": str(dataset),
            "base": settings_summary(base.settings),
            "presets": rows,
            "skipped": skipped,
        },
    )
    (out / "compare.md").write_text(
        render_compare(rows, skipped, len(questions), settings_summary(base.settings)), encoding="utf-8"
    )
    if rows:
        plot_compare(rows, out / "compare.png")
    return rows, skipped


def run_eval(
    settings: Settings, dataset: Path, out: Path, compare: list[str] | None = None, limit: int | None = None
) -> int:
    """`rag eval`: the exit code is 0 when the run finished (quality floors are a test, not this)."""
    from rag.evals.report import compare_text_table, summary_table
    from rag.evals.suites import Suite

    if squad.is_squad(dataset):
        # A SQuAD file brings its own articles: they and their index go beside the results.
        suite = Suite.for_dataset(Path(dataset).stem, Path(dataset), None, Path(out) / "squad-index")
        settings = suite.settings(settings)
        suite.prepare(settings)
        questions = suite.questions(limit)
    else:
        questions = load_dataset(dataset, limit)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    result = evaluate(settings, questions, "base" if compare is not None else "default")
    write_run(out, result, dataset)
    print(summary_table(result.metrics))
    print(
        f"\n{len(questions)} questions in {result.wall_s:.0f} s; "
        f"wrote {out}/predictions.jsonl, metrics.json, report.md, metrics.png"
    )
    if compare is not None:
        rows, skipped = run_compare(result, list(compare) or list(DEFAULT_COMPARE), questions, out, dataset)
        print()
        print(compare_text_table(rows))
        for entry in skipped:
            print(f"skipped {entry['preset']}: {entry['reason']}")
        print(
            f"\ncompared {len(rows)} presets in {time.perf_counter() - started:.0f} s; "
            f"wrote {out}/compare.md, compare.json, compare.png"
        )
    return 0


def evaluate_suite(suite, settings: Settings, questions: list[Question], confidence=None) -> RunResult:
    """One suite: its index brought up to date, then its questions answered against it (with
    another confidence model than the fitted one when given, as `rag calibrate` does)."""
    from rag.assistant import Assistant

    suite_settings = suite.settings(settings)
    suite.prepare(suite_settings)
    return evaluate(suite_settings, questions, suite.name, Assistant(suite_settings, confidence=confidence))


def run_suites(
    settings: Settings,
    names: list[str],
    out: Path,
    compare: list[str] | None = None,
    limit: int | None = None,
    suites_file: Path | None = None,
) -> int:
    """`rag eval --suite ...`: each suite against its own index, reported side by side in
    `suites.md`, `suites.json` and `suites.png`, and each in a folder of its own."""
    from rag.evals.report import (
        plot_suites,
        render_suites,
        render_suites_compare,
        suites_compare_text_table,
        suites_text_table,
    )
    from rag.evals.suites import SUITES_FILE, pick_suites

    out = Path(out)
    results, compared = {}, {}
    suites_file = suites_file or SUITES_FILE
    for suite in pick_suites(names, suites_file):
        questions = suite.questions(limit)
        result = evaluate_suite(suite, settings, questions)
        # Named as in the suites file, relative to the project, so the report reads the same anywhere.
        shown = Path(os.path.relpath(suite.dataset, suites_file.resolve().parent.parent))
        write_run(out / suite.name, result, shown)
        if compare is not None:
            rows, _ = run_compare(result, list(compare) or list(DEFAULT_COMPARE), questions, out / suite.name, shown)
            compared[suite.name] = with_base_row(result, rows)
        results[suite.name] = result
    summary = {name: {"dataset": str(r.metrics["dataset"]), **r.metrics["overall"]} for name, r in results.items()}
    write_json(out / "suites.json", summary)
    (out / "suites.md").write_text(render_suites(summary), encoding="utf-8")
    plot_suites(summary, out / "suites.png")
    print(suites_text_table(summary))
    print(f"\nwrote {out}/suites.md, suites.json, suites.png and a folder per suite")
    if compared:
        write_json(out / "compare.json", compared)
        (out / "compare.md").write_text(render_suites_compare(compared), encoding="utf-8")
        print()
        print(suites_compare_text_table(compared))
        print(f"\nwrote {out}/compare.md and compare.json: every suite under every preset")
    return 0


def with_base_row(base: RunResult, rows: list[dict]) -> list[dict]:
    """The presets' rows, after the run's own settings when no preset repeated them."""
    if any(row["settings"] == settings_summary(base.settings) for row in rows):
        return rows
    return [compare_row(f"base ({base.settings.llm})", base), *rows]
