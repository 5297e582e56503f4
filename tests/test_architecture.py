"""The shape of the code: file-level imports run one way, with no cycles.

Every ``import`` statement of every file of ``src/seethrough`` counts — module level,
function-local and ``if TYPE_CHECKING:`` alike — so a cycle cannot hide behind a late import.
Run it alone with ``python -m pytest tests/test_architecture.py``.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = "seethrough"
SOURCE = Path(__file__).resolve().parents[1] / "src" / PACKAGE

#: The layers, lowest first: a module may import its own layer and the layers below it. Each
#: entry is a top-level module or package of seethrough.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("_version", "config", "core"),
    ("data",),
    ("models",),
    ("explanations",),
    ("metrics",),
    ("prototypes",),
    ("engine",),
    ("validation", "protocol", "report"),
    ("suite",),
    ("demo",),
    ("benchmark",),
    ("viewer",),
    ("cli", "__main__", "__init__"),
)


def _modules() -> dict[str, tuple[Path, bool]]:
    """Dotted module name → (file, is a package ``__init__``)."""
    found = {}
    for path in SOURCE.rglob("*.py"):
        parts = [PACKAGE, *path.relative_to(SOURCE).with_suffix("").parts]
        is_package = parts[-1] == "__init__"
        found[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return found


def _imported(module: str, is_package: bool, node: ast.Import | ast.ImportFrom, known: set[str]) -> set[str]:
    """The seethrough modules one import statement loads (the deepest known module of each name)."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        base = module.split(".") if is_package else module.split(".")[:-1]
        if node.level:
            base = base[: len(base) - (node.level - 1)]
            origin = ".".join(base + ([node.module] if node.module else []))
        else:
            origin = node.module or ""
        names = [f"{origin}.{alias.name}" if f"{origin}.{alias.name}" in known else origin for alias in node.names]
    targets = set()
    for name in names:
        while name and name not in known:
            name = name.rpartition(".")[0]
        if name and name != module:
            targets.add(name)
    return targets


@pytest.fixture(scope="module")
def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    graph = {}
    for module, (path, is_package) in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        graph[module] = set().union(*[_imported(module, is_package, node, known) for node in ast.walk(tree)
                                      if isinstance(node, (ast.Import, ast.ImportFrom))])
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    components.append(sorted(component))
    return components


def _layer_of(module: str) -> int:
    top = module.split(".")[1] if "." in module else "__init__"
    for level, names in enumerate(LAYERS):
        if top in names:
            return level
    raise AssertionError(f"{module}: its top-level name {top!r} is in no layer of LAYERS; add it there")


def test_no_file_level_import_cycles(import_graph):
    assert _cycles(import_graph) == []


def test_imports_run_down_the_layers(import_graph):
    upward = sorted(f"{module} -> {target}" for module, targets in import_graph.items() for target in targets
                    if _layer_of(target) > _layer_of(module))
    assert upward == []


def test_the_cycle_finder_finds_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []
