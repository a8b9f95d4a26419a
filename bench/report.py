"""Turns one run's results (a dict) into markdown tables, a target check and the latency plot."""

from __future__ import annotations

import statistics
from pathlib import Path

RETRIEVAL_SERIES = ("raw_chroma", "raw_bm25", "dense", "keyword", "hybrid", "hybrid+embed", "embed")
COLORS = {"raw_chroma": "tab:gray", "raw_bm25": "tab:olive", "raw_sum": "black", "dense": "tab:blue",
          "keyword": "tab:green", "hybrid": "tab:red", "hybrid+embed": "tab:purple", "embed": "tab:orange"}


def table(headers: list[str], rows: list[list]) -> str:
    def cell(value) -> str:
        if isinstance(value, float):
            return f"{value:,.2f}" if abs(value) < 100 else f"{value:,.0f}"
        return str(value)

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def pq(stats: dict) -> str:
    """'p50 / p95' of a summary."""
    return f"{stats['p50']:.1f} / {stats['p95']:.1f}"


def ratio(a: dict, b: dict) -> str:
    return f"{a['p50'] / b['p50']:.2f}x / {a['p95'] / b['p95']:.2f}x"


# -- sections ------------------------------------------------------------------------------------------


def machine_section(results: dict) -> str:
    m = results["machine"]
    rows = [["CPU", m["cpu"]], ["cores (nproc)", m["nproc"]], ["RAM", m["ram"]], ["platform", m["platform"]],
            ["load average (1, 5, 15 min) at start", results["load_start"]],
            ["load average at end", results["load_end"]], ["python", m["python"]]]
    rows += [[name, m[name]] for name in ("torch", "sentence-transformers", "transformers", "chromadb", "bm25s",
                                          "gradio", "gradio_client", "numpy")]
    return "## Machine\n\n" + table(["", ""], rows)


def ingest_section(ingest: dict) -> str:
    rows = []
    for number, r in enumerate(ingest["rounds"]):
        other = r["seconds"] - r["embed_seconds"]
        rows.append([number, r["order"], r["chunks"], r["seconds"], r["embed_seconds"], other,
                     r["ingest_chunks_per_s"], r["raw_seconds"], r["raw_chunks_per_s"],
                     f"{r['ratio']:.2f}x", f"{r['cpu_ratio']:.2f}x"])
    stage_rows = []
    for name in [*ingest["rounds"][0]["stages"], "embed_seconds"]:
        values = [r["stages"].get(name, r.get(name)) for r in ingest["rounds"]]
        shares = [value / r["seconds"] * 100 for value, r in zip(values, ingest["rounds"], strict=True)]
        label = "embedding (Embedder.embed)" if name == "embed_seconds" else name
        stage_rows.append([label, statistics.median(values), f"{statistics.median(shares):.1f}%"])
    return "\n\n".join([
        "## Ingest throughput",
        f"`Ingestor.run` (read, clean, chunk, embed, store, keyword index, manifest) over "
        f"{ingest['articles']} generated articles ({ingest['chunks']} chunks), against "
        f"`SentenceTransformer.encode` of the same {ingest['chunks']} texts (title + newline + chunk), "
        f"batch size {ingest['batch_size']}, in one process. Rounds alternate the order (A B B A). "
        "`ratio` = ingest chunks/s over raw chunks/s by wall clock; `cpu ratio` the same by the process's "
        "CPU time, which other developers' load on the machine disturbs much less.",
        table(["round", "order", "chunks", "ingest s", "of which embed s", "other s", "ingest chunks/s",
               "raw encode s", "raw chunks/s", "ratio", "cpu ratio"], rows),
        f"Median ratio: **{ingest_ratio(ingest, 'ratio'):.2f}x** (wall), "
        f"**{ingest_ratio(ingest, 'cpu_ratio'):.2f}x** (CPU). Peak RSS of the ingest process: "
        f"**{ingest['ingest_peak_rss_mb']:.0f} MB** ({ingest['rss_before_ingest_mb']:.0f} MB with the model "
        "loaded, before the ingest).",
        "Where the ingest's time goes (median over rounds; the stages are the Ingestor's methods, timed "
        "by wrapping them):",
        table(["stage", "seconds", "share of ingest"], stage_rows),
        f"Embedding every chunk's sentences too (the {ingest['sentences']['sentences']} distinct sentences of "
        f"these chunks, which the answerer embeds at question time when they are not cached) took "
        f"{ingest['sentences']['seconds']:.1f} s with the raw encoder, "
        f"{ingest['sentences']['relative_to_chunks']:.2f}x the time of the chunks themselves.",
    ])


def ingest_ratio(ingest: dict, key: str) -> float:
    return statistics.median(r[key] for r in ingest["rounds"])


def sidecar_section(rows: list[dict]) -> str:
    return "\n\n".join([
        "### Scanning a folder with a metadata.json sidecar",
        "`Ingestor._scan` over one folder of N article files (no embedding), without a sidecar and with a "
        "metadata.json that lists every file (parsed once per folder):",
        table(["files", "sidecar KB", "no sidecar s", "sidecar s", "ms per file with sidecar"],
              [[r["files"], r["sidecar_kb"], r["without_sidecar_s"], r["with_sidecar_s"],
                r["with_sidecar_s"] / r["files"] * 1000] for r in rows]),
    ])


def builds_section(sizes: list[dict]) -> str:
    rows = [[s["build"]["chunks"], s["build"]["articles"], "yes" if s["build"]["cached"] else "no",
             s["build"]["encode_seconds"], s["build"]["ingest_seconds_without_encoding"],
             s["build"]["build_peak_rss_mb"]] for s in sizes]
    rebuild = [[s["keyword_rebuild"]["chunks"], s["keyword_rebuild"]["load_s"], s["keyword_rebuild"]["build_s"],
                s["keyword_rebuild"]["save_s"], s["keyword_rebuild"]["total_s"], s["keyword_rebuild"]["size_mb"],
                s["keyword_rebuild"]["peak_rss_mb"]] for s in sizes]
    return "\n\n".join([
        "## Benchmark indexes",
        "Built by `Ingestor.run` over the generated articles, with the chunk vectors taken from the "
        "embedding cache (bench/cache/vectors/). The figures are from the build (the first run); `cached` "
        "says the index was reused in this run.",
        table(["chunks", "articles", "cached", "encoding s (at build)", "ingest s without encoding",
               "build peak RSS MB"], rows),
        "Every ingest rebuilds the whole keyword index (`Ingestor._commit`: load the previous one's saved "
        "tokens, index, save; only new chunks are tokenized), so adding one article to an index of N chunks "
        "costs at least this (measured on its own, in a fresh process):",
        table(["chunks", "load tokens s", "index s", "save s", "total s", "on disk MB", "peak RSS MB"], rebuild),
    ])


def retrieval_section(sizes: list[dict]) -> str:
    lat_rows, ratio_rows, stage_rows = [], [], []
    for s in sizes:
        r = s["retrieval"]
        lat = r["latency_ms"]
        lat_rows.append([r["chunks"], *(pq(lat[name]) for name in RETRIEVAL_SERIES), pq(r["raw_sum_ms"])])
        ratio_rows.append([r["chunks"], ratio(lat["dense"], lat["raw_chroma"]),
                           ratio(lat["keyword"], lat["raw_bm25"]), ratio(lat["hybrid"], r["raw_sum_ms"]),
                           f"{r['hybrid_passages_mean']:.1f}"])
        st = r["hybrid_stages_ms"]
        stage_rows.append([r["chunks"], pq(st["dense_ms"]), pq(lat["raw_chroma_x4"]), pq(st["keyword_ms"]),
                           pq(lat["raw_bm25_x4"]), pq(st["fuse_ms"])])
    queries = sizes[0]["retrieval"]["queries"]
    return "\n\n".join([
        "## Retrieval latency",
        f"{queries} generated questions per size, k=5, milliseconds as p50 / p95. The raw calls and the "
        "Retriever's modes run one after another for each question, in a rotating order. `dense`, "
        "`keyword` and `hybrid` are `Retriever.search(question, 5, mode=..., query_vector=v)` with the "
        "question's vector precomputed, like the raw Chroma call; `hybrid+embed` embeds the question "
        "too (what a user waits for); `embed` is the question embedding alone; `raw sum` is, per "
        "question, raw Chroma + raw bm25.",
        table(["chunks", "raw Chroma", "raw bm25s", "dense", "keyword", "hybrid", "hybrid+embed", "embed",
               "raw sum"], lat_rows),
        "Ratios to the raw engines (p50 / p95):",
        table(["chunks", "dense / raw Chroma", "keyword / raw bm25s", "hybrid / raw sum", "passages returned"],
              ratio_rows),
        "Inside `hybrid` (its own `Retrieval.timings`), beside the raw engines asked for the 20 candidates "
        "(4 x k) the Retriever asks each ranker for:",
        table(["chunks", "dense_ms", "raw Chroma n=20", "keyword_ms", "raw bm25s k=20", "fuse_ms"], stage_rows),
    ])


def serving_section(sizes: list[dict], bundled: dict) -> str:
    def row(label, serving: dict) -> list:
        stages = serving["stages_ms"]
        return [label, serving["rss_mb"], serving["peak_rss_mb"], pq(serving["answer_ms"]),
                pq(stages["retrieve_ms"]), pq(stages["rank_ms"]), serving["first_answer_ms"],
                serving["ready_after_first_answer_s"]]

    rows = [row(f"{bundled['chunks']} (bundled corpus)", bundled["serving"])]
    rows += [row(s["retrieval"]["chunks"], s["serving"]) for s in sizes]
    return "\n\n".join([
        "## Memory and answers of a serving process, by corpus size",
        "A fresh process holding `Assistant.from_settings(...)` over the index, after 23 questions (the "
        "generated ones for the synthetic corpora). `answer` is `Assistant.stream` end to end, warm, "
        "over the last 20; `retrieve_ms` and `rank_ms` are from `Answer.timings`.",
        table(["chunks", "RSS MB", "peak RSS MB", "answer ms p50 / p95", "retrieve_ms p50 / p95",
               "rank_ms p50 / p95", "first answer ms", "ready after first answer s"], rows),
    ])


def ask_section(ask: dict) -> str:
    warm = ask["warm"]
    stage_rows = [[name, pq(stats)] for name, stats in warm["stages_ms"].items()]
    cold = ask["cold"]
    cold_rows = [[name, seconds] for name, seconds in cold["stages_s"]["seconds"].items()]
    heavy = ", ".join(cold["stages_s"]["heavy_modules_loaded"]) or "none"
    import_rows = [[i["package"], i["seconds"]] for i in cold["imports"]]
    parts = [
        "## Answers on the bundled corpus (offline default, extractive)",
        f"### Warm: {warm['asks']} answers in one process ({warm['questions']} questions of "
        "evals/questions.jsonl, each asked "
        f"{warm['asks'] // max(warm['questions'], 1)} times), through `Assistant.stream`",
        table(["", "p50 / p95 ms"], [["sources shown", pq(warm["latency_ms"]["sources_ms"])],
                                     ["first token", pq(warm["latency_ms"]["first_token_ms"])],
                                     ["whole answer", pq(warm["latency_ms"]["answer_ms"])]]),
        "By stage (`Answer.timings`; `retrieve_ms` holds embed + dense + keyword + fuse + "
        "`retrieve_other_ms`, the question's clean-up and rewrite; `generate_ms` holds `rank_ms` (neighbour "
        "chunks, sentence ranking, the abstain decision) + `compose_ms`):",
        table(["stage", "p50 / p95 ms"], stage_rows),
        f"### Cold: `rag ask \"...\" --json`, {cold['runs']} fresh processes",
        f"Wall time p50 **{cold['wall_s']['p50']:.2f} s**, p95 {cold['wall_s']['p95']:.2f} s "
        f"(the answer itself, inside: p50 {cold['first_answer_ms_inside']['p50']:.0f} ms). "
        f"A bare `python -c pass` takes {cold['python_startup_s']:.2f} s.",
        "Step by step, in a fresh process that does what `rag ask` does:",
        table(["step", "seconds"], cold_rows),
        f"Heavy packages loaded by the end of those two answers (of torch, sentence_transformers, "
        f"transformers, sklearn, scipy, pandas): {heavy}.",
        "`python -X importtime -m rag.cli ask ...`: each module's own import time, summed by package "
        "(importtime inflates the figures; compare the shares):",
        table(["package", "seconds"], import_rows),
    ]
    ui = ask.get("ui")
    if ui and "error" not in ui:
        lat = ui["latency_ms"]
        parts += [
            f"### The chat's API: `rag serve` + gradio_client streaming `/ask`, {ui['questions']} questions",
            f"The server answered HTTP {ui['server_ready_s']:.1f} s after `rag serve` started; its RSS after "
            f"the questions: {ui['server_rss_mb']:.0f} MB.",
            "The floor is bench/gradio_floor.py: an `/ask` endpoint of the same shape, served the same way, "
            "whose generator yields its three events at once: it is what Gradio and gradio_client cost "
            f"(gradio_client polls its message queue every 50 ms). Floor server RSS: "
            f"{ui['floor']['server_rss_mb']:.0f} MB.",
            "`in process` is a fresh `Assistant.stream` in the benchmark's process, asked the same questions "
            "in the same order (its sentence cache as cold as the server's). `added by the chat` = chat API - in "
            "process, at p50: what going through Gradio costs over calling the Python API. It is less than "
            "floor + in process, because the client's polling overlaps the server's work.",
            table(["", "chat API p50 / p95 ms", "Gradio floor p50 / p95 ms", "in process p50 / p95 ms",
                   "added by the chat (p50)"], [
                [label, pq(lat[key]), pq(ui["floor"]["latency_ms"][key]), pq(ui["in_process_ms"][key]),
                 f"{lat[key]['p50'] - ui['in_process_ms'][key]['p50']:.0f} ms"]
                for label, key in (("sources", "sources_ms"), ("first token", "first_token_ms"),
                                   ("whole answer", "answer_ms"))
            ]),
        ]
    elif ui:
        parts.append(f"### The chat's API\nNot measured: {ui['error']}. The in-process `Assistant.stream` "
                     "figures above (sources, first token) stand in for it.")
    return "\n\n".join(parts)


# -- targets -----------------------------------------------------------------------------------------


def targets(results: dict) -> list[tuple[str, bool | None, str]]:
    found = []
    if "ingest" in results:
        value = ingest_ratio(results["ingest"], "ratio")
        cpu = ingest_ratio(results["ingest"], "cpu_ratio")
        found.append(("ingest throughput >= 0.85x raw encode", value >= 0.85,
                      f"{value:.2f}x by wall clock (median of {len(results['ingest']['rounds'])} rounds), "
                      f"{cpu:.2f}x by CPU time"))
    big = [s for s in results.get("sizes", []) if s["size"] >= 100_000]
    if big:
        r = big[-1]["retrieval"]
        hybrid, raw = r["latency_ms"]["hybrid"]["p95"], r["raw_sum_ms"]["p95"]
        found.append((f"hybrid p95 at {r['chunks']:,} chunks <= 1.5x (raw Chroma + raw bm25s)",
                      hybrid <= 1.5 * raw, f"{hybrid:.1f} ms vs {raw:.1f} ms raw = {hybrid / raw:.2f}x"))
        found.append((f"hybrid p95 at {r['chunks']:,} chunks < 50 ms (question vector given)", hybrid < 50,
                      f"{hybrid:.1f} ms"))
        with_embed = r["latency_ms"]["hybrid+embed"]["p95"]
        found.append((f"hybrid p95 at {r['chunks']:,} chunks < 50 ms, embedding the question included",
                      with_embed < 50, f"{with_embed:.1f} ms"))
    if "ask" in results:
        warm = results["ask"]["warm"]["latency_ms"]["answer_ms"]["p50"]
        found.append(("warm ask p50 < 100 ms (bundled corpus)", warm < 100, f"{warm:.1f} ms"))
        cold = results["ask"]["cold"]["wall_s"]
        found.append(("cold `rag ask` < 6 s", cold["p95"] < 6,
                      f"p50 {cold['p50']:.2f} s, p95 {cold['p95']:.2f} s over {cold['n']} runs"))
    return found


def targets_section(results: dict) -> str:
    rows = [[name, "met" if ok else "**missed**", figure] for name, ok, figure in targets(results)]
    return "## Targets\n\n" + table(["target", "", "figure"], rows)


# -- the plot ------------------------------------------------------------------------------------------


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = results["sizes"]
    chunks = [s["retrieval"]["chunks"] for s in sizes]
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5))
    for name in ("raw_chroma", "raw_bm25", "dense", "keyword", "hybrid", "hybrid+embed"):
        lat = [s["retrieval"]["latency_ms"][name] for s in sizes]
        left.plot(chunks, [x["p50"] for x in lat], "o-", color=COLORS[name], label=f"{name} p50")
        left.plot(chunks, [x["p95"] for x in lat], "s--", color=COLORS[name], alpha=0.6, label=f"{name} p95")
    left.axhline(50, color="black", linewidth=0.8, linestyle=":", label="50 ms target")
    left.set(xscale="log", yscale="log", xlabel="chunks in the index", ylabel="ms per query (k=5)",
             title="Retrieval latency against corpus size")
    left.legend(fontsize=7, ncol=3, loc="upper left")
    left.grid(True, which="both", alpha=0.3)
    answers = [s["serving"]["answer_ms"] for s in sizes]
    right.plot(chunks, [a["p50"] for a in answers], "o-", color="tab:red", label="answer p50 (warm)")
    right.plot(chunks, [a["p95"] for a in answers], "s--", color="tab:red", alpha=0.6, label="answer p95 (warm)")
    right.set(xscale="log", xlabel="chunks in the index", ylabel="ms per answer",
              title="Warm answer latency and serving RSS")
    right.grid(True, which="both", alpha=0.3)
    memory = right.twinx()
    memory.plot(chunks, [s["serving"]["rss_mb"] for s in sizes], "^-", color="tab:blue", label="serving RSS")
    memory.set_ylabel("RSS MB")
    right.set_ylim(bottom=0)
    memory.set_ylim(bottom=0)
    handles = right.get_legend_handles_labels()
    extra = memory.get_legend_handles_labels()
    right.legend(handles[0] + extra[0], handles[1] + extra[1], fontsize=8, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# -- the whole report -------------------------------------------------------------------------------


def markdown(results: dict, plot_name: str) -> str:
    parts = [
        "# Benchmarks",
        f"One run of `{results['command']}`, started {results['started']}, took "
        f"{results['seconds'] / 60:.1f} min ({results['timing_note']}). Raw data: bench/cache/results.json.",
        targets_section(results),
        machine_section(results),
    ]
    if "ingest" in results:
        parts.append(ingest_section(results["ingest"]))
    if "sidecar" in results:
        parts.append(sidecar_section(results["sidecar"]))
    if results.get("sizes"):
        parts += [builds_section(results["sizes"]), retrieval_section(results["sizes"]),
                  f"![latency against corpus size]({plot_name})"]
    if "ask" in results:
        if results.get("sizes"):
            parts.append(serving_section(results["sizes"], results["ask"]["bundled"]))
        parts.append(ask_section(results["ask"]))
    parts.append("## Step durations\n\n" + table(["step", "seconds"], [[k, v] for k, v in results["steps"].items()]))
    if results.get("notes"):
        parts.append("## Notes\n\n" + results["notes"])
    return "\n\n".join(parts) + "\n"
