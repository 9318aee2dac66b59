"""The package's modules import each other without a circle.

Every ``import`` counts, those inside functions too: a deferred import hides a circle at start-up but
still makes two modules need each other. Importing ``latentcot.a.b`` runs ``latentcot/a/__init__.py``
first, so it counts as importing that package as well (unless the package is the importing module's
own, which Python has already started importing by then).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "src" / "latentcot"


def module_name(path: Path) -> str:
    parts = ("latentcot", *path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in ROOT.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            targets = []
            if isinstance(node, ast.ImportFrom):
                base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
                module = ".".join(base + ([node.module] if node.module else []))
                # ``from . import x`` may name a submodule rather than an attribute
                targets = [f"{module}.{a.name}" if f"{module}.{a.name}" in modules else module for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            for target in targets:
                parts = target.split(".")
                for i in range(2, len(parts) + 1):  # the packages above are imported first ...
                    prefix = ".".join(parts[:i])
                    # ... except this module's own, which are already being imported when it runs
                    own = name.startswith(prefix + ".") and prefix != target
                    if prefix in modules and prefix != name and not own:
                        graph[name].add(prefix)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_checker_finds_a_planted_circle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycle(graph) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_graph_sees_deferred_and_package_imports():
    graph = import_graph()
    # cmd_train's function-level import, and data/__init__ run before the data.io that cmd_data_convert imports
    assert "latentcot.training" in graph["latentcot.cli"]
    assert {"latentcot.data", "latentcot.data.io"} <= graph["latentcot.cli"]


def test_no_import_circles():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import circle: " + " -> ".join(cycle)
