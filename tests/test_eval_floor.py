"""The CI floor: the full question set over the bundled corpus must not score below these figures.

The floors sit a little below what the offline default (hybrid retrieval, extractive answerer)
measured; evals/README.md ("CI floor") says how they were set and when to raise them. Raise them
when the system gets better; never lower them to make a change pass without saying why.
"""

from __future__ import annotations

import json
from pathlib import Path

# Measured 2026-11-22 over evals/questions.jsonl: see evals/README.md, "CI floor".
ANSWER_ACCURACY_FLOOR = 0.68
ABSTENTION_ACCURACY_FLOOR = 0.82
RECALL_AT_5_FLOOR = 0.95

DATASET = Path(__file__).resolve().parent.parent / "evals" / "questions.jsonl"


def test_full_eval_stays_above_the_floors(corpus_settings, tmp_path):
    from rag.evaluate import run_eval

    out = tmp_path / "eval"
    assert run_eval(corpus_settings, DATASET, out) == 0
    overall = json.loads((out / "metrics.json").read_text())["overall"]
    assert overall["questions"] >= 100 and overall["errors"] == 0
    measured = {
        "answer accuracy": (overall["answer_accuracy"], ANSWER_ACCURACY_FLOOR),
        "abstention accuracy": (overall["abstention_accuracy"], ABSTENTION_ACCURACY_FLOOR),
        "retrieval recall@5": (overall["recall@5"], RECALL_AT_5_FLOOR),
    }
    below = [f"{name} {value:.3f} < floor {floor:.2f}" for name, (value, floor) in measured.items() if value < floor]
    assert not below, "; ".join(below) + f" (misses are listed in {out / 'report.md'})"
