"""`rag eval`'s runner: every question asked through the public API and scored into a `RunResult`.

One run asks every question with `Assistant.stream` (the same path as `rag ask`), searches it again
with `Assistant.search` for the retrieval metrics (no answerer involved) and scores each prediction
(scoring.py). The runner never imports the report: runs.py writes a run's files and renders them.
"""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from rag.evals.dataset import Question
from rag.evals.scoring import DEFINITIONS, SEARCH_K, Scores, aggregate, metrics_by_type, score_prediction
from rag.settings import Settings


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
        summary["llm_check_claims"] = settings.llm_check_claims
        summary["llm_evidence"] = f"{settings.llm_evidence_sentences} sentences, {settings.llm_evidence_chars} characters"
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


def evaluate_suite(suite, settings: Settings, questions: list[Question], confidence=None) -> RunResult:
    """One suite: its index brought up to date, then its questions answered against it (with
    another confidence model than the fitted one when given, as `rag calibrate` does)."""
    from rag.assistant import Assistant

    suite_settings = suite.settings(settings)
    suite.prepare(suite_settings)
    return evaluate(suite_settings, questions, suite.name, Assistant(suite_settings, confidence=confidence))
