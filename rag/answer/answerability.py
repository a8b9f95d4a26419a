"""How sure the model must be that the passages state the answer before it may write one.

The answerability check reads the model's chance of "yes" (rag/answer/llm.py); below the threshold the
question is declined without an answer being written. Even odds (0.5) is the threshold until one
is fitted: a small model's "yes" to an answerable question often sits just under even, because
it spreads its "no" over several first words. The fitted threshold is the one that best tells
answerable from unanswerable questions on recorded LLM eval runs of every suite, each suite
weighing the same: the mean over suites of (answerable questions let through + unanswerable ones
stopped) / 2. `rag calibrate --answerability RUN_DIR ...` writes it to `rag/answer/answerability.json`,
with what it scores on each suite, and on each suite when fitted on the others only, beside the
chance that the model's answer or refusal is right (`ChanceRight`, below), fitted on the same runs.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import NamedTuple

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
    for name, held_out in _fitted_without_each(by_suite, best_threshold, threshold).items():
        found = by_suite[name]
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


def _fitted_without_each(by_suite: dict, fit_on, pooled):
    """For each suite, what `fit_on` fits on the other suites only (`pooled` when there are none)."""
    if len(by_suite) == 1:
        return {suite: pooled for suite in by_suite}
    return {suite: fit_on({o: rows for o, rows in by_suite.items() if o != suite}) for suite in by_suite}


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


# --- the chance that what the model's path shows is right -----------------------------------
#
# An answer the model wrote, or a refusal it made, is right more or less often depending on how
# sure its verdict was and how good the extractive candidate from the same passages looked. A
# logistic model over the two, one for answers and one for refusals, fitted on the same recorded
# runs as the threshold, gives the confidence shown with them.


class Outcome(NamedTuple):
    yes: float | None  # the model's chance of yes (None: not asked)
    candidate: float  # the extractive candidate's confidence
    right: bool
    shown: float  # the confidence the run showed with it


CHANCE_FEATURES = ["log-odds of the model's yes", "log-odds of the extractive candidate's confidence"]
_EDGE = 1e-3  # probabilities are kept this far from 0 and 1 before their log-odds are taken


def outcomes(predictions: list[dict]) -> dict[str, list[Outcome]]:
    """The model's own answers and refusals, scored, each with what it was shown from: not the
    extractive answers that replaced a rejected one, and not refusals made before the model."""
    found: dict[str, list[Outcome]] = {"answer": [], "refusal": []}
    for prediction in predictions:
        candidate = prediction.get("candidate")
        judged = prediction.get("model") and not prediction.get("fallback") and candidate
        if not judged or prediction.get("correct") is None:
            continue
        shown = "refusal" if prediction["abstained"] else "answer"
        found[shown].append(
            Outcome(prediction.get("answerable"), candidate["confidence"], bool(prediction["correct"]),
                    prediction["confidence"])
        )
    return found


def _graded(yes: float | None) -> bool:
    return yes is not None and 0.0 < yes < 1.0


def _log_odds(probability: float) -> float:
    probability = min(max(probability, _EDGE), 1 - _EDGE)
    return math.log(probability / (1 - probability))


class ChanceRight:
    """How likely an answer or refusal of the model is right, from the fitted logistic models.

    A verdict without a grade (none asked, or a first word: 0 or 1) counts as the typical verdict
    of the fitted examples of its kind, so a "yes" read from a word is not taken for certainty."""

    def __init__(self, fitted: dict, models: list[str] | None = None):
        self.fitted = fitted
        self.models = {model_name(m) for m in models or []}

    @classmethod
    def load(cls, path: Path = THRESHOLD_FILE) -> ChanceRight | None:
        if not Path(path).exists():
            return None
        saved = json.loads(Path(path).read_text(encoding="utf-8"))
        return cls(saved["chance_right"], saved.get("models")) if saved.get("chance_right") else None

    def fitted_for(self, model: str) -> bool:
        """Whether the chance was fitted on this model's runs: another model, weaker or stronger,
        is right at another rate, so the chance would not mean what it says."""
        return model_name(model) in self.models

    def of(self, answered: bool, yes: float | None, candidate_confidence: float) -> float:
        model = self.fitted["answer" if answered else "refusal"]
        features = _chance_features(yes, candidate_confidence, model["typical_yes_log_odds"])
        z = model["intercept"] + sum(c * x for c, x in zip(model["coef"], features, strict=True))
        return 1 / (1 + math.exp(-z))


def model_name(backend_model: str) -> str:
    """The model itself, whoever serves it: "llamacpp:qwen2.5-coder-1.5b.gguf" and
    "openai:qwen2.5-coder-1.5b" are both qwen2.5-coder-1.5b."""
    kind, _, name = backend_model.partition(":")
    return name.removesuffix(".gguf") if kind in ("llamacpp", "openai") and name else backend_model


def _chance_features(yes: float | None, candidate_confidence: float, typical_yes_log_odds: float) -> list[float]:
    """CHANCE_FEATURES, an ungraded verdict counting as the typical one."""
    yes_odds = _log_odds(yes) if _graded(yes) else typical_yes_log_odds
    return [yes_odds, _log_odds(candidate_confidence)]


def fit_chance_right(by_suite: dict[str, dict[str, list[Outcome]]]) -> dict | None:
    """The two logistic models, each suite weighing the same, and per suite the Brier score (mean
    squared distance between confidence and outcome; lower is better) of the fitted chance, of
    the one fitted without that suite, and of the confidence the runs showed. None when the runs
    hold no scored answer or no scored refusal of the model to fit on."""
    fitted: dict = {"features": CHANCE_FEATURES}
    for kind in ("answer", "refusal"):
        rows = {suite: found[kind] for suite, found in by_suite.items() if found[kind]}
        if not rows:
            return None
        model = _fit_logistic(rows)
        suites = {
            suite: _chance_scores(kind, model, held_out, rows[suite])
            for suite, held_out in _fitted_without_each(rows, _fit_logistic, model).items()
        }
        fitted[kind] = {**model, "suites": suites}
    return fitted


def _chance_scores(kind: str, model: dict, held_out: dict, found: list[Outcome]) -> dict:
    return {
        "examples": len(found),
        "right": round(sum(o.right for o in found) / len(found), 4),
        "brier": _brier(_chances(kind, model, found), found),
        "brier_fitted_without_it": _brier(_chances(kind, held_out, found), found),
        "brier_as_shown": _brier([o.shown for o in found], found),
    }


def _chances(kind: str, model: dict, found: list[Outcome]) -> list[float]:
    chance = ChanceRight({kind: model})
    return [chance.of(kind == "answer", o.yes, o.candidate) for o in found]


def _fit_logistic(by_suite: dict[str, list[Outcome]]) -> dict:
    from sklearn.linear_model import LogisticRegression

    pooled = [o for found in by_suite.values() for o in found]
    graded = [_log_odds(o.yes) for o in pooled if _graded(o.yes)]
    typical = round(sum(graded) / len(graded), 4) if graded else 0.0
    outcome = [o.right for o in pooled]
    if len(set(outcome)) < 2:  # one outcome only: its share is all there is to say
        return {"coef": [0.0, 0.0], "intercept": _log_odds(float(outcome[0])), "typical_yes_log_odds": typical}
    features = [_chance_features(o.yes, o.candidate, typical) for o in pooled]
    weights = [len(pooled) / (len(by_suite) * len(found)) for found in by_suite.values() for _ in found]
    model = LogisticRegression().fit(features, outcome, sample_weight=weights)
    return {
        "coef": [round(float(c), 4) for c in model.coef_[0]],
        "intercept": round(float(model.intercept_[0]), 4),
        "typical_yes_log_odds": typical,
    }


def _brier(chances: list[float], found: list[Outcome]) -> float:
    """The mean squared distance between each chance and its outcome (1 right, 0 wrong)."""
    return round(sum((chance - o.right) ** 2 for chance, o in zip(chances, found, strict=True)) / len(found), 4)
