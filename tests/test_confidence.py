"""The answer's confidence: the fitted model, the threshold setting, and the fitting itself."""

from __future__ import annotations

import json
import random
import subprocess
import sys

import pytest

from rag.answer.confidence import FEATURES, MODEL_FILE, ConfidenceModel, choose_threshold, fit
from rag.settings import Settings

EXIM_QUESTION = "What did EXIM approve under Project Vault?"


def rows_where_score_decides(n: int, suite: str, seed: int) -> list[dict]:
    """Examples in which a higher `score` makes a right answer likelier; the rest is noise."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        signals = {name: rng.random() for name in FEATURES}
        rows.append({"signals": signals, "right": rng.random() < signals["score"] ** 2, "suite": suite})
    return rows


def test_the_fitted_model_ranks_by_the_signal_that_decides_and_records_how_it_was_fitted():
    rows = rows_where_score_decides(300, "a", 1) + rows_where_score_decides(100, "b", 2)
    fitted = fit(rows, target_precision=0.8)
    model = ConfidenceModel(
        fitted["mean"], fitted["scale"], fitted["coef"], fitted["intercept"], fitted["threshold"], 0.9
    )
    low = dict.fromkeys(FEATURES, 0.5) | {"score": 0.1}
    high = dict.fromkeys(FEATURES, 0.5) | {"score": 0.95}
    assert model.probability(high) > 0.7 > 0.2 > model.probability(low)
    base_rate = sum(r["right"] for r in rows) / len(rows)  # about 1/3
    assert fitted["in_sample"]["precision"] > base_rate + 0.3
    assert set(fitted["leave_one_suite_out"]) == {"a", "b"}
    assert fitted["examples_by_suite"] == {"a": 300, "b": 100}


def test_the_threshold_is_the_lowest_cut_that_keeps_the_target_precision():
    rows = [{"right": right, "suite": "s"} for right in (True, True, False, True, False, False)]
    probabilities = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4]
    assert choose_threshold(probabilities, rows, 0.75) == 0.6  # 3 right of the top 4
    assert choose_threshold(probabilities, rows, 1.0) == 0.8
    assert choose_threshold(probabilities, rows, 0.5) == 0.4
    assert choose_threshold([0.9], [{"right": False, "suite": "s"}], 0.5) == 1.0  # nothing reaches it


def test_each_suite_weighs_the_same_in_the_threshold():
    # Suite "big" is wrong at every confidence; "small" right. Unweighted, "big" would set the cut.
    rows = [{"right": False, "suite": "big"}] * 8 + [{"right": True, "suite": "small"}] * 2
    probabilities = [0.5] * 8 + [0.9] * 2
    assert choose_threshold(probabilities, rows, 0.9) == 0.9


def test_the_committed_model_is_fitted_on_every_suite_with_the_command_that_made_it():
    data = json.loads(MODEL_FILE.read_text())
    assert tuple(data["features"]) == FEATURES
    assert set(data["examples_by_suite"]) == {"bundled", "bbc", "squad"}
    assert data["command"].startswith("rag calibrate")
    assert 0 < data["threshold"] < 1 and 0 < data["refusal_confidence"] <= 1


def test_every_answer_carries_a_confidence_between_0_and_1(assistant):
    answer = assistant.ask(EXIM_QUESTION)
    assert not answer.abstained and "10 billion" in answer.answer
    assert 0.0 <= answer.confidence <= 1.0
    refused = assistant.ask("What did the Zorblax trade minister sign?")
    assert refused.abstained and 0.0 <= refused.confidence <= 1.0
    assert answer.to_dict()["confidence"] == answer.confidence


def test_the_threshold_is_one_setting(corpus_settings):
    from rag.assistant import Assistant

    strict = Assistant.from_settings(corpus_settings.with_overrides(min_confidence=1.0)).ask(EXIM_QUESTION)
    assert strict.abstained and strict.nearest, "nothing is sure enough: the nearest passages are shown"
    assert strict.confidence < 1.0
    lenient = Assistant.from_settings(corpus_settings.with_overrides(min_confidence=0.0)).ask(EXIM_QUESTION)
    assert not lenient.abstained
    # Withheld and shown answers are the two faces of one probability.
    assert strict.confidence == pytest.approx(1.0 - lenient.confidence, abs=0.002)


def test_the_threshold_is_checked(monkeypatch):
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        Settings(min_confidence=1.5)
    monkeypatch.setenv("RAG_MIN_CONFIDENCE", "0.3")
    assert Settings().min_confidence == 0.3


def test_the_cli_prints_the_confidence_and_takes_the_threshold(corpus_settings):
    command = [sys.executable, "-m", "rag.cli", "ask", EXIM_QUESTION, "--json"]
    paths = ["--corpus-dir", str(corpus_settings.corpus_dir), "--index-dir", str(corpus_settings.index_dir)]
    shown = json.loads(subprocess.run(command + paths, capture_output=True, text=True, check=True).stdout)
    assert 0 < shown["confidence"] <= 1 and not shown["abstained"]
    withheld = subprocess.run(command + paths + ["--min-confidence", "1"], capture_output=True, text=True, check=True)
    assert json.loads(withheld.stdout)["abstained"]
