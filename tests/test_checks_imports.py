"""Stage two's modules import each other without a circle, function-local imports included.

The checks once held a circle apart with imports inside functions (checks/base -> injection ->
label -> base) and another through the package (pipeline.relevance -> pipeline.checks.text,
whose package imported every check, one of which imports pipeline.relevance). Here every
``import`` statement of pipeline/ and model/ counts, wherever it is (in a function, under
TYPE_CHECKING), and importing ``a.b.c`` counts as importing the packages ``a.b`` and ``a`` too,
since Python runs their ``__init__`` first.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STAGE_TWO = ("pipeline.checks", "pipeline.verify", "pipeline.verdict", "pipeline.normalise", "pipeline.label_blind")


def _modules() -> dict[str, Path]:
    out = {}
    for package in ("pipeline", "model"):
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _imported(module: str, path: Path, node: ast.Import | ast.ImportFrom, known: dict[str, Path]) -> set[str]:
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        base = node.module or ""
        if node.level:  # relative: from the module's package, up level - 1
            package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
            package = package[: len(package) - node.level + 1]
            base = ".".join([*package, base] if base else package)
        names = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
    out = set()
    for name in names:
        parts = name.split(".")
        out |= {".".join(parts[:i]) for i in range(1, len(parts) + 1)} & known.keys()
    return out - {module}


def import_graph() -> dict[str, set[str]]:
    """module -> the modules its import statements load."""
    known = _modules()
    graph: dict[str, set[str]] = {}
    for module, path in known.items():
        graph[module] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import | ast.ImportFrom):
                graph[module] |= _imported(module, path, node, known)
    return graph


def circle_through(graph: dict[str, set[str]], start: str) -> list[str] | None:
    """A path of imports from ``start`` back to itself, or None."""
    parents: dict[str, str] = {}
    stack = [start]
    while stack:
        module = stack.pop()
        for target in graph[module]:
            if target == start:
                path = [module]
                while path[-1] != start:
                    path.append(parents[path[-1]])
                return [start, *reversed(path[:-1]), start]
            if target not in parents:
                parents[target] = module
                stack.append(target)
    return None


def test_stage_two_modules_are_in_no_import_circle():
    graph = import_graph()
    assert "pipeline.checks.label" in graph["pipeline.checks.registry"]
    ours = [m for m in graph if any(m == p or m.startswith(f"{p}.") for p in STAGE_TWO)]
    circles = [c for c in map(lambda m: circle_through(graph, m), ours) if c is not None]
    assert not circles, "\n".join(" -> ".join(c) for c in circles)


def test_the_walker_finds_a_circle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set()}
    assert circle_through(graph, "a") == ["a", "b", "c", "a"] and circle_through(graph, "d") is None


def test_the_walker_sees_function_local_imports(tmp_path):
    # The walker reads every import statement, also one inside a function.
    tree = ast.parse("def f():\n    from pipeline.checks import base\n")
    (node,) = [n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    found = _imported("pipeline.x", tmp_path / "x.py", node, _modules())
    assert {"pipeline", "pipeline.checks", "pipeline.checks.base"} <= found
