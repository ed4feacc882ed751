"""The package's import graph: no cycles, and the library never reaches up into the CLI.

Every ``import`` statement counts, wherever it stands (a function-local import or one under
``TYPE_CHECKING`` hides a cycle from Python, not from a reader).
"""

from __future__ import annotations

import ast
from pathlib import Path

import histosynth

ROOT = Path(histosynth.__file__).resolve().parent


def _modules() -> dict[str, Path]:
    out = {}
    for path in ROOT.rglob("*.py"):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def import_graph() -> dict[str, set[str]]:
    """Module → the histosynth modules it imports (``from pkg import sub`` names ``pkg.sub``)."""
    modules = _modules()

    def known(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {m: set() for m in modules}
    for module, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [f"{node.module}.{a.name}" for a in node.names]
            else:
                continue
            for name in names:
                target = known(name) if name.startswith("histosynth.") else None
                if target is not None and target != module:
                    graph[module].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_walk_sees_imports_inside_functions():
    graph = import_graph()
    # cluster.stage imports pseudo_maps at the top and assignments_of inside a function
    assert "histosynth.cluster.pseudo_maps" in graph["histosynth.cluster.stage"]
    assert "histosynth.embed.encoders" in graph["histosynth.evaluate.detectors"]  # function-local
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycles():
    assert cycles(import_graph()) == []


def test_the_library_never_imports_the_command_line():
    """Commands call the library; the library (the demo included) calls stages, never commands."""
    graph = import_graph()
    up = {m: sorted(t for t in ts if t.startswith("histosynth.cli")) for m, ts in graph.items()}
    assert {
        m: ts for m, ts in up.items() if ts and not m.startswith(("histosynth.cli", "histosynth.__main__"))
    } == {}
