"""The human side of `rag eval`: the markdown report and the printed tables (the plots: plots.py).

Kept apart from the scoring (scoring.py) and the runner (runner.py), which never import it back;
runs.py calls both.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath

from rag.answer.citations import strip_citations
from rag.evals.dataset import Question
from rag.evals.runner import RunResult
from rag.evals.scoring import DEFINITIONS, RECALL_KS, SEARCH_K, SUPPORT_MIN_OVERLAP, Scores, type_order


def _pct(value) -> str:
    return "–" if value is None else f"{100 * value:.1f}%"


def _num(value, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def format_ms(value) -> str:
    return "–" if value is None else f"{value:,.0f}"


def _cell(text: str, limit: int = 300) -> str:
    text = re.sub(r"\s+", " ", text or "").strip()
    if len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    return text.replace("|", "\\|")


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def _metric_row(name: str, m: dict) -> list[str]:
    return [
        name,
        str(m["questions"]),
        _pct(m["answer_accuracy"]),
        _pct(m["answer_precision"]),
        _pct(m["abstention_accuracy"]),
        _pct(m["abstention_precision"]),
        _pct(m["recall@5"]),
        _pct(m["hit@5"]),
        _num(m["mrr"]),
        _pct(m["citation_precision"]),
        _pct(m["citation_hit_rate"]),
        str(m["fabricated_number_answers"]),
        format_ms(m["latency_ms"]["p50"]),
        format_ms(m["latency_ms"]["p95"]),
    ]


METRIC_HEADER = [
    "",
    "n",
    "answer acc",
    "answer precision",
    "abstention acc",
    "abstention precision",
    "recall@5",
    "hit@5",
    "MRR",
    "citation precision",
    "citation hit",
    "fabricated #",
    "p50 ms",
    "p95 ms",
]


def expected_text(question: Question) -> str:
    if question.abstain:
        return "(abstain)"
    return " AND ".join("/".join(group) for group in question.answers) or "(not scored)"


def got_text(prediction: dict, limit: int = 400) -> str:
    if prediction.get("error"):
        return f"(error) {prediction['error']}"
    answer = strip_citations(prediction.get("answer") or "")
    return _cell(("(abstained) " if prediction.get("abstained") else "") + answer, limit)


def misses(result: RunResult) -> dict[str, list[tuple[Question, dict, Scores]]]:
    found: dict[str, list] = {}
    for question, prediction, score in zip(result.questions, result.predictions, result.scores, strict=True):
        if score.correct is False:
            found.setdefault(question.type, []).append((question, prediction, score))
    return dict(sorted(found.items(), key=lambda item: type_order(item[0])))


def render_report(result: RunResult, plot: str | None = "metrics.png") -> str:
    m = result.metrics
    overall = m["overall"]
    lines = [f"# Eval report: {result.label}", ""]
    lines.append(
        f"{overall['questions']} questions from `{m.get('dataset')}`, {m['created']}, "
        f"code {m.get('code_version') or 'unknown'}, {m['wall_s']:.0f} s wall time."
    )
    lines.append("")
    lines.append("Settings: " + ", ".join(f"{k}=`{v}`" for k, v in m["settings"].items()))
    lines.append("")
    if plot:
        lines += [f"![metrics]({plot})", ""]
    lines += ["## Overall", ""]
    lines += _table(
        ["metric", "value"],
        [
            ["answer accuracy (correct / answerable)", _pct(overall["answer_accuracy"])],
            ["answer precision, LitQA2 (correct / answered)", _pct(overall["answer_precision"])],
            ["answer rate (answered / answerable)", _pct(overall["answer_rate"])],
            [
                "abstention accuracy = recall (declined / should decline)",
                _pct(overall["abstention_accuracy"]),
            ],
            ["abstention precision (should decline / declined)", _pct(overall["abstention_precision"])],
            ["overall accuracy (answers and abstentions)", _pct(overall["overall_accuracy"])],
            *[
                [f"retrieval recall@{k} (fraction of gold sources)", _pct(overall[f"recall@{k}"])]
                for k in RECALL_KS
            ],
            *[[f"retrieval hit@{k} (any gold source)", _pct(overall[f"hit@{k}"])] for k in RECALL_KS],
            [f"retrieval MRR (top {SEARCH_K})", _num(overall["mrr"])],
            ["context recall (gold sources in the passages answered from)", _pct(overall["context_recall"])],
            ["citation precision", _pct(overall["citation_precision"])],
            ["citation hit rate", _pct(overall["citation_hit_rate"])],
            ["quote hit rate (right answers whose quotes hold the answer)", _pct(overall["quote_hit_rate"])],
            ["answers with a fabricated number", str(overall["fabricated_number_answers"])],
            ["answers without a citation", str(overall["answers_without_citation"])],
            ["lexical support of claims (not entailment)", _pct(overall["lexical_support"]["supported"])],
            [
                "latency p50 / p95 (ms)",
                f"{format_ms(overall['latency_ms']['p50'])} / {format_ms(overall['latency_ms']['p95'])}",
            ],
            [
                "questions: answerable / should abstain / unscored / errors",
                " / ".join(str(overall[k]) for k in ("answerable", "should_abstain", "unscored", "errors")),
            ],
        ],
    )
    lines += ["", "## By type", ""]
    rows = [_metric_row(name, metrics) for name, metrics in m["by_type"].items()]
    lines += _table(METRIC_HEADER, rows + [_metric_row("**all**", overall)])
    lines += [
        "",
        "Answer metrics apply to answerable types, abstention metrics to `abstain: true` questions; "
        "– means the type has none.",
        "",
    ]
    lines += _misses_section(result)
    lines += _retrieval_section(result)
    lines += _fabricated_section(result)
    lines += _support_section(result)
    lines += ["## Definitions", ""]
    lines += [f"- **{name}**: {text}" for name, text in DEFINITIONS.items()]
    lines.append("")
    return "\n".join(lines)


def _misses_section(result: RunResult) -> list[str]:
    by_type = misses(result)
    total = sum(len(v) for v in by_type.values())
    lines = [f"## Misses ({total})", ""]
    if not by_type:
        return lines + ["None.", ""]
    for name, items in by_type.items():
        lines += [f"### {name} ({len(items)})", ""]
        rows = []
        for question, prediction, score in items:
            expected = expected_text(question)
            if score.groups_matched and not all(score.groups_matched):
                missing = [i + 1 for i, ok in enumerate(score.groups_matched) if not ok]
                expected += f" (group {', '.join(map(str, missing))} missing)"
            rows.append(
                [question.id, _cell(question.question, 200), _cell(expected, 160), got_text(prediction)]
            )
        lines += _table(["id", "question", "expected", "got"], rows) + [""]
    return lines


def _short(source: str, width: int = 32) -> str:
    stem = PurePosixPath(source).stem
    return stem if len(stem) <= width else stem[: width - 1] + "…"


def _ranked_summary(sources: list[str]) -> str:
    """Distinct sources in rank order, each with the ranks it holds: "ani-… (1, 3), fox-… (2)"."""
    ranks: dict[str, list[int]] = {}
    for rank, source in enumerate(sources, 1):
        ranks.setdefault(source, []).append(rank)
    return "; ".join(f"{_short(s)} ({', '.join(map(str, r))})" for s, r in ranks.items())


def _retrieval_section(result: RunResult) -> list[str]:
    k = max(RECALL_KS)
    rows = []
    for question, score in zip(result.questions, result.scores, strict=True):
        if score.retrieval_scored and score.recall.get(k, 0.0) < 1.0:
            found = round(score.recall[k] * len(question.gold_sources))
            rank = f"{1 / score.reciprocal_rank:.0f}" if score.reciprocal_rank else f">{SEARCH_K}"
            gold = ", ".join(_short(s) for s in question.gold_sources)
            rows.append(
                [
                    question.id,
                    question.type,
                    f"{found} of {len(question.gold_sources)}",
                    rank,
                    _cell(gold),
                    _cell(_ranked_summary(score.ranked_sources[:k]), 400),
                ]
            )
    lines = [
        f"## Retrieval: questions with a gold source outside the top {k} ({len(rows)})",
        "",
        "For single-fact questions listing two sources either one suffices (see hit@k); cross_article "
        "questions need every source.",
        "",
    ]
    if not rows:
        return lines + ["None.", ""]
    header = ["id", "type", f"gold in top {k}", "first gold rank", "gold", f"top {k} sources (ranks)"]
    return lines + _table(header, rows) + [""]


def _fabricated_section(result: RunResult) -> list[str]:
    rows = [
        [p["id"], ", ".join(s.fabricated_numbers), got_text(p, 240)]
        for p, s in zip(result.predictions, result.scores, strict=True)
        if s.fabricated_numbers
    ]
    lines = [f"## Answers with numbers in no cited passage ({len(rows)})", ""]
    if not rows:
        return lines + ["None.", ""]
    return lines + _table(["id", "numbers", "answer"], rows) + [""]


def _support_section(result: RunResult) -> list[str]:
    rows = []
    for score in result.scores:
        for claim in score.claims:
            if not claim.supported:
                why = [] if claim.cited else ["no citation"]
                if claim.cited and claim.overlap < SUPPORT_MIN_OVERLAP:
                    why.append(f"overlap {claim.overlap:.2f}")
                if not claim.numbers_ok:
                    why.append("number not in cited passage")
                rows.append([score.id, _cell(claim.claim, 200), ", ".join(why) or "cites an unknown passage"])
    lines = [
        f"## Lexical support (not entailment): weakly supported claims ({len(rows)})",
        "",
        "Each answer sentence is compared with the quote it cites: the share of its content words "
        "found there, and whether its numbers are in the cited passage. This is a lexical check, not "
        "entailment; a high overlap does not prove the quote supports the claim.",
        "",
    ]
    if not rows:
        return lines + ["None.", ""]
    return lines + _table(["id", "claim", "why"], rows) + [""]


def summary_table(metrics: dict) -> str:
    """A plain-text table for the terminal: overall and by type."""
    header = [
        "type",
        "n",
        "ans acc",
        "ans prec",
        "abst acc",
        "rec@5",
        "hit@5",
        "MRR",
        "cit prec",
        "fab",
        "p50 ms",
    ]
    rows = []
    for name, m in [*metrics["by_type"].items(), ("ALL", metrics["overall"])]:
        rows.append(
            [
                name,
                str(m["questions"]),
                _pct(m["answer_accuracy"]),
                _pct(m["answer_precision"]),
                _pct(m["abstention_accuracy"]),
                _pct(m["recall@5"]),
                _pct(m["hit@5"]),
                _num(m["mrr"], 2),
                _pct(m["citation_precision"]),
                str(m["fabricated_number_answers"]),
                format_ms(m["latency_ms"]["p50"]),
            ]
        )
    return _text_table(header, rows)


def _text_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(row: list[str]) -> str:
        return "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))
        )

    return "\n".join([line(header), "  ".join("-" * w for w in widths), *map(line, rows)])


COMPARE_COLUMNS = [  # (key, header, format, higher is better)
    ("answer_accuracy", "answer acc", _pct, True),
    ("answer_precision", "answer precision", _pct, True),
    ("abstention_accuracy", "abstention acc", _pct, True),
    ("overall_accuracy", "overall acc", _pct, True),
    ("recall@5", "recall@5", _pct, True),
    ("hit@5", "hit@5", _pct, True),
    ("mrr", "MRR", _num, True),
    ("context_recall", "context recall", _pct, True),
    ("citation_precision", "citation precision", _pct, True),
    ("fabricated_number_answers", "fabricated #", str, False),
    ("fallback_rate", "fallback", _pct, False),
    ("first_token_p50_ms", "first token p50 ms", format_ms, False),
    ("latency_p50_ms", "p50 ms", format_ms, False),
    ("latency_p95_ms", "p95 ms", format_ms, False),
]


def render_compare(rows: list[dict], skipped: list[dict], n_questions: int, base: dict) -> str:
    lines = [
        "# Preset comparison",
        "",
        f"{n_questions} questions per preset. Each preset overrides the base settings "
        f"({', '.join(f'{k}=`{v}`' for k, v in base.items())}). The best value of each column is in bold.",
        "",
        "![compare](compare.png)",
        "",
    ]
    best = {}
    for key, _, _, higher in COMPARE_COLUMNS:
        values = [r[key] for r in rows if r[key] is not None]
        if values:
            best[key] = max(values) if higher else min(values)
    table_rows = []
    for row in rows:
        cells = [f"`{row['preset']}`", ", ".join(f"{k}={v}" for k, v in row["overrides"].items()) or "(base)"]
        for key, _, fmt, _ in COMPARE_COLUMNS:
            text = fmt(row[key]) if row[key] is not None else "–"
            cells.append(f"**{text}**" if row[key] is not None and row[key] == best.get(key) else text)
        table_rows.append(cells)
    lines += _table(["preset", "overrides", *[h for _, h, _, _ in COMPARE_COLUMNS]], table_rows)
    if skipped:
        lines += ["", "## Skipped", ""]
        lines += [f"- `{s['preset']}`: {s['reason']}" for s in skipped]
    lines += [
        "",
        "Metrics are defined in each run's report (`presets/<name>/report.md`) and in `metrics.json`. "
        "recall@5 and MRR come from `Assistant.search` alone, so the k presets differ from `hybrid` "
        "only in what the answerer is given: see context recall, the gold sources among the top_k passages.",
        "",
    ]
    return "\n".join(lines)


def compare_text_table(rows: list[dict]) -> str:
    header = ["preset", *[h for _, h, _, _ in COMPARE_COLUMNS]]
    body = [
        [r["preset"], *[(fmt(r[key]) if r[key] is not None else "–") for key, _, fmt, _ in COMPARE_COLUMNS]]
        for r in rows
    ]
    return _text_table(header, body)


# -- suites side by side -----------------------------------------------------------------------

SUITE_ROWS = (
    ("questions", "questions", str),
    ("answer accuracy (right / answerable)", "answer_accuracy", _pct),
    ("abstention accuracy (declined / unanswerable)", "abstention_accuracy", _pct),
    ("answered precision (right / answered)", "answered_precision", _pct),
    ("coverage (answered / scored)", "coverage", _pct),
    ("coverage at precision 0.90 (the most confident answers)", "coverage_at_90", _pct),
    ("citation hit rate", "citation_hit_rate", _pct),
    ("quote hit rate (right answers whose quotes hold the answer)", "quote_hit_rate", _pct),
    ("recall@5", "recall@5", _pct),
    ("answers with a number in no cited passage", "fabricated_number_answers", str),
    ("LLM answers replaced by the extractive one (of answered)", "fallback_rate", _pct),
    ("latency p50 (ms)", None, None),
)

# Every suite under every preset: the columns `rag eval --suite ... --compare ...` sets side by side.
SUITES_COMPARE_COLUMNS = (
    ("answer_accuracy", "answer acc", _pct),
    ("abstention_accuracy", "abstention acc", _pct),
    ("answered_precision", "answered precision", _pct),
    ("citation_hit_rate", "citation hit", _pct),
    ("fallback_rate", "fallback (of answered)", _pct),
    ("fabricated_number_answers", "number in no cited passage", str),
    ("first_token_p50_ms", "first token p50 ms", format_ms),
    ("latency_p50_ms", "p50 ms", format_ms),
    ("latency_p95_ms", "p95 ms", format_ms),
)


def _suites_compare_rows(compared: dict[str, list[dict]]) -> list[list[str]]:
    return [
        [suite, row["preset"], *("–" if row.get(key) is None else fmt(row[key]) for key, _, fmt in SUITES_COMPARE_COLUMNS)]
        for suite, rows in compared.items()
        for row in rows
    ]


def render_suites_compare(compared: dict[str, list[dict]]) -> str:
    header = ["suite", "preset", *(label for _, label, _ in SUITES_COMPARE_COLUMNS)]
    lines = ["# Every suite under every preset", ""]
    lines += _table(header, _suites_compare_rows(compared))
    lines += [
        "",
        "`base (...)` is the run's own settings (its answer backend in brackets). Each suite's "
        "`compare.md` has the retrieval columns too, and `presets/<name>/` each preset's report.",
        "",
    ]
    return "\n".join(lines)


def suites_compare_text_table(compared: dict[str, list[dict]]) -> str:
    header = ["suite", "preset", *(label for _, label, _ in SUITES_COMPARE_COLUMNS)]
    return _text_table(header, _suites_compare_rows(compared))


def _suite_cell(metrics: dict, key: str | None, fmt) -> str:
    if key is None:
        return format_ms(metrics["latency_ms"]["p50"])
    value = metrics.get(key)
    return "–" if value is None else fmt(value)


def render_suites(summary: dict[str, dict]) -> str:
    names = list(summary)
    lines = ["# Eval suites side by side", "", "![suites](suites.png)", ""]
    rows = [[label, *(_suite_cell(summary[n], key, fmt) for n in names)] for label, key, fmt in SUITE_ROWS]
    lines += _table(["metric", *names], rows)
    lines += ["", "Datasets: " + "; ".join(f"{n}: `{summary[n]['dataset']}`" for n in names), ""]
    lines += [
        "Each suite's folder holds its report (misses by type), predictions and metrics. The "
        "risk–coverage curve answers only the candidates at or above a confidence: how precise the "
        "answers stay as more questions are answered.",
        "",
        "## Does the confidence mean the chance of being right?",
        "",
        "Every question's best candidate answer (shown or withheld), grouped by its confidence: the "
        "group's mean confidence beside the share of those candidates that were right.",
        "",
    ]
    rows = [
        [name, f"{g['from']:.1f}–{g['to']:.1f}", str(g["n"]), f"{g['mean_confidence']:.2f}", f"{g['right']:.2f}"]
        for name in names
        for g in summary[name].get("calibration") or []
    ]
    lines += _table(["suite", "confidence", "candidates", "mean confidence", "share right"], rows)
    return "\n".join(lines) + "\n"


def suites_text_table(summary: dict[str, dict]) -> str:
    names = list(summary)
    rows = [[label, *(_suite_cell(summary[n], key, fmt) for n in names)] for label, key, fmt in SUITE_ROWS]
    return _text_table(["metric", *names], rows)


