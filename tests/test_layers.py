"""The house keeps its shape: no import circles between modules, and every import from one
package of ``ictal`` to another goes down the layers of docs/code-layout.md. Every import
counts: module-level, inside functions and under ``if TYPE_CHECKING:``."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

# Bottom to top. A package may import its own modules and the packages of lower layers only;
# packages of one layer share through lower ones, never through each other.
LAYERS: list[set[str]] = [
    {"errors", "machine", "auroc", "stitch", "ids", "roles"},
    {"data", "parallel"},
    {"io"},
    {"ui"},
    {"corpus"},
    {"config", "device"},
    {"config_file"},
    {"signal", "models", "events"},
    {"cache", "runs"},
    {"export"},
    {"train", "evaluate", "detect", "doctor", "score"},
    {"orchestrate"},
    {"cli"},
    {"__main__"},
]


def _module(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def import_graph() -> dict[str, set[str]]:
    """Module -> ictal modules it imports, from every import statement in the source."""
    modules = {_module(p): p for p in (SRC / "ictal").rglob("*.py")}
    graph: dict[str, set[str]] = defaultdict(set)
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: resolve against this module's package
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, *([base] if base else [])])
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base
                           for a in node.names]  # fmt: skip
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            for target in targets:
                if target.startswith("ictal.") and target in modules:
                    graph[name].add(target)
        graph.setdefault(name, set())
    return graph


def _top(module: str) -> str:
    return module.split(".")[1]


def test_every_package_is_placed_in_a_layer():
    placed = set().union(*LAYERS)
    packages = {_top(m) for m in import_graph() if m != "ictal"}
    assert packages <= placed, f"place these in LAYERS and docs/code-layout.md: {packages - placed}"


def test_imports_only_go_down_the_layers():
    layer = {pkg: k for k, pkgs in enumerate(LAYERS) for pkg in pkgs}
    wrong = sorted(
        f"{a} -> {b}"
        for a, targets in import_graph().items()
        for b in targets
        if a != "ictal" and b != "ictal" and _top(a) != _top(b)
        and layer[_top(b)] >= layer[_top(a)]
    )  # fmt: skip
    assert not wrong, "imports that do not go down a layer:\n" + "\n".join(wrong)


def test_no_import_circles():
    graph = import_graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
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
            if len(component) > 1 or v in graph.get(v, ()):
                circles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    assert not circles, f"import circles: {circles}"


def test_the_checker_sees_function_level_imports():
    """The graph would catch a circle hidden in a function (as cache/locate.py once had)."""
    graph = import_graph()
    assert "ictal.cache.plan" in graph["ictal.cache.locate"]
    assert "ictal.cache.locate" not in graph["ictal.cache.plan"]
    cli = graph["ictal.cli.train"]
    assert "ictal.train.loop" in cli  # imported inside the train command's function
