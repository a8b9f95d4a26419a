"""The layout of rag/: stage packages whose imports run one way, and no import circle.

Imports inside functions count too: a lazy import ties two modules together as much as any.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# A module imports only from its own layer or lower ones: the stages in the order data flows
# through them, then the public API over them, the eval that calls that API, and the CLI on top.
LAYERS = (
    ("rag.settings",),
    ("rag.ingest",),
    ("rag.index",),
    ("rag.reader",),
    ("rag.models",),
    ("rag.answer",),
    ("rag.assistant", "rag.langchain"),
    ("rag.evals",),
    ("rag.cli", "rag"),
)
# What ui/ may import: the public API.
PUBLIC = {"rag", "rag.assistant", "rag.models", "rag.settings"}


def module_names(package: str) -> dict[str, Path]:
    """Every module under the package folder, by dotted name (a package by its own name)."""
    modules = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def imported(path: Path, name: str, known: set[str]) -> set[str]:
    """The rag modules this module imports, anywhere in it. `from rag.answer import text` is an
    import of rag.answer.text; `from rag import Settings` one of rag itself."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base)
    return {m for m in found if m in known and m != name}


def import_graph(package: str = "rag") -> dict[str, set[str]]:
    modules = module_names(package)
    return {name: imported(path, name, set(modules)) for name, path in modules.items()}


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan's algorithm)."""
    index, low, stack, on_stack, groups = {}, {}, [], set(), []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return groups


def layer(module: str) -> int | None:
    """The module's layer: that of the longest listed name it is or is inside of; None for a
    package not placed yet."""
    best, best_length = None, -1
    for number, names in enumerate(LAYERS):
        for name in names:
            if (module == name or module.startswith(name + ".")) and len(name) > best_length:
                best, best_length = number, len(name)
    return None if best_length == len("rag") and module != "rag" else best


def test_rag_has_no_import_circle():
    graph = import_graph()
    assert len(graph) > 40 and graph["rag.answer.extractive"], "the graph was read"
    assert circles(graph) == []


def test_imports_run_from_the_stages_up_to_the_cli():
    upward = [
        f"{module} imports {target}"
        for module, targets in import_graph().items()
        for target in targets
        if layer(module) is not None and layer(target) is not None and layer(target) > layer(module)
    ]
    assert upward == []


def test_the_ui_imports_only_the_public_api():
    known = set(module_names("rag"))
    outside = {
        f"{path.name} imports {target}"
        for path in sorted((ROOT / "ui").glob("*.py"))
        for target in imported(path, f"ui.{path.stem}", known)
        if target not in PUBLIC
    }
    assert outside == set()


def test_importing_the_packages_loads_no_heavy_library():
    code = (
        "import sys, rag, rag.ingest, rag.index, rag.answer, rag.evals\n"
        "print(sorted(m for m in ('torch', 'gradio', 'chromadb', 'spacy', 'matplotlib') if m in sys.modules))"
    )
    shown = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert shown.stdout.strip() == "[]"
