"""`rag calibrate`: fit the confidence model on every eval suite and write `rag/answer/confidence.json`.

Each suite is answered with nothing withheld (minimum confidence 0), so that every question
that has a candidate answer gives one example: its signals, and whether that candidate was right.
The model is fitted on all suites pooled; the threshold is the lowest confidence at which the
answers kept reach the target precision, pooled too. The output records, beside the weights,
what each suite scores when the model is fitted on the other suites only, and the command.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path

from rag.answer import answerability
from rag.answer.confidence import MODEL_FILE, ConfidenceModel, fit
from rag.evals.runner import evaluate_suite
from rag.evals.runs import read_predictions, write_run
from rag.evals.suites import SUITES_FILE, pick_suites
from rag.settings import Settings

# The pooled precision the threshold keeps. Higher targets leave the SQuAD suite, where the
# signals barely tell answerable from unanswerable, with almost no answers at all.
DEFAULT_TARGET_PRECISION = 0.62


def examples(predictions: list[dict], suite: str) -> tuple[list[dict], list[bool]]:
    """(candidate examples, whether each refusal made before any candidate was right)."""
    rows, refusals = [], []
    for prediction in predictions:
        scores = prediction.get("eval") or {}
        if prediction.get("correct") is None:  # not scored
            continue
        candidate = prediction.get("candidate")
        if candidate:
            rows.append({"signals": candidate["signals"], "right": bool(scores.get("candidate_right")), "suite": suite})
        elif prediction.get("abstained"):
            refusals.append(bool(scores.get("should_abstain")))
    return rows, refusals


def calibrate(
    settings: Settings,
    names: list[str],
    out: Path,
    target_precision: float,
    model_file: Path = MODEL_FILE,
    suites_file: Path | None = None,
) -> dict:
    # The confidence is the extractive candidate's: no model server that happens to run may answer.
    open_settings = settings.with_overrides(min_confidence=0.0, llm="extractive")
    rows: list[dict] = []
    refusals: list[bool] = []
    for suite in pick_suites(names, suites_file or SUITES_FILE):
        # The model being refitted is not read: every candidate is kept and its signals recorded.
        result = evaluate_suite(suite, open_settings, suite.questions(), ConfidenceModel.unfitted())
        write_run(Path(out) / suite.name, result, suite.dataset, plot=False, compact=True)
        suite_rows, suite_refusals = examples(result.predictions, suite.name)
        rows += suite_rows
        refusals += suite_refusals
    fitted = fit(rows, target_precision)
    fitted["refusal_confidence"] = round(sum(refusals) / len(refusals), 4) if refusals else 0.5
    fitted["refusals"] = len(refusals)
    fitted["command"] = "rag calibrate --suite " + " ".join(names) + f" --target-precision {target_precision}"
    fitted["created"] = datetime.now(UTC).isoformat(timespec="seconds")
    model_file.write_text(json.dumps(fitted, indent=2) + "\n", encoding="utf-8")
    return fitted


def print_summary(fitted: dict, model_file: Path) -> None:
    inside = fitted["in_sample"]
    print(
        f"fitted on {fitted['examples']} candidates {fitted['examples_by_suite']}; threshold "
        f"{fitted['threshold']:.3f} for precision {fitted['target_precision']}: answers {inside['answered']} of "
        f"{inside['of']} at precision {inside['precision']}"
    )
    for suite, held in fitted["leave_one_suite_out"].items():
        print(
            f"  {suite}, fitted without it: answers {held['answered']} of {held['of']} "
            f"at precision {held['precision']}"
        )
    print(f"refusals before any candidate were right {fitted['refusal_confidence']:.0%} of {fitted['refusals']}")
    print(f"wrote {model_file}", file=sys.stderr)


def calibrate_answerability(
    runs: list[Path], threshold_file: Path = answerability.THRESHOLD_FILE, model: str | None = None
) -> dict:
    """Fit the answerability threshold on recorded LLM eval runs (one folder per suite, named
    after it, holding the predictions.jsonl that `rag eval` wrote) and write it to `threshold_file`.
    `model` names the model the runs were made with, beside the name its server gave it."""
    by_suite, outcomes, models = {}, {}, set()
    for run in runs:
        predictions = read_predictions(run)
        by_suite[Path(run).name] = answerability.examples(predictions)
        outcomes[Path(run).name] = answerability.outcomes(predictions)
        models |= {p["model"] for p in predictions if p.get("model")}
    if not any(by_suite.values()):
        raise ValueError("no prediction in these runs has an answerability verdict: were they run with a model?")
    fitted = answerability.fit(by_suite)
    chance_right = answerability.fit_chance_right(outcomes)
    if chance_right:
        fitted["chance_right"] = chance_right
    fitted["models"] = sorted(models | ({model} if model else set()))
    fitted["command"] = "rag calibrate --answerability " + " ".join(str(run) for run in runs)
    fitted["command"] += f" --model {model}" if model else ""
    fitted["created"] = datetime.now(UTC).isoformat(timespec="seconds")
    threshold_file.write_text(json.dumps(fitted, indent=2) + "\n", encoding="utf-8")
    return fitted


def print_answerability_summary(fitted: dict, threshold_file: Path) -> None:
    models = ", ".join(fitted["models"]) or "an unnamed model"
    print(f"answerability threshold {fitted['threshold']:.3f}, fitted on {models}")
    for suite, scores in fitted["suites"].items():
        held = scores["fitted_without_it"]
        print(
            f"  {suite} ({scores['examples']} judged, {scores['answerable']} answerable): balanced accuracy "
            f"{scores['balanced_accuracy']} (at even odds {scores['at_even_odds']}; fitted without it: "
            f"{held['balanced_accuracy']} at {held['threshold']:.3f})"
        )
    for kind in ("answer", "refusal") if "chance_right" in fitted else ():
        for suite, scores in fitted["chance_right"][kind]["suites"].items():
            print(
                f"  chance that the model's {kind} is right, {suite} ({scores['examples']}, {scores['right']:.0%} "
                f"right): Brier {scores['brier']} (fitted without it {scores['brier_fitted_without_it']}; the "
                f"confidence the run showed {scores['brier_as_shown']})"
            )
    print(f"wrote {threshold_file}", file=sys.stderr)
