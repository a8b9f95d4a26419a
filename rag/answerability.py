"""How sure the model must be that the passages state the answer before it may write one.

The answerability check reads the model's chance of "yes" (rag/llm.py); below the threshold the
question is declined without an answer being written. Even odds (0.5) is the threshold until one
is fitted: a small model's "yes" to an answerable question often sits just under even, because
it spreads its "no" over several first words. The fitted threshold is the one that best tells
answerable from unanswerable questions on recorded LLM eval runs of every suite, each suite
weighing the same: the mean over suites of (answerable questions let through + unanswerable ones
stopped) / 2. `rag calibrate --answerability RUN_DIR ...` writes it to `rag/answerability.json`,
with what it scores on each suite, and on each suite when fitted on the others only.
"""

from __future__ import annotations

import json
from pathlib import Path

THRESHOLD_FILE = Path(__file__).with_name("answerability.json")
EVEN_ODDS = 0.5

# (the model's chance of yes, whether the question is answerable)
Example = tuple[float, bool]


def load_threshold(path: Path = THRESHOLD_FILE) -> float:
    if not Path(path).exists():
        return EVEN_ODDS
    return float(json.loads(Path(path).read_text(encoding="utf-8"))["threshold"])


def examples(predictions: list[dict]) -> list[Example]:
    """One example per scored question that the model judged: answerable ones, and ones whose
    right answer is to decline."""
    found = []
    for prediction in predictions:
        scores = prediction.get("eval") or {}
        judged = prediction.get("answerable")
        if judged is not None and (scores.get("answerable") or scores.get("should_abstain")):
            found.append((judged, bool(scores["answerable"])))
    return found


def balanced_accuracy(examples: list[Example], threshold: float) -> float | None:
    """(answerable questions let through + unanswerable ones stopped) / 2, each as a share."""
    passed = [yes >= threshold for yes, answerable in examples if answerable]
    stopped = [yes < threshold for yes, answerable in examples if not answerable]
    if not passed or not stopped:
        return None
    return (sum(passed) / len(passed) + sum(stopped) / len(stopped)) / 2


def best_threshold(by_suite: dict[str, list[Example]]) -> float:
    """The cut between two neighbouring verdicts with the highest mean balanced accuracy over the
    suites; of equal ones, the nearest to even odds."""
    verdicts = sorted({yes for found in by_suite.values() for yes, _ in found})
    cuts = [(low + high) / 2 for low, high in zip(verdicts, verdicts[1:], strict=False)] or [EVEN_ODDS]
    return max(cuts, key=lambda cut: (_mean_balanced(by_suite, cut), -abs(cut - EVEN_ODDS)))


def _mean_balanced(by_suite: dict[str, list[Example]], threshold: float) -> float:
    scores = [balanced_accuracy(found, threshold) for found in by_suite.values()]
    scores = [score for score in scores if score is not None]
    return sum(scores) / len(scores) if scores else 0.0


def fit(by_suite: dict[str, list[Example]]) -> dict:
    """The fitted threshold, with each suite's balanced accuracy at it and at even odds, and at
    the threshold fitted without that suite."""
    threshold = best_threshold(by_suite)
    suites = {}
    for name, found in by_suite.items():
        others = {other: rows for other, rows in by_suite.items() if other != name}
        held_out = best_threshold(others) if others else threshold
        suites[name] = {
            "examples": len(found),
            "answerable": sum(answerable for _, answerable in found),
            "balanced_accuracy": _round(balanced_accuracy(found, threshold)),
            "at_even_odds": _round(balanced_accuracy(found, EVEN_ODDS)),
            "fitted_without_it": {
                "threshold": round(held_out, 4),
                "balanced_accuracy": _round(balanced_accuracy(found, held_out)),
            },
        }
    return {"threshold": round(threshold, 4), "suites": suites}


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)
