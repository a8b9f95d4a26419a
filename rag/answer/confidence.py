"""How likely an answer is to be right: a logistic model over the answerer's signals.

The extractive answerer always finds a best candidate (unless the question names something no
article mentions); the model turns that candidate's signals into the estimated chance that it is
right, and an answer below the threshold is withheld. Weights and threshold are data, written by
`rag calibrate` from eval runs over every suite (`rag/answer/confidence.json`), never typed in by hand.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

MODEL_FILE = Path(__file__).with_name("confidence.json")

# The signals the model reads, in order; rag/answer/extractive.py computes them for every candidate.
FEATURES = (
    "score",  # the best sentence's combined score
    "similarity",  # its cosine similarity to the question
    "overlap",  # the share of the question's words (weighted by rarity) it repeats
    "answer_overlap",  # the same over all the sentences the answer quotes
    "passage_overlap",  # the same over its whole passage
    "rarest_missing",  # how rare the rarest question word missing from its passage is, 0..1
    "rarest_missing_sentence",  # ... missing from the sentence itself
    "key_coverage",  # the share of the question's names and numbers it mentions
    "cue",  # whether it holds the kind of answer asked for (a number, a date, a person...)
    "asked_for_named",  # the share of the thing asked for ("the *top speed*") that it names
    "negation_mismatch",  # one of question and sentence is negated ("not", "never"), the other not
    "typed",  # the question asks for a kind of answer (how much, when, who, where)
    "typed_without_cue",  # ... and the sentence does not hold one
    "top_similarity",  # the best passage's cosine similarity to the question
    "absent_here",  # a name of the question is in the corpus but in none of the passages found
    "apart",  # no one sentence mentions all of the question's names together
)


@dataclass
class ConfidenceModel:
    mean: list[float]
    scale: list[float]
    coef: list[float]
    intercept: float
    threshold: float  # answers below this confidence are withheld
    refusal_confidence: float  # how often "no article mentions X" was right on the suites
    features: tuple[str, ...] = FEATURES

    @classmethod
    def load(cls, path: Path = MODEL_FILE) -> ConfidenceModel:
        if not Path(path).exists():
            return cls.unfitted()
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        if tuple(data["features"]) != FEATURES:
            raise ValueError(
                f"{path} was fitted on other signals ({', '.join(data['features'])}); run `rag calibrate`"
            )
        return cls(
            data["mean"],
            data["scale"],
            data["coef"],
            data["intercept"],
            data["threshold"],
            data["refusal_confidence"],
        )

    @classmethod
    def unfitted(cls) -> ConfidenceModel:
        """Before `rag calibrate` has run: every candidate at even odds, none withheld."""
        n = len(FEATURES)
        return cls([0.0] * n, [1.0] * n, [0.0] * n, 0.0, threshold=0.0, refusal_confidence=0.5)

    def probability(self, signals: dict[str, float]) -> float:
        z = self.intercept
        for name, mean, scale, weight in zip(self.features, self.mean, self.scale, self.coef, strict=True):
            z += weight * (signals[name] - mean) / scale
        return 1.0 / (1.0 + math.exp(-z))


def fit(rows: list[dict], target_precision: float) -> dict:
    """Fit the model on eval rows ({"signals", "right", "suite"}) and choose the lowest threshold
    at which the answers kept reach the target precision over all suites pooled. Each suite
    weighs the same, however many questions it has, so that no one corpus sets the threshold.
    The report beside it gives each suite's figures when fitted on the other suites only."""
    import numpy as np

    pooled = _fit_arrays(rows)
    threshold = choose_threshold(pooled.probabilities(rows), rows, target_precision)
    held_out = {}
    for suite in sorted({r["suite"] for r in rows}):
        train = [r for r in rows if r["suite"] != suite]
        test = [r for r in rows if r["suite"] == suite]
        if len({r["right"] for r in train}) < 2:
            continue
        model = _fit_arrays(train)
        cut = choose_threshold(model.probabilities(train), train, target_precision)
        held_out[suite] = _coverage_at(model.probabilities(test), [r for r in test], cut)
    return {
        "features": list(FEATURES),
        "mean": pooled.mean.tolist(),
        "scale": pooled.scale.tolist(),
        "coef": pooled.coef.tolist(),
        "intercept": float(pooled.intercept),
        "threshold": round(float(threshold), 4),
        "target_precision": target_precision,
        "examples": len(rows),
        "examples_by_suite": {s: sum(r["suite"] == s for r in rows) for s in sorted({r["suite"] for r in rows})},
        "in_sample": _coverage_at(pooled.probabilities(rows), rows, threshold),
        "leave_one_suite_out": held_out,
        "mean_log_loss": float(
            np.mean(
                [
                    -math.log(max(1e-9, p if r["right"] else 1 - p))
                    for p, r in zip(pooled.probabilities(rows), rows, strict=True)
                ]
            )
        ),
    }


@dataclass
class _Fitted:
    mean: object
    scale: object
    coef: object
    intercept: float

    def probabilities(self, rows: list[dict]) -> list[float]:
        import numpy as np

        x = (_matrix(rows) - self.mean) / self.scale
        return (1.0 / (1.0 + np.exp(-(x @ self.coef + self.intercept)))).tolist()


def _matrix(rows: list[dict]):
    import numpy as np

    return np.array([[float(r["signals"][name]) for name in FEATURES] for r in rows])


def _fit_arrays(rows: list[dict]) -> _Fitted:
    from sklearn.linear_model import LogisticRegression

    x = _matrix(rows)
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale[scale == 0] = 1.0
    # C=1 (sklearn's default L2 strength) keeps weights modest on a few hundred examples.
    model = LogisticRegression(C=1.0, max_iter=1000).fit(
        (x - mean) / scale, [int(r["right"]) for r in rows], sample_weight=suite_weights(rows)
    )
    return _Fitted(mean, scale, model.coef_[0], float(model.intercept_[0]))


def suite_weights(rows: list[dict]) -> list[float]:
    """Each row's weight: every suite sums to the same total."""
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["suite"]] = counts.get(row["suite"], 0) + 1
    return [len(rows) / (len(counts) * counts[row["suite"]]) for row in rows]


def choose_threshold(probabilities: list[float], rows: list[dict], target_precision: float) -> float:
    """The lowest confidence cut at which the answers kept are right at least `target_precision`
    of the time (suites weighted alike); answering more is worth it only while precision holds."""
    ranked = sorted(zip(probabilities, rows, suite_weights(rows), strict=True), key=lambda t: -t[0])
    best, kept, right = 1.0, 0.0, 0.0
    for probability, row, weight in ranked:
        kept += weight
        right += weight * row["right"]
        if right / kept >= target_precision:
            best = probability
    return best


def _coverage_at(probabilities: list[float], rows: list[dict], threshold: float) -> dict:
    kept = [r for p, r in zip(probabilities, rows, strict=True) if p >= threshold]
    return {
        "answered": len(kept),
        "of": len(rows),
        "precision": round(sum(r["right"] for r in kept) / len(kept), 4) if kept else None,
    }
