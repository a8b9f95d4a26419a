"""`python -m bench.run`: every benchmark, then bench/results.md and bench/latency.png.

    python -m bench.run                       # sizes 1k, 10k, 100k chunks (see bench/README.md)
    python -m bench.run --quick               # 1k only, fewer repetitions: checks that it all works
    python -m bench.run --sizes 1000,10000 --only retrieval
    python -m bench.run --only llm            # the LLM path's time, through a local llama.cpp server

Each benchmark runs in a fresh process. The first run builds the synthetic indexes (embedding
~100k chunks takes about an hour on two busy cores) and the BBC News index (about 6 min); later
runs reuse them from bench/cache/. The BBC corpus is read where evals/suites.json says it lies;
without it the BBC figures are skipped, with a message.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from bench import report
from bench.common import BENCH, CACHE, in_fresh_process, load_average, log, machine
from rag.settings import PRESETS

PARTS = ("ingest", "retrieval", "ask", "ui", "llm")
BBC_QUESTIONS = "evals/suites/bbc/questions.jsonl"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000", help="index sizes in chunks, comma-separated")
    parser.add_argument("--quick", action="store_true", help="1k chunks only, fewer repetitions")
    parser.add_argument("--only", default=",".join(PARTS), help=f"parts to run, from {', '.join(PARTS)}")
    parser.add_argument("--seed", type=int, default=1, help="seed of the synthetic corpus")
    parser.add_argument("--queries", type=int, help="retrieval questions per size (default 300; quick 50)")
    parser.add_argument("--ingest-chunks", type=int, help="chunks in the ingest benchmark (default 1000; quick 300)")
    parser.add_argument("--ingest-rounds", type=int, help="ingest/raw rounds, alternating order (default 4)")
    parser.add_argument("--cold-runs", type=int, help="fresh `rag ask` processes (default 7; quick 2)")
    parser.add_argument("--warm-passes", type=int, help="passes over evals/questions.jsonl (default 1: a repeated question "
                        "finds its sentence vectors cached)")
    parser.add_argument("--ui-questions", type=int, help="questions through the chat API (default 30; quick 5)")
    parser.add_argument("--serving-questions", type=int, help="warm answers timed in each serving process "
                        "(default 50; quick 20)")
    parser.add_argument("--llm-questions", type=int, help="questions per suite through the LLM (default 20; quick 3)")
    parser.add_argument("--llm-presets", default="default,plain",
                        help="presets each LLM question is asked under, in turn, comma-separated (default: default,plain)")
    parser.add_argument("--no-bbc", action="store_true", help="skip the BBC News corpus in every part")
    parser.add_argument("--out", type=Path, default=BENCH / "results.md")
    parser.add_argument("--report-only", action="store_true", help="rewrite the report from bench/cache/results.json")
    args = parser.parse_args(argv)
    defaults = {"queries": (300, 50), "ingest_chunks": (1000, 300), "ingest_rounds": (4, 2), "cold_runs": (7, 2),
                "warm_passes": (1, 1), "ui_questions": (30, 5), "serving_questions": (50, 20),
                "llm_questions": (20, 3)}
    for name, (full, quick) in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
    if args.quick and args.sizes == parser.get_default("sizes"):
        args.sizes = "1000"
    args.llm_presets = tuple(args.llm_presets.split(","))
    unknown = set(args.llm_presets) - set(PRESETS)
    if unknown:
        parser.error(f"unknown preset {', '.join(sorted(unknown))}; choose from {', '.join(PRESETS)}")
    return args


def run(args: argparse.Namespace) -> dict:
    parts = set(args.only.split(","))
    results: dict = {"started": time.strftime("%Y-%m-%d %H:%M:%S"), "load_start": load_average(),
                     "machine": machine(), "command": "python -m bench.run " + " ".join(sys.argv[1:]), "steps": {}}
    started = time.perf_counter()

    def step(name: str, target: str, **kwargs):
        log(f"{name} ...")
        began = time.perf_counter()
        value = in_fresh_process(target, **kwargs)
        results["steps"][name] = round(time.perf_counter() - began, 1)
        log(f"{name}: {results['steps'][name]} s")
        return value

    if "ingest" in parts:
        results["ingest"] = step("ingest throughput", "bench.ingest_bench:run", chunks=args.ingest_chunks,
                                 repeats=args.ingest_rounds)
        if not args.no_bbc:
            results["ingest_bbc"] = skipped_or(step("ingest throughput BBC", "bench.ingest_bench:run",
                                                    chunks=args.ingest_chunks, repeats=args.ingest_rounds,
                                                    corpus="bbc"))
        results["sidecar"] = step("sidecar scan", "bench.ingest_bench:sidecar_scan",
                                  counts=(250, 1000) if args.quick else (250, 1000, 4000))
    if "retrieval" in parts:
        results["sizes"] = []
        for size in sorted(int(s) for s in args.sizes.split(",")):
            build = step(f"index {size}", "bench.indexes:synthetic_index", size=size, seed=args.seed)
            where = {"index_dir": build["index_dir"], "corpus_dir": build["corpus_dir"]}
            results["sizes"].append({
                "size": size,
                "build": build,
                "retrieval": step(f"retrieval {size}", "bench.retrieval_bench:run", queries=args.queries,
                                  seed=args.seed, **where),
                "serving": step(f"serving {size}", "bench.ask_bench:serving", seed=args.seed,
                                questions=args.serving_questions, **where),
                "keyword_rebuild": step(f"keyword rebuild {size}", "bench.ingest_bench:keyword_rebuild",
                                        index_dir=build["index_dir"]),
            })
    if parts & {"ask", "ui"}:
        bundled = step("bundled index", "bench.indexes:bundled_index")
        where = {"index_dir": bundled["index_dir"], "corpus_dir": bundled["corpus_dir"]}
        ask = results["ask"] = {"bundled": bundled}
        bundled["serving"] = step("serving bundled", "bench.ask_bench:serving", questions=args.serving_questions,
                                  questions_file="evals/questions.jsonl", **where)
        ask["warm"] = step("warm ask", "bench.ask_bench:warm", passes=args.warm_passes, **where)
        ask["cold"] = step("cold rag ask", "bench.ask_bench:cold", runs=args.cold_runs, **where)
        if "ui" in parts:
            try:
                ask["ui"] = step("chat API", "bench.ask_bench:ui", questions=args.ui_questions, **where)
            except Exception as exc:  # a chat that fails to start is reported; the other figures stand
                ask["ui"] = {"error": f"{exc.__class__.__name__}: {exc}"}
        if not args.no_bbc:
            results["bbc"] = bbc(args, parts, step)
    if "llm" in parts:
        results["llm"] = skipped_or(step("LLM path", "bench.llm_bench:run", questions=args.llm_questions,
                                                        presets=args.llm_presets))
    results["seconds"] = time.perf_counter() - started
    results["load_end"] = load_average()
    built = [s["size"] for s in results.get("sizes", []) if not s["build"]["cached"]]
    results["timing_note"] = f"built the indexes of {built} in this run" if built else "all indexes cached"
    return results


def bbc(args: argparse.Namespace, parts: set[str], step) -> dict:
    """The BBC News corpus: its index (built on the first run), a serving process, warm and cold
    answers to the BBC suite's questions, and the chat served over it."""
    index = skipped_or(step("BBC index", "bench.indexes:bbc_index"))
    if "missing" in index:
        return index
    where = {"index_dir": index["index_dir"], "corpus_dir": index["corpus_dir"], "questions_file": BBC_QUESTIONS}
    found = {"index": index}
    found["serving"] = step("serving BBC", "bench.ask_bench:serving", questions=args.serving_questions, **where)
    found["warm"] = step("warm ask BBC", "bench.ask_bench:warm", passes=args.warm_passes, **where)
    found["cold"] = step("cold rag ask BBC", "bench.ask_bench:cold", runs=args.cold_runs, **where)
    if "ui" in parts:
        try:
            found["ui"] = step("chat API BBC", "bench.ask_bench:ui", questions=args.ui_questions, floor=False, **where)
        except Exception as exc:
            found["ui"] = {"error": f"{exc.__class__.__name__}: {exc}"}
    return found


def skipped_or(result: dict) -> dict:
    """The result, after saying so loudly when a part was skipped for want of its corpus or model."""
    if "missing" in result:
        log(f"SKIPPED: {result['missing']}")
    return result


def write(results: dict, out: Path) -> None:
    plot_path = out.with_name("latency.png")
    if results.get("sizes"):
        report.plot(results, plot_path)
    findings = BENCH / "findings.md"
    if findings.exists():
        results["notes"] = findings.read_text()
    out.write_text(report.markdown(results, plot_path.name))
    log(f"wrote {out}" + (f" and {plot_path}" if results.get("sizes") else ""))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    saved = CACHE / "results.json"
    if args.report_only:
        results = json.loads(saved.read_text())
    else:
        results = run(args)
        CACHE.mkdir(parents=True, exist_ok=True)
        saved.write_text(json.dumps(results, indent=1))
    write(results, args.out)
    print(report.markdown({**results, "notes": ""}, "latency.png"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
