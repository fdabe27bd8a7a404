"""No import cycles among the modules of ``pipeline/`` and ``model/``.

Every ``import`` statement counts, function-local ones and those under ``if TYPE_CHECKING:``
included: an import that only dodges a cycle at load time (inside a function, or for annotations
only) still ties the two modules together, and the circle is what makes them hard to read apart.
``from package import name`` counts as an import of ``package.name`` when that is a module, else of
``package`` (whose ``__init__`` then runs).
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("pipeline", "model")


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(tree: ast.AST) -> Iterable[ast.Import | ast.ImportFrom]:
    """Every import statement of a module, at any depth: in functions, classes and ``if`` blocks."""
    return (node for node in ast.walk(tree) if isinstance(node, ast.Import | ast.ImportFrom))


def _resolve_from(node: ast.ImportFrom, name: str, is_package: bool) -> str:
    """The absolute module a ``from ... import`` names, relative levels resolved against ``name``."""
    if node.level == 0:
        return node.module or ""
    base = name.split(".") if is_package else name.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def import_graph(root: Path, packages: Iterable[str] = PACKAGES) -> dict[str, set[str]]:
    """module -> the modules of ``packages`` it imports."""
    files = {module_name(p, root): p for pkg in packages for p in sorted((root / pkg).rglob("*.py"))}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        is_package = path.name == "__init__.py"
        targets: set[str] = set()
        for node in _imports(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            if isinstance(node, ast.Import):
                candidates = [alias.name for alias in node.names]
            else:
                base = _resolve_from(node, name, is_package)
                # `from pkg import mod` imports pkg.mod; `from mod import func` imports mod.
                candidates = [f"{base}.{a.name}" if f"{base}.{a.name}" in files else base for a in node.names]
            for target in candidates:
                # `import a.b.c` runs a, a.b and a.b.c; the deepest one we own is the edge.
                while target and target not in files:
                    target = target.rpartition(".")[0]
                if target and target != name:
                    targets.add(target)
        graph[name] = targets
    return graph


def find_cycles(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """One cycle per strongly connected component with more than one module (Tarjan's algorithm),
    each as a closed path ``[a, b, ..., a]`` so that a failure names the modules in import order."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return [_closed_path(graph, set(c), c[0]) for c in sorted(components)]


def _closed_path(graph: Mapping[str, Iterable[str]], component: set[str], start: str) -> list[str]:
    """The shortest cycle through ``start`` within ``component`` (breadth first)."""
    parents: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for v in frontier:
            for w in sorted(graph.get(v, ())):
                if w == start:
                    path = [v]
                    while path[-1] != start:
                        path.append(parents[path[-1]])
                    return [*reversed(path), start]
                if w in component and w not in parents:
                    parents[w] = v
                    following.append(w)
        frontier = following
    raise AssertionError(f"{start} is in no cycle of its component")  # Tarjan's components are cycles


def test_no_import_cycles_in_pipeline_and_model():
    graph = import_graph(ROOT)
    cycles = find_cycles(graph)
    lines = [f"  {' -> '.join(c)}  (its circle: {', '.join(_circle_of(graph, c[0]))})" for c in cycles]
    assert not cycles, "import cycles:\n" + "\n".join(lines)


def _circle_of(graph: Mapping[str, Iterable[str]], start: str) -> list[str]:
    """Every module that ``start`` reaches and that reaches ``start``: all that a fix must untie."""

    def reach(edges: Mapping[str, Iterable[str]]) -> set[str]:
        seen, todo = {start}, [start]
        while todo:
            for w in edges.get(todo.pop(), ()):
                if w not in seen:
                    seen.add(w)
                    todo.append(w)
        return seen

    reverse: dict[str, set[str]] = {}
    for v, targets in graph.items():
        for w in targets:
            reverse.setdefault(w, set()).add(v)
    return sorted(reach(graph) & reach(reverse))


def test_graph_sees_function_local_and_relative_imports(tmp_path):
    pkg = tmp_path / "pipeline"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("from . import b\n")
    (pkg / "a.py").write_text("def f():\n    from pipeline.sub import b\n")
    (pkg / "sub" / "b.py").write_text("from ..a import f\n")
    (pkg / "c.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pipeline import a\n")
    graph = import_graph(tmp_path, ["pipeline"])
    assert graph["pipeline.a"] == {"pipeline.sub.b"}
    assert graph["pipeline.sub.b"] == {"pipeline.a"}
    assert graph["pipeline.sub"] == {"pipeline.sub.b"}
    assert graph["pipeline.c"] == {"pipeline.a"}  # imports for annotations only count too
    assert find_cycles(graph) == [["pipeline.a", "pipeline.sub.b", "pipeline.a"]]


def test_find_cycles_names_every_circle_and_nothing_else():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"f"}, "f": {"e"}, "g": {"a"}}
    assert find_cycles(graph) == [["a", "b", "c", "a"], ["e", "f", "e"]]
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []


COMMAND_PACKAGES = ("pipeline.commands", "model.commands")
ENTRY_POINTS = ("pipeline.cli",)


def _is_command(module: str) -> bool:
    return any(module == p or module.startswith(p + ".") for p in COMMAND_PACKAGES)


def test_library_code_imports_no_command_and_commands_import_no_other_command():
    """A command is a thin shell over library functions: library code never reaches up into one, and
    what two commands share lives in their package's __init__ (or the library), not in one of them."""
    graph = import_graph(ROOT)
    wrong = []
    for module, targets in sorted(graph.items()):
        for target in sorted(targets):
            if not _is_command(target) or target in COMMAND_PACKAGES and _is_command(module):
                continue
            if module in ENTRY_POINTS and target in COMMAND_PACKAGES:
                continue  # the dispatcher builds the flags with the commands' shared helpers
            wrong.append(f"{module} imports {target}")
    assert not wrong, "\n".join(wrong)
