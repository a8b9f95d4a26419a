"""`python -m rag.models`: install the LLM runtime alone, as `rag model install` would with the
first local model (scripts/setup --llm runs this)."""

import sys

from rag.models.progress import ModelError, Progress, Reporter
from rag.models.runtime import ensure_runtime


def main() -> int:
    def show(progress: Progress) -> None:
        print(f"runtime: {progress.message}", flush=True)

    try:
        ensure_runtime(Reporter(show))
    except ModelError as exc:
        print(f"runtime: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
