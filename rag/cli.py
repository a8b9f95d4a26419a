"""`rag`: a thin command line over the public Python API (rag.Assistant, rag.Ingestor, rag.evals.runs).

Heavy libraries are imported inside the commands that use them, so `rag ask` does not pay for
Gradio and `rag --help` pays for nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import sys
from pathlib import Path

from pydantic import ValidationError

from rag.settings import PRESETS, Settings

EXIT_USAGE, EXIT_FAILURE = 2, 1
EXIT_BROKEN_PIPE = 128 + 13  # as a shell reports a process ended by SIGPIPE


def _settings_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("settings (each also read from RAG_<NAME>)")
    group.add_argument("--corpus-dir", type=Path)
    group.add_argument("--index-dir", type=Path)
    group.add_argument("--chroma-url", help="a `chroma run` server instead of the embedded store")
    group.add_argument("--embed-model", help="a local sentence-transformers folder")
    group.add_argument("-k", "--top-k", type=int, help="passages retrieved")
    group.add_argument("--retrieval", choices=["hybrid", "dense", "keyword"])
    group.add_argument(
        "--llm",
        choices=["extractive", "openai", "llamacpp", "auto"],
        help="answer backend (auto: a configured model, else a model server on this machine, else extractive)",
    )
    group.add_argument("--openai-base-url")
    group.add_argument("--openai-model")
    group.add_argument("--gguf-path", type=Path)
    group.add_argument("--date-from", help="only articles published on or after YYYY-MM-DD")
    group.add_argument("--date-to", help="only articles published on or before YYYY-MM-DD")
    group.add_argument("--publisher", help="only articles from this publisher")
    group.add_argument(
        "--min-confidence", type=float, help="withhold answers below this confidence (default: the fitted one)"
    )


def _settings_from(args: argparse.Namespace) -> Settings:
    fields = set(Settings.model_fields)
    return Settings().with_overrides(**{k: v for k, v in vars(args).items() if k in fields})


class _Parser(argparse.ArgumentParser):
    """A parser whose closing text may be worked out only when its help is shown (`rag ask --help`
    lists example questions about the corpus in the index, which takes reading its manifest)."""

    def __init__(self, *args, epilog_from=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.epilog_from = epilog_from

    def format_help(self) -> str:
        if self.epilog_from:
            self.epilog = self.epilog_from()
        return super().format_help()


def _example_questions() -> str:
    from rag.index.examples import corpus_examples
    from rag.index.manifest import Manifest

    try:
        settings = Settings()
        examples = corpus_examples(settings.corpus_dir, Manifest.load(settings.index_dir))
    except (ValidationError, OSError, ValueError, RuntimeError):
        return ""
    if not examples:
        return "Examples appear here once the corpus is indexed (rag ingest)."
    return "examples, about the articles in the index:\n" + "\n".join(f"  rag ask {shlex.quote(e.question)}"
                                                                       for e in examples)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="rag", description="Question answering over news articles, with citations.")
    commands = parser.add_subparsers(dest="command", required=True)

    ingest = commands.add_parser("ingest", help="add, update and remove articles in the index")
    ingest.add_argument("paths", nargs="*", type=Path, help="files or folders (default: the corpus folder)")
    ingest.add_argument("--rebuild", action="store_true", help="start the index afresh")
    ingest.add_argument("--quiet", action="store_true", help="no progress bar")

    search = commands.add_parser("search", help="print the ranked passages for a query")
    search.add_argument("query")

    ask = commands.add_parser("ask", help="answer a question with cited passages", epilog_from=_example_questions,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    ask.add_argument("question")
    ask.add_argument("--json", action="store_true", help="print the answer as one JSON object")

    evaluate = commands.add_parser("eval", help="score the assistant on a question set or on eval suites")
    which = evaluate.add_mutually_exclusive_group(required=True)
    which.add_argument(
        "--dataset", type=Path, help="a JSON-lines question set over the configured corpus, or SQuAD v2 JSON"
    )
    which.add_argument(
        "--suite",
        nargs="+",
        metavar="NAME",
        help="suites from evals/suites.json (bundled, bbc, squad, or all), each with its own corpus and index",
    )
    evaluate.add_argument("--out", type=Path, required=True)
    evaluate.add_argument(
        "--compare",
        nargs="*",
        metavar="PRESET",
        help=f"run these presets side by side (default set if none named): {', '.join(PRESETS)}",
    )
    evaluate.add_argument("--limit", type=int, help="only the first N questions")

    calibrate = commands.add_parser(
        "calibrate",
        help="fit the answer confidence on the eval suites (writes rag/answer/confidence.json), or with "
        "--answerability the LLM answerability threshold on recorded runs (rag/answer/answerability.json)",
    )
    calibrate.add_argument("--suite", nargs="+", default=["all"], metavar="NAME", help="suites to fit on")
    calibrate.add_argument(
        "--target-precision", type=float, help="pooled precision the threshold keeps (default 0.62)"
    )
    calibrate.add_argument("--out", type=Path, default=Path("evals/runs/calibration"), help="where the runs go")
    calibrate.add_argument(
        "--answerability",
        nargs="+",
        type=Path,
        metavar="RUN_DIR",
        help="fit the answerability threshold on these recorded LLM runs (a folder per suite) instead",
    )
    calibrate.add_argument(
        "--model",
        help="with --answerability: the model the runs were made with, as `rag model list` names it, when "
        "the server named it otherwise (the fitted chance is shown only with that model's answers)",
    )

    from rag.reader.training import Recipe  # light: torch is imported only when training runs

    train = commands.add_parser(
        "train-reader",
        help="make training pairs from article text and fine-tune the reader (writes .models/reader/)",
    )
    train.add_argument("--corpus", nargs="+", type=Path, default=[Path("corpus")], metavar="FOLDER",
                       help="article folders the questions are made from (never an eval suite's questions)")
    train.add_argument("--questions", type=int, default=Recipe.questions, help="questions to generate")
    train.add_argument("--seed", type=int, default=Recipe.seed)
    train.add_argument("--epochs", type=int, default=Recipe.epochs, help="passes over the pairs")
    train.add_argument("--training-seed", type=int, default=None,
                       help="the fine-tuning's own seed (default: --seed): the same pairs, trained again")
    train.add_argument("--context", action="store_true",
                       help="read each sentence with its article's title and the sentence before it")
    train.add_argument("--written", type=int, default=0,
                       help="questions a local language model writes in its own words, besides the generated ones")
    train.add_argument("--near-misses", type=int, default=0,
                       help="questions the writer also writes that a written question's sentence does not answer")
    train.add_argument("--writer", default=None,
                       help="the installed model that writes them (default: the one rag model use chose)")
    train.add_argument("--out", type=Path, default=None, help="where the reader goes (default: .models/reader/)")
    train.add_argument("--work", type=Path, default=Path(".models/reader-training"),
                       help="where the pairs and the unquantised model go")

    model = commands.add_parser("model", help="install, choose and remove local language models")
    model_commands = model.add_subparsers(dest="model_command", required=True)
    model_commands.add_parser("list", help="the catalogue, what is installed (✓), the default (★), and Ollama's models")
    install = model_commands.add_parser("install", help="download, verify and install a model (and the runtime)")
    install.add_argument("name", help="a catalogue name, a .gguf file's path, an http(s) URL, or ollama:NAME")
    install.add_argument("--sha256", help="what a path's or URL's file must hash to")
    remove = model_commands.add_parser("remove", help="delete an installed model (from Ollama too, for ollama:NAME)")
    remove.add_argument("name")
    use = model_commands.add_parser("use", help="make an installed model the one RAG_LLM=auto answers with")
    use.add_argument("name")

    serve = commands.add_parser("serve", help="start the chat in the browser")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=_port, default=7860)

    for sub in (ingest, search, ask, evaluate, calibrate, serve):
        _settings_flags(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from pydantic_settings import SettingsError

    args = build_parser().parse_args(argv)
    try:
        settings = _settings_from(args)
    except ValidationError as exc:
        print(f"rag {args.command}: {_settings_problem(exc, args)}", file=sys.stderr)
        return EXIT_USAGE
    except SettingsError as exc:  # a list or mapping variable that is not JSON
        print(f"rag {args.command}: {_unparsable_variable(exc)}", file=sys.stderr)
        return EXIT_USAGE
    try:
        return COMMANDS[args.command](args, settings) or 0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader stopped early (`rag ask ... | head`): what it read is enough
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except Exception as exc:  # one clear line for the user, not a traceback
        if _is_user_error(exc):
            print(f"rag {args.command}: {exc}", file=sys.stderr)
            return EXIT_USAGE if exc.__class__.__name__ == "QuestionError" else EXIT_FAILURE
        if _is_store_error(exc):
            print(
                f"rag {args.command}: the vector store failed ({exc}). If an ingest was interrupted, "
                "`rag ingest --rebuild` rebuilds the index from the corpus.",
                file=sys.stderr,
            )
            return EXIT_FAILURE
        raise


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so that the flush at exit does not fail on the closed pipe again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


def _settings_problem(exc: ValidationError, args: argparse.Namespace) -> str:
    """A bad flag or RAG_ variable in one line per field: "--date-from (RAG_DATE_FROM) '2024-13-01':
    month value is outside expected range of 1-12" (just the variable for a field with no flag)."""
    problems = []
    for error in exc.errors():
        field = str(error["loc"][0]) if error["loc"] else "settings"
        variable = f"RAG_{field.upper()}"
        name = f"--{field.replace('_', '-')} ({variable})" if field in vars(args) else variable
        value = f" {str(error.get('input'))[:60]!r}" if "input" in error else ""
        message = error["msg"].replace("Input should", "should").removeprefix("Value error, ")
        problems.append(f"{name}{value}: {message}")
    return "; ".join(problems)


def _unparsable_variable(exc: Exception) -> str:
    found = re.search(r'field "(\w+)"', str(exc))
    variable = f"RAG_{found.group(1).upper()}" if found else "a RAG_ variable"
    return f"{variable} cannot be read: a list is written as JSON, like [11434, 1234]"


def _port(value: str) -> int:
    try:
        port = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a port number") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a port number (1 to 65535)")
    return port


def _is_user_error(exc: Exception) -> bool:
    from pydantic import ValidationError

    names = {
        "QuestionError",
        "IndexMissing",
        "IndexDamaged",
        "IndexMismatch",
        "StoreUnavailable",
        "ModelNotFound",
        "LLMUnavailable",
        "SuiteError",
        "DatasetError",
        "ModelError",
    }
    return exc.__class__.__name__ in names or isinstance(exc, ValidationError | RuntimeError | OSError)


def _is_store_error(exc: Exception) -> bool:
    # Chroma's embedded store can be left unreadable by a process killed while it saved its vector
    # index (chroma-core/chroma#7510, #7678). The articles are safe in the corpus: say how to rebuild.
    from rag.index.store import is_chroma_error

    return is_chroma_error(exc)


def cmd_ingest(args, settings: Settings) -> int:
    from rag.index.ingestor import Ingestor

    report = Ingestor(settings).run(args.paths or None, rebuild=args.rebuild, show_progress=not args.quiet)
    print(report.summary())
    return 0


def cmd_search(args, settings: Settings) -> int:
    from rag.assistant import Assistant, clean_question

    # Checked before the model loads, so a bad query is refused at once, not after seconds.
    clean_question(args.query, settings.max_question_chars)
    retrieval = Assistant.from_settings(settings).search(args.query)
    for rank, passage in enumerate(retrieval.passages, 1):
        ranks = ", ".join(f"{name} #{r}" for name, r in passage.ranks.items())
        print(f"{rank}. {passage.source}  [{passage.title}]  cosine {passage.similarity:.2f} ({ranks})")
        print("   " + passage.text.replace("\n", " ")[:300])
    if not retrieval.passages:
        print("no passages found")
    return 0


def cmd_ask(args, settings: Settings) -> int:
    from rag.assistant import Assistant, Final, Replace, Token, clean_question

    # Checked before the model loads, so a bad question is refused at once, not after seconds.
    clean_question(args.question, settings.max_question_chars)
    assistant = Assistant.from_settings(settings)
    streaming = not args.json and sys.stdout.isatty()
    answer = None
    for event in assistant.stream(args.question):
        if streaming and isinstance(event, Token):
            print(event.text, end="", flush=True)
        elif streaming and isinstance(event, Replace):
            print(f"\n[the model's answer was replaced: {event.reason}]\n{event.text}", end="")
        elif isinstance(event, Final):
            answer = event.answer
    if args.json:
        print(json.dumps(answer.to_dict(), ensure_ascii=False))
    else:
        # The streamed draft is not what was kept when sentences were cited or left out afterwards.
        rewritten = bool(answer.dropped or answer.attributed)
        if streaming and rewritten:
            print("\n")
        print(format_answer(answer, already_printed=streaming and not rewritten))
    return 0


def format_answer(answer, already_printed: bool = False) -> str:
    lines = [] if already_printed else [answer.answer]
    if answer.fallback:
        lines.append(
            f"(the {answer.backend} answer failed validation: {answer.fallback}; showing the extractive one)"
        )
    if answer.dropped:
        lines.append("(left out, no passage supports it: " + " ".join(answer.dropped) + ")")
    if answer.searched:
        lines.append(f"(searched as: {answer.searched})")
    lines.append("")
    for citation in answer.citations:
        published = f", {citation.published}" if citation.published else ""
        publisher = f", {citation.publisher}" if citation.publisher else ""
        lines.append(f"[{citation.n}] {citation.title}{publisher}{published} — {citation.source}")
        lines.append(f"    “{citation.quote}”")
    if answer.nearest:
        lines.append("Nearest passages, judged not to answer it, each with its sentence closest to the question:")
        for citation in answer.nearest:
            lines.append(f"  - {citation.title} — {citation.source}: “{citation.quote or citation.text[:160] + '…'}”")
    confidence = "" if answer.confidence is None else f", confidence {answer.confidence:.0%}"
    lines.append(f"({answer.timings['total_ms']:.0f} ms, {answer.answered_by()}{confidence})")
    return "\n".join(lines)


def cmd_eval(args, settings: Settings) -> int:
    from rag.evals.runs import run_eval, run_suites

    if args.suite:
        return run_suites(settings, args.suite, args.out, compare=args.compare, limit=args.limit)
    return run_eval(settings, args.dataset, args.out, compare=args.compare, limit=args.limit)


def cmd_calibrate(args, settings: Settings) -> int:
    from rag.evals import calibrate as calibration

    if args.answerability:
        fitted = calibration.calibrate_answerability(args.answerability, model=args.model)
        calibration.print_answerability_summary(fitted, calibration.answerability.THRESHOLD_FILE)
        return 0
    target = args.target_precision or calibration.DEFAULT_TARGET_PRECISION
    fitted = calibration.calibrate(settings, args.suite, args.out, target)
    calibration.print_summary(fitted, calibration.MODEL_FILE)
    return 0


def cmd_train_reader(args, settings: Settings) -> int:
    from rag.index.embeddings import default_model_path
    from rag.reader import training
    from rag.reader.model import READER_DIR

    # The reader starts from the MiniLM the project ships, whatever embedding model is configured.
    base_model = default_model_path()
    writer = _writer_model(args.writer, settings) if args.written else None
    recipe = training.Recipe(
        corpora=[str(c) for c in args.corpus], questions=args.questions, seed=args.seed, epochs=args.epochs,
        context=args.context, written=args.written, writer=writer.name if writer else "",
        near_misses=args.near_misses,
        training_seed=args.training_seed,
    )
    complete = _writer_call(writer) if writer else None
    record = training.train_reader(
        recipe, base_model, args.out or READER_DIR, args.work, log=training.main_log, complete=complete
    )
    print(f"trained on {record['pairs']} pairs from {record['articles']} articles in {record['minutes']} min; "
          f"held-out AUC {record['held_out_auc']}; wrote {record['file']} ({record['bytes'] / 1e6:.1f} MB)")
    return 0


def _writer_model(name: str | None, settings: Settings):
    import rag.models as models

    model = models.find_installed(name, settings) if name else models.default_model(settings)
    if model is None or model.served_by_ollama:
        raise SystemExit(f"no installed GGUF model {name or '(no default)'} to write questions: rag model list")
    return model


def _writer_call(model):
    from functools import cache

    from rag.answer.backends import LlamaCppChat

    # Loaded on the first question to write: a rerun whose questions are all kept never loads it.
    # One context for each system prompt, because llama.cpp reuses the prompt its context read last
    # only as far as the new one starts the same, and the writer and the checker take turns.
    @cache
    def chat(system_prompt: str) -> LlamaCppChat:
        return LlamaCppChat(model.path, max_tokens=64, timeout_s=120)

    return lambda messages: "".join(chat(messages[0]["content"]).stream(messages))


def cmd_model(args, settings: Settings) -> int:
    import rag.models as models

    if args.model_command == "list":
        print(format_models(settings))
    elif args.model_command == "install":
        try:
            with ProgressLine() as show:
                model = models.install(args.name, settings, progress=show, sha256=args.sha256)
        except KeyboardInterrupt:
            print("interrupted: the same command goes on where this one stopped", file=sys.stderr)
            return 130
        print(f"installed {model.name} ({model.source if model.served_by_ollama else model.path}); "
              + _who_answers(model, settings))
    elif args.model_command == "remove":
        print(models.remove(args.name, settings))
    elif args.model_command == "use":
        models.use(args.name, settings)
        print(f"RAG_LLM=auto now answers with {args.name}")
    return 0


def _who_answers(model, settings: Settings) -> str:
    import rag.models as models

    default = models.default_model(settings)
    if settings.openai_base_url or settings.gguf_path:
        return "RAG_OPENAI_BASE_URL or RAG_GGUF_PATH, set here, still comes first for RAG_LLM=auto"
    if default.name != model.name:
        return f"RAG_LLM=auto answers with {default.name}: rag model use {model.name} to change"
    return "RAG_LLM=auto now answers with it"


def format_models(settings: Settings) -> str:
    """The catalogue, with what is installed (✓) and the default (★); then other installed models
    and Ollama's, when it answers."""
    import rag.models as models
    from rag.models.progress import size_text

    installed = {m.name: m for m in models.installed(settings)}
    default = models.default_model(settings)

    def mark(name: str) -> str:
        return ("★" if default and default.name == name else " ") + ("✓" if name in installed else " ")

    lines = ["   name                 size     licence     title"]
    for entry in models.catalogue():
        lines.append(f"{mark(entry.name)} {entry.name:<20} {size_text(entry.size_bytes):<8} {entry.licence:<11} {entry.title}")
        lines.append(f"{'':24}from {entry.source}")
    catalogued = {entry.name for entry in models.catalogue()}
    for model in installed.values():
        if model.name not in catalogued:
            lines.append(f"{mark(model.name)} {model.name:<20} {size_text(model.size_bytes):<8} {'':<11} from {model.source}")
    ollama = models.ollama_models(settings)
    if ollama:
        lines.append(f"Ollama at {settings.ollama_url} (rag model use ollama:NAME):")
        for name, size in ollama:
            lines.append(f"{mark('ollama:' + name)} ollama:{name:<13} {size_text(size)}")
    lines.append("✓ installed  ★ the one RAG_LLM=auto answers with   rag model install NAME | use NAME | remove NAME")
    return "\n".join(lines)


class ProgressLine:
    """An install's progress: one line redrawn in place on a terminal; elsewhere (a log), a line
    per stage and at most one every LOG_INTERVAL_S within it."""

    LOG_INTERVAL_S = 5.0

    def __init__(self):
        self.on_terminal = sys.stderr.isatty()
        self.stage = ""
        self.last_logged = 0.0

    def __enter__(self):
        return self

    def __call__(self, progress) -> None:
        import time

        if self.on_terminal:
            print(f"\r\033[K{progress.message}", end="", file=sys.stderr, flush=True)
        elif progress.stage != self.stage or time.monotonic() - self.last_logged >= self.LOG_INTERVAL_S:
            print(progress.message, file=sys.stderr, flush=True)
            self.last_logged = time.monotonic()
        self.stage = progress.stage

    def __exit__(self, *exc_info) -> None:
        if self.on_terminal and self.stage:
            print(file=sys.stderr)


def cmd_serve(args, settings: Settings) -> int:
    from ui.app import serve

    serve(settings, host=args.host, port=args.port)
    return 0


COMMANDS = {
    "ingest": cmd_ingest,
    "search": cmd_search,
    "ask": cmd_ask,
    "eval": cmd_eval,
    "calibrate": cmd_calibrate,
    "train-reader": cmd_train_reader,
    "model": cmd_model,
    "serve": cmd_serve,
}

if __name__ == "__main__":
    sys.exit(main())
