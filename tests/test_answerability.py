"""The answerability threshold: fitted on recorded LLM runs so that it best tells answerable from
unanswerable questions, every suite weighing the same, and read back by the assistant."""

from __future__ import annotations

import json
import math

import pytest

from rag.answer import answerability
from rag.answer.answerability import (
    EVEN_ODDS,
    ChanceRight,
    Outcome,
    balanced_accuracy,
    best_threshold,
    examples,
    fit,
    fit_chance_right,
    load_threshold,
    outcomes,
)
from rag.evals.calibrate import calibrate_answerability
from rag.evals.runs import write_predictions


def prediction(yes: float | None, answerable: bool, scored: bool = True) -> dict:
    scores = {"answerable": answerable, "should_abstain": not answerable} if scored else {}
    return {"answerable": yes, "eval": scores, "model": "openai:qwen"}


def test_balanced_accuracy_is_the_mean_of_answerable_let_through_and_unanswerable_stopped():
    found = [(0.9, True), (0.45, True), (0.2, False), (0.6, False)]
    assert balanced_accuracy(found, 0.5) == pytest.approx((1 / 2 + 1 / 2) / 2)
    assert balanced_accuracy(found, 0.4) == pytest.approx((2 / 2 + 1 / 2) / 2)
    assert balanced_accuracy([(0.9, True)], 0.5) is None  # nothing to stop: no balance to strike


def test_the_best_threshold_falls_between_the_verdicts_it_separates():
    found = [(0.45, True), (0.6, True), (0.9, True), (0.1, False), (0.3, False), (0.42, False)]
    assert best_threshold({"one": found}) == pytest.approx((0.42 + 0.45) / 2)


def test_every_suite_weighs_the_same_however_many_questions_it_has():
    # Pooled, the big suite's cut at 0.35 would win; suite by suite, the small one's 0.55 does.
    big = [(0.4, True)] * 10 + [(0.3, False)] * 10 + [(0.5, False)]
    small = [(0.6, True), (0.5, False)]
    assert best_threshold({"big": big}) == pytest.approx(0.35)
    assert best_threshold({"big": big, "small": small}) == pytest.approx(0.55)


def test_of_equally_good_thresholds_the_nearest_to_even_odds_is_taken():
    found = [(0.1, False), (0.2, True), (0.6, False), (0.8, True)]
    assert balanced_accuracy(found, 0.15) == balanced_accuracy(found, 0.7) == 0.75
    assert best_threshold({"one": found}) == pytest.approx(0.7)
    assert best_threshold({"one": [(0.2, False)]}) == EVEN_ODDS  # one verdict: no cut between two


def test_the_fit_reports_each_suite_also_when_fitted_without_it():
    fitted = fit({"a": [(0.45, True), (0.3, False)], "b": [(0.7, True), (0.5, False)]})
    assert fitted["suites"]["a"]["fitted_without_it"]["threshold"] == pytest.approx(0.6)
    assert fitted["suites"]["a"]["fitted_without_it"]["balanced_accuracy"] == 0.5  # 0.45 not let through
    assert fitted["suites"]["a"]["at_even_odds"] == 0.5
    assert fitted["suites"]["b"]["examples"] == 2 and fitted["suites"]["b"]["answerable"] == 1


def test_only_scored_questions_the_model_judged_are_examples():
    found = examples([prediction(0.7, True), prediction(None, True), prediction(0.2, False, scored=False)])
    assert found == [(0.7, True)]


def test_without_a_fitted_file_the_threshold_is_even_odds(tmp_path):
    assert load_threshold(tmp_path / "none.json") == EVEN_ODDS


def write_run(folder, predictions):
    folder.mkdir(parents=True)
    write_predictions(folder / "predictions.jsonl", predictions)
    return folder


def test_calibrating_writes_the_threshold_with_the_command_that_fitted_it(tmp_path):
    runs = [
        write_run(tmp_path / "bbc", [prediction(0.45, True), prediction(0.35, False)]),
        write_run(tmp_path / "squad", [prediction(0.6, True), prediction(0.2, False)]),
    ]
    out = tmp_path / "answerability.json"
    calibrate_answerability(runs, out)
    written = json.loads(out.read_text(encoding="utf-8"))
    assert written["threshold"] == pytest.approx(0.4) and load_threshold(out) == written["threshold"]
    assert set(written["suites"]) == {"bbc", "squad"} and written["models"] == ["openai:qwen"]
    assert written["command"] == f"rag calibrate --answerability {runs[0]} {runs[1]}"


def test_runs_without_verdicts_are_refused_and_nothing_is_written(tmp_path):
    run = write_run(tmp_path / "bundled", [prediction(None, True)])
    out = tmp_path / "answerability.json"
    with pytest.raises(ValueError, match="were they run with a model"):
        calibrate_answerability([run], out)
    assert not out.exists()


def test_the_shipped_threshold_was_fitted_on_every_suite():
    fitted = json.loads(answerability.THRESHOLD_FILE.read_text(encoding="utf-8"))
    assert set(fitted["suites"]) == {"bundled", "bbc", "squad"}
    assert 0 < fitted["threshold"] < 1


# --- the chance that the model's answer or refusal is right --------------------------------

def judged(yes, right, abstained=False, candidate=0.6, fallback=None, model="openai:qwen", shown=0.5) -> dict:
    answerable = bool(right) != abstained
    return {"answerable": yes, "correct": right, "abstained": abstained, "fallback": fallback, "model": model,
            "candidate": {"confidence": candidate} if candidate is not None else None, "confidence": shown,
            "eval": {"answerable": answerable, "should_abstain": not answerable}}


def test_only_the_models_own_scored_answers_and_refusals_are_outcomes():
    found = outcomes([
        judged(0.9, True, shown=0.7),
        judged(0.2, False, abstained=True),
        judged(0.9, True, fallback="the number 5 in sentence 1 is in none of the passages it cites"),
        judged(None, True, model=""),  # the extractive answerer's
        judged(0.9, True, candidate=None),  # no candidate: nothing to read the chance from
        judged(0.9, None),  # not scored
    ])
    assert found == {"answer": [Outcome(0.9, 0.6, True, 0.7)], "refusal": [Outcome(0.2, 0.6, False, 0.5)]}


def synthetic_suite(surer_is_righter: bool, n: int = 40) -> dict[str, list[Outcome]]:
    """Answers right when the model's yes was sure (or the other way round), refusals half right."""
    answers = [Outcome(yes, 0.6, (yes > 0.7) == surer_is_righter, 0.5) for yes in [0.45, 0.6, 0.8, 0.95] * (n // 4)]
    refusals = [Outcome(yes, 0.4, right, 0.5) for yes, right in [(0.1, True), (0.1, False), (0.3, True), (0.3, False)] * (n // 4)]
    return {"answer": answers, "refusal": refusals}


def test_the_fitted_chance_rises_with_the_models_yes_when_surer_answers_are_righter():
    chance = ChanceRight(fit_chance_right({"a": synthetic_suite(True), "b": synthetic_suite(True)}))
    assert chance.of(True, 0.95, 0.6) > 0.8 > 0.2 > chance.of(True, 0.45, 0.6)
    assert chance.of(False, 0.1, 0.4) == pytest.approx(chance.of(False, 0.3, 0.4), abs=0.1)


def test_each_suite_is_scored_also_when_fitted_without_it():
    fitted = fit_chance_right({"a": synthetic_suite(True), "b": synthetic_suite(True), "odd": synthetic_suite(False)})
    odd = fitted["answer"]["suites"]["odd"]
    # fitted on the two other suites, where surer is righter, the odd suite is scored badly
    assert odd["brier_fitted_without_it"] > odd["brier_as_shown"] == 0.25
    assert fitted["answer"]["suites"]["a"]["brier"] < 0.25 and odd["examples"] == 40 and odd["right"] == 0.5


def test_a_verdict_without_a_grade_counts_as_the_typical_one():
    fitted = fit_chance_right({"a": synthetic_suite(True)})
    chance = ChanceRight(fitted)
    typical = 1 / (1 + math.exp(-fitted["answer"]["typical_yes_log_odds"]))
    for ungraded in (1.0, None):  # a first word's yes; no check asked
        assert chance.of(True, ungraded, 0.6) == pytest.approx(chance.of(True, typical, 0.6))
    assert chance.of(True, 1.0, 0.6) < chance.of(True, 0.99, 0.6)


def test_runs_without_a_refusal_of_the_model_fit_no_chance(tmp_path):
    assert fit_chance_right({"a": {"answer": synthetic_suite(True)["answer"], "refusal": []}}) is None
    run = write_run(tmp_path / "bbc", [prediction(0.45, True), prediction(0.35, False)])
    out = tmp_path / "answerability.json"
    calibrate_answerability([run], out)
    assert "chance_right" not in json.loads(out.read_text(encoding="utf-8")) and ChanceRight.load(out) is None


def test_calibrating_writes_the_chance_beside_the_threshold(tmp_path):
    runs = [write_run(tmp_path / name, [judged(y, r, abstained=y < 0.4) for y, r in
                                        [(0.9, True), (0.5, False), (0.2, True), (0.3, False)] * 5])
            for name in ("bbc", "squad")]
    out = tmp_path / "answerability.json"
    calibrate_answerability(runs, out)
    chance = ChanceRight.load(out)
    assert set(chance.fitted["answer"]["suites"]) == {"bbc", "squad"}
    assert chance.of(True, 0.9, 0.6) > chance.of(True, 0.5, 0.6)


def test_the_shipped_chance_was_fitted_on_every_suite():
    fitted = ChanceRight.load().fitted
    assert all(set(fitted[kind]["suites"]) == {"bundled", "bbc", "squad"} for kind in ("answer", "refusal"))


def test_the_chance_is_for_the_models_it_was_fitted_on_whoever_serves_them(tmp_path):
    runs = [write_run(tmp_path / name, [judged(y, r, abstained=y < 0.4) for y, r in
                                        [(0.9, True), (0.5, False), (0.2, True), (0.3, False)] * 5])
            for name in ("bbc", "squad")]
    out = tmp_path / "answerability.json"
    calibrate_answerability(runs, out, model="qwen2.5-coder-1.5b")
    chance = ChanceRight.load(out)
    assert chance.fitted_for("llamacpp:qwen2.5-coder-1.5b.gguf") and chance.fitted_for("openai:qwen2.5-coder-1.5b")
    assert not chance.fitted_for("llamacpp:smollm2-135m.gguf")
    assert json.loads(out.read_text(encoding="utf-8"))["command"].endswith("--model qwen2.5-coder-1.5b")


def test_the_shipped_chance_is_for_the_catalogues_qwen():
    assert ChanceRight.load().fitted_for("llamacpp:qwen2.5-coder-1.5b.gguf")
