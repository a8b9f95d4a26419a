"""`rag eval`: a run's folder, presets compared, and suites side by side; the top of the evals stage.

A run writes `predictions.jsonl`, `metrics.json`, `report.md` and `metrics.png` (see DESIGN.md).
`--compare` repeats the run for named presets and writes `compare.md`, `compare.json` and
`compare.png`; `--suite` runs each suite against its own index and writes `suites.md`, `suites.json`
and `suites.png`. This module joins the runner (runner.py), the report (report.py, plots.py) and the
suites (suites.py), which do not import one another back.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from rag.evals import squad
from rag.evals.dataset import Question, load_dataset
from rag.evals.plots import plot_compare, plot_metrics, plot_suites
from rag.evals.report import (
    compare_text_table,
    render_compare,
    render_report,
    render_suites,
    render_suites_compare,
    suites_compare_text_table,
    suites_text_table,
    summary_table,
)
from rag.evals.runner import RunResult, build_index, evaluate, evaluate_suite, settings_summary
from rag.evals.scoring import RECALL_KS
from rag.evals.suites import SUITES_FILE, Suite, pick_suites
from rag.settings import INDEX_SHAPING_FIELDS, PRESETS, Settings, preset

DEFAULT_COMPARE = ("hybrid", "dense", "bm25", "k3", "k8", "chunk400", "chunk1000", "openai", "llamacpp")


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
