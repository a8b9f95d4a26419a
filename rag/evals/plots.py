"""The plots of `rag eval`: a run's metrics.png, the presets' compare.png and the suites' suites.png.

matplotlib is imported only when a plot is drawn.
"""

from __future__ import annotations

from pathlib import Path

from rag.evals.report import format_ms
from rag.evals.scoring import RECALL_KS, SEARCH_K


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_metrics(metrics: dict, path: Path) -> None:
    """Three panels: accuracy by type, retrieval recall@k by type, and the overall numbers."""
    plt = _pyplot()
    by_type = metrics["by_type"]
    types = list(by_type)
    fig, axes = plt.subplots(1, 3, figsize=(18, 5.5), gridspec_kw={"width_ratios": [1.1, 1.2, 1]})

    ax = axes[0]
    values, colors, labels = [], [], []
    scored_types = [t for t in types if by_type[t]["answerable"] or by_type[t]["should_abstain"]]
    for name in scored_types:
        m = by_type[name]
        if m["answerable"]:
            values.append(m["answer_accuracy"])
            colors.append("#4C72B0")
        else:
            values.append(m["abstention_accuracy"] or 0.0)
            colors.append("#DD8452")
        labels.append(f"{name} ({m['questions']})")
    bars = ax.bar(range(len(scored_types)), values, color=colors)
    _label_bars(ax, bars, values)
    ax.set_xticks(range(len(scored_types)), labels, rotation=35, ha="right", fontsize=9)
    ax.set_ylim(0, 1.22)
    ax.axhline(metrics["overall"]["answer_accuracy"] or 0, color="#4C72B0", linestyle=":", linewidth=1)
    ax.axhline(metrics["overall"]["abstention_accuracy"] or 0, color="#DD8452", linestyle=":", linewidth=1)
    ax.set_title("Accuracy by question type (dotted: overall)")
    ax.set_ylabel("fraction")
    ax.legend(
        handles=[plt.Rectangle((0, 0), 1, 1, color="#4C72B0"), plt.Rectangle((0, 0), 1, 1, color="#DD8452")],
        labels=["answer accuracy", "abstention accuracy"],
        loc="upper center",
        ncols=2,
        frameon=False,
        fontsize=8,
    )

    ax = axes[1]
    with_gold = [t for t in types if by_type[t]["retrieval_questions"]]
    width = 0.8 / (len(RECALL_KS) + 1)
    series = [(f"recall@{k}", f"recall@{k}") for k in RECALL_KS] + [("MRR", "mrr")]
    for i, (label, key) in enumerate(series):
        xs = [j + (i - len(series) / 2 + 0.5) * width for j in range(len(with_gold))]
        ax.bar(xs, [by_type[t][key] or 0.0 for t in with_gold], width, label=label)
    ax.set_xticks(range(len(with_gold)), with_gold, rotation=35, ha="right", fontsize=9)
    ax.set_title(f"Retrieval by type: share of gold sources in the top k; MRR@{SEARCH_K}")
    ax.set_ylim(0, 1.22)
    ax.legend(fontsize=8, loc="upper center", ncols=len(series), frameon=False)

    ax = axes[2]
    overall = metrics["overall"]
    names = [
        "answer accuracy",
        "answer precision",
        "abstention accuracy",
        "abstention precision",
        "recall@5",
        "hit@5",
        "MRR",
        "citation precision",
        "citation hit rate",
        "lexical support (not entailment)",
    ]
    values = [
        overall["answer_accuracy"],
        overall["answer_precision"],
        overall["abstention_accuracy"],
        overall["abstention_precision"],
        overall["recall@5"],
        overall["hit@5"],
        overall["mrr"],
        overall["citation_precision"],
        overall["citation_hit_rate"],
        overall["lexical_support"]["supported"],
    ]
    values = [v or 0.0 for v in values]
    bars = ax.barh(range(len(names)), values, color="#55A868")
    for bar, value in zip(bars, values, strict=True):
        ax.text(
            min(value, 1.0) + 0.01,
            bar.get_y() + bar.get_height() / 2,
            f"{value:.2f}",
            va="center",
            fontsize=8,
        )
    ax.set_yticks(range(len(names)), names, fontsize=9)
    ax.invert_yaxis()
    ax.set_xlim(0, 1.12)
    latency = overall["latency_ms"]
    ax.set_title(f"Overall ({overall['questions']} questions)", fontsize=11)
    fig.suptitle(
        f"rag eval: {metrics.get('label', '')}  ({_settings_line(metrics['settings'])})  —  "
        f"latency p50 {format_ms(latency['p50'])} ms, p95 {format_ms(latency['p95'])} ms  —  "
        f"answers with a fabricated number: {overall['fabricated_number_answers']}",
        fontsize=11,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _label_bars(ax, bars, values) -> None:
    for bar, value in zip(bars, values, strict=True):
        ax.text(
            bar.get_x() + bar.get_width() / 2,
            (value or 0) + 0.02,
            f"{value:.2f}" if value is not None else "–",
            ha="center",
            fontsize=8,
        )


def _settings_line(summary: dict) -> str:
    return (
        f"{summary['retrieval']}, k={summary['top_k']}, chunks {summary['chunk_chars']} chars, "
        f"{summary['llm']}"
    )


def plot_compare(rows: list[dict], path: Path) -> None:
    plt = _pyplot()
    names = [r["preset"] for r in rows]
    series = [
        ("answer accuracy", "answer_accuracy"),
        ("abstention accuracy", "abstention_accuracy"),
        ("recall@5", "recall@5"),
        ("MRR", "mrr"),
    ]
    fig, (left, right) = plt.subplots(
        1, 2, figsize=(15, max(4.0, 0.75 * len(rows) + 1.5)), gridspec_kw={"width_ratios": [2.4, 1]}
    )
    height = 0.8 / len(series)
    for i, (label, key) in enumerate(series):
        ys = [j + (i - len(series) / 2 + 0.5) * height for j in range(len(rows))]
        values = [r[key] or 0.0 for r in rows]
        bars = left.barh(ys, values, height, label=label)
        for bar, value in zip(bars, values, strict=True):
            best = value == max(values)
            text = f"{value:.3f} (best)" if best else f"{value:.3f}"
            y = bar.get_y() + bar.get_height() / 2
            left.text(
                value + 0.005, y, text, va="center", fontsize=7, fontweight="bold" if best else "normal"
            )
    left.set_yticks(range(len(rows)), names)
    left.invert_yaxis()
    left.set_xlim(0, 1.2)
    left.set_xticks([0, 0.2, 0.4, 0.6, 0.8, 1.0])
    left.set_title("Quality per preset (higher is better; the best of each metric is marked)")
    left.legend(fontsize=9, loc="upper center", bbox_to_anchor=(0.5, -0.06), ncols=len(series), frameon=False)
    latencies = [r["latency_p50_ms"] or 0.0 for r in rows]
    bars = right.barh(range(len(rows)), latencies, color="#8172B3")
    for bar, value in zip(bars, latencies, strict=True):
        right.text(value, bar.get_y() + bar.get_height() / 2, f" {value:,.0f}", va="center", fontsize=8)
    right.set_yticks(range(len(rows)), names)
    right.invert_yaxis()
    right.set_xlim(0, max(latencies + [1.0]) * 1.25)
    right.set_title("p50 latency per question (ms, lower is better)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_suites(summary: dict[str, dict], path: Path) -> None:
    """Left: the headline metrics per suite; right: each suite's risk–coverage curve."""
    plt = _pyplot()
    fig, (bars, curves) = plt.subplots(1, 2, figsize=(15, 5.5), gridspec_kw={"width_ratios": [1.3, 1]})
    keys = [
        ("answer acc", "answer_accuracy"),
        ("abstention acc", "abstention_accuracy"),
        ("answered precision", "answered_precision"),
        ("citation hit", "citation_hit_rate"),
        ("recall@5", "recall@5"),
    ]
    names = list(summary)
    width = 0.8 / max(len(names), 1)
    for i, name in enumerate(names):
        values = [summary[name].get(key) or 0.0 for _, key in keys]
        positions = [j + i * width for j in range(len(keys))]
        drawn = bars.bar(positions, values, width, label=name)
        _label_bars(bars, drawn, values)
    bars.set_xticks([j + width * (len(names) - 1) / 2 for j in range(len(keys))], [label for label, _ in keys])
    bars.set_ylim(0, 1.22)
    bars.set_title("Per suite")
    bars.legend(loc="upper center", ncol=len(names))
    for name in names:
        curve = summary[name].get("risk_coverage") or []
        if curve:
            curves.plot([c for c, _, _ in curve], [p for _, p, _ in curve], marker=".", label=name)
            answered = summary[name].get("coverage")
            precision = summary[name].get("answered_precision")
            if answered is not None and precision is not None:
                curves.scatter([answered], [precision], s=80, edgecolor="black", zorder=3)
    curves.set_xlim(0, 1)
    curves.set_ylim(0, 1.02)
    curves.set_xlabel("coverage (share of questions answered)")
    curves.set_ylabel("precision of the answers given")
    curves.set_title("Risk–coverage (dot: the fitted threshold)")
    curves.grid(alpha=0.3)
    curves.legend(loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
