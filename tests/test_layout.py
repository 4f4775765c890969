"""The layout's import rules (docs/architecture.md): no import circle inside api/, worker/
and repair_core/, the API never imports the worker, and repair_core stays a plain PyTorch
library.

The circle check reads the source with `ast` (nothing is imported), so it sees every
import statement: module level, inside functions, and under `if TYPE_CHECKING:` too (a
circle that only type checking closes is still two modules that each need the other).
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

from tests.fresh_python import ROOT, python_output

PACKAGES = ("api", "worker", "repair_core")


def module_files(root: Path = ROOT, packages: tuple[str, ...] = PACKAGES) -> dict[str, Path]:
    """Every module of `packages` by dotted name (a package is its `__init__.py`)."""
    modules: dict[str, Path] = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def _imported_names(module: str, path: Path) -> Iterator[str]:
    """The dotted name of everything `module` imports: `a.b.c` for `import a.b.c` and
    for `from a.b import c` (c may be a submodule or a name defined in `a.b`), `a.b` for
    `from a.b import *`. Relative imports are resolved against `module`."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                package = module.split(".")
                if not is_package:
                    package.pop()
                base = package[: len(package) - (node.level - 1)]
                if node.module:
                    base.append(node.module)
                source = ".".join(base)
            else:
                source = node.module or ""
            for alias in node.names:
                yield source if alias.name == "*" else f"{source}.{alias.name}"


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    """module -> the modules of `modules` it imports. An imported name maps to the most
    specific module it names (`from a.b import c`: `a.b.c` if that is a module, else
    `a.b`; `import a.b.c.d` where d is no module: `a.b.c`); a module's imports of itself
    (`from . import name` in a package) are dropped."""
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        targets = set()
        for name in _imported_names(module, path):
            target = _longest_module(name, modules)
            if target is not None:
                targets.add(target)
        targets.discard(module)
        graph[module] = targets
    return graph


def _longest_module(name: str, modules: dict[str, Path]) -> str | None:
    parts = name.split(".")
    while parts and ".".join(parts) not in modules:
        parts.pop()
    return ".".join(parts) or None


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (first module repeated at the end) per strongly connected group of
    modules that import each other, found with Tarjan's algorithm."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.add(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(group)

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10 * len(graph) + 100))
    try:
        for node in sorted(graph):
            if node not in index:
                connect(node)
    finally:
        sys.setrecursionlimit(limit)
    return [_shortest_cycle(graph, group) for group in groups]


def _shortest_cycle(graph: dict[str, set[str]], group: set[str]) -> list[str]:
    """A shortest path from the group's first module back to itself, inside the group."""
    start = min(group)
    parents: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for nxt in sorted(graph[node] & group):
                if nxt == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(parents[path[-1]])
                    return [*reversed(path), start]
                if nxt not in parents:
                    parents[nxt] = node
                    following.append(nxt)
        frontier = following
    raise AssertionError(f"no cycle through {start} in {sorted(group)}")


def test_the_cycle_finder_names_a_circle_and_passes_a_straight_line() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"d"}}
    assert import_cycles(graph) == [["a", "b", "c", "a"]]
    assert import_cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []


def test_imports_are_resolved_relative_and_inside_functions(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("def f():\n    from .sub import b\n")
    (package / "sub" / "__init__.py").write_text("from . import b\n")
    (package / "sub" / "b.py").write_text("from ..a import f\nimport pkg.sub\n")
    graph = import_graph(module_files(tmp_path, ("pkg",)))
    assert graph == {
        "pkg": set(),
        "pkg.a": {"pkg.sub.b"},
        "pkg.sub": {"pkg.sub.b"},
        "pkg.sub.b": {"pkg.a", "pkg.sub"},
    }
    assert import_cycles(graph) == [["pkg.a", "pkg.sub.b", "pkg.a"]]


def test_api_worker_and_repair_core_have_no_import_circle() -> None:
    modules = module_files()
    assert {"api", "worker", "repair_core"} <= set(modules)
    cycles = import_cycles(import_graph(modules))
    assert not cycles, "import circles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_the_api_never_imports_the_worker() -> None:
    # The API sends `repair.run_job` by name; the worker depends on the API, not back.
    graph = import_graph(module_files())
    found = sorted(
        f"{module} -> {target}"
        for module, targets in graph.items()
        if module.split(".")[0] == "api"
        for target in targets
        if target.split(".")[0] == "worker"
    )
    assert not found, f"api imports worker: {found}"


def test_importing_repair_core_does_not_import_the_web_or_queue_stack() -> None:
    # Every module of repair_core, including ones added later, is imported.
    code = (
        "import sys, importlib, pkgutil, repair_core;"
        "[importlib.import_module(m.name) for m in"
        " pkgutil.walk_packages(repair_core.__path__, 'repair_core.')];"
        "bad = [m for m in ('fastapi', 'celery', 'sqlalchemy', 'starlette', 'api', 'worker')"
        " if m in sys.modules];"
        "print(','.join(bad))"
    )
    assert python_output(code) == ""


def test_every_test_folder_is_a_package() -> None:
    # Test modules are imported by their dotted path (tests.worker.test_e2e), so two
    # folders can each have a test_e2e.py without a prefix that keeps basenames unique.
    tests = ROOT / "tests"
    folders = {p.parent for p in tests.rglob("*.py")} | {tests}
    missing = sorted(str(f.relative_to(ROOT)) for f in folders if not (f / "__init__.py").is_file())
    assert not missing, f"test folders without __init__.py: {missing}"
