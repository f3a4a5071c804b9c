"""The house rules: layers only point down, no import cycles, nothing imports ``workers/``.

Every import in every module of the library counts: at module level, inside functions
(deferred imports) and under ``if TYPE_CHECKING:``. The direction of every import is
checked against :data:`ALLOWED`; cycles are looked for among the imports that run
(everything but ``TYPE_CHECKING`` blocks), as import-linter does: ``from pkg import x``
is an import of ``pkg.x`` when that is a module, else of ``pkg``.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "rfqueue"

#: the layer of each part of the house, by module name prefix (the longest prefix wins)
LAYER_OF = {
    "rfqueue.log": "foundation",
    "rfqueue.keys": "foundation",
    "rfqueue.connection": "foundation",
    "rfqueue.validation": "foundation",
    "rfqueue.settings": "foundation",
    "rfqueue.console": "foundation",
    "rfqueue.table": "table",
    "rfqueue.brokers": "brokers",
    "rfqueue.routing": "routing",
    "rfqueue.worker": "worker",
    "rfqueue.control": "control",
    "rfqueue.chaos": "chaos",
    "rfqueue.monitoring": "monitoring",
    "rfqueue.flower": "flower",
    "rfqueue": "app",  # the package itself, rfqueue.app, and the public names router, inbound
    "rfqueue.simulate": "simulate",
    "rfqueue.demo": "demo",
    "rfqueue.bench": "bench",
    "rfqueue.cli": "cli",
}

_LIBRARY = {"foundation", "table", "brokers", "routing", "worker", "control", "chaos"}
#: which layers each layer may import (itself included)
ALLOWED = {
    "foundation": {"foundation"},
    "table": {"foundation", "table"},
    "brokers": {"foundation", "brokers"},
    "routing": {"foundation", "table", "brokers", "routing"},
    "control": {"foundation", "table", "control"},
    "worker": {"foundation", "table", "brokers", "routing", "worker"},
    "chaos": {"foundation", "table", "control", "chaos"},
    "monitoring": {"foundation", "table", "brokers", "monitoring"},
    "app": _LIBRARY | {"app"},
    "simulate": {"foundation", "routing", "simulate"},
    "flower": {"foundation", "table", "brokers", "control", "flower"},
    "demo": _LIBRARY | {"app", "monitoring", "demo"},
    "bench": _LIBRARY | {"app", "monitoring", "demo", "bench"},
    "cli": _LIBRARY | {"app", "monitoring", "flower", "demo", "bench", "simulate", "cli"},
}

#: the public face and a few cross-cutting modules: about a dozen files at most
MAX_TOP_LEVEL_MODULES = 12


@dataclass(frozen=True)
class Import:
    source: str
    target: str
    line: int
    type_only: bool


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def layer(name: str) -> str:
    best = max((p for p in LAYER_OF if name == p or name.startswith(p + ".")), key=len)
    return LAYER_OF[best]


def _type_checking_lines(tree: ast.AST) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                lines.update(range(child.lineno, (child.end_lineno or child.lineno) + 1))
    return lines


def imports(name: str, path: Path, known: dict[str, Path]) -> Iterator[Import]:
    """Every import in one module, deferred and ``TYPE_CHECKING`` ones included."""
    tree = ast.parse(path.read_text())
    typing_only = _type_checking_lines(tree)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join([*package.split(".")[: len(package.split(".")) - node.level + 1]])
                base = f"{base}.{node.module}" if node.module else base
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                targets.append(sub if sub in known else base)
        for target in targets:
            yield Import(name, target, node.lineno, node.lineno in typing_only)


def all_imports() -> list[Import]:
    known = modules()
    return [i for name, path in known.items() for i in imports(name, path, known)]


def test_nothing_in_the_library_imports_the_reference_deployment() -> None:
    offenders = [
        f"{i.source}:{i.line} imports {i.target}"
        for i in all_imports()
        if i.target == "workers" or i.target.startswith("workers.")
    ]
    assert offenders == []


def test_layers_only_point_down() -> None:
    offenders = [
        f"{i.source}:{i.line} ({layer(i.source)}) imports {i.target} ({layer(i.target)})"
        for i in all_imports()
        if i.target.startswith("rfqueue") and layer(i.target) not in ALLOWED[layer(i.source)]
    ]
    assert offenders == []


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph``, as a path that starts and ends at the same module."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_import_cycles_counting_deferred_imports() -> None:
    graph: dict[str, set[str]] = {}
    for i in all_imports():
        if i.target.startswith("rfqueue") and not i.type_only and i.target != i.source:
            graph.setdefault(i.source, set()).add(i.target)
    assert _cycle(graph) is None


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": {"c"}}) is None


@pytest.mark.parametrize("name", sorted(modules()))
def test_every_module_has_a_home(name: str) -> None:
    assert layer(name) in ALLOWED


def test_the_top_of_the_package_holds_about_a_dozen_modules() -> None:
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(top) <= MAX_TOP_LEVEL_MODULES, top


def test_every_subpackage_says_what_it_is_and_what_it_may_import() -> None:
    for init in sorted(PACKAGE.glob("*/__init__.py")):
        doc = ast.get_docstring(ast.parse(init.read_text())) or ""
        assert doc, f"{init} has no docstring"
        layered = {"table", "brokers", "routing", "worker", "monitoring", "flower", "demo"}
        if init.parent.name in layered:
            assert "import" in doc, f"{init}'s docstring does not say what it may import"
