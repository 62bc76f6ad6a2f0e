"""The layers of the code, read from its imports: each layer imports only those below it.

Every import counts, also one inside a function or under ``if TYPE_CHECKING``: a layer
that needs a type from above it is tangled all the same.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path

import pytest

import cloudiag

SRC = Path(cloudiag.__file__).parent

#: The command-line layer: `cloudiag …` and its subcommands' modules.
CLI = {"__main__", "cli"}
#: What each layer must not import (top-level parts of `cloudiag`).
FORBIDDEN = {
    "agent": {"api", "services", "jobs", "db", "lab", *CLI},
    "services": {"api", *CLI},
    "jobs": {"api", *CLI},
    "settings": {"services", "jobs", "api", "agent", "lab", *CLI},
    "bus": {"services", "jobs", "api", "agent", "lab", *CLI},
    "db": {"services", "jobs", "api", "agent", "lab", *CLI},
    "sysvm": {"services", "jobs", "api", "agent", "lab", *CLI},
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_module(name: str) -> bool:
    return (SRC / f"{name}.py").exists() or (SRC / name / "__init__.py").exists()


def _imports(path: Path) -> Iterator[str]:
    """The modules `path` imports, absolute (relative imports resolved)."""
    package = _module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            source = ".".join([*base, *([node.module] if node.module else [])])
            if source == "cloudiag":  # `from cloudiag import domain` imports cloudiag.domain.
                yield from (f"cloudiag.{a.name}" for a in node.names if _is_module(a.name))
            else:
                yield source


def _part(module: str) -> str:
    """The top-level part of `cloudiag` a module belongs to (`cloudiag.api.app` -> `api`)."""
    return module.split(".")[1]


def _graph() -> dict[str, dict[str, set[str]]]:
    """For each top-level part, the parts it imports and, for each, from which modules."""
    graph: dict[str, dict[str, set[str]]] = {}
    for path in sorted(SRC.rglob("*.py")):
        if "migrations" in path.parts:
            continue  # Alembic's scripts, run by Alembic, not imported by any layer.
        module = _module_name(path)
        if module == "cloudiag":
            continue
        source = _part(module)
        graph.setdefault(source, {})
        for target in _imports(path):
            line = f"{module} -> {target}"
            if target.startswith("cloudiag.") and _part(target) != source:
                graph[source].setdefault(_part(target), set()).add(line)
    return graph


def test_the_graph_is_read() -> None:
    # Guards the test itself: an AST walk that found nothing would pass every rule below.
    graph = _graph()
    assert {"api", "services", "jobs", "bus", "db", "sysvm"} <= set(graph)
    assert "services" in graph["api"] and "db" in graph["services"]


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_a_layer_imports_nothing_above_it(layer: str) -> None:
    imports = _graph().get(layer, {})
    wrong = sorted(line for part in FORBIDDEN[layer] for line in imports.get(part, ()))
    assert wrong == []


def test_sysvm_imports_nothing_of_cloudiag_outside_it() -> None:
    # It is shipped to the system VMs on its own.
    assert sorted(line for lines in _graph()["sysvm"].values() for line in lines) == []


def _cycle_from(graph: dict[str, dict[str, set[str]]], start: str) -> list[str]:
    """A path of imports from `start` back to itself (one import for each step), or []."""
    stack: list[tuple[str, list[str]]] = [(start, [start])]
    seen: set[str] = set()
    while stack:
        node, path = stack.pop()
        for target in graph.get(node, {}):
            if target == start:
                steps = [*path, start]
                return [min(graph[a][b]) for a, b in pairwise(steps)]
            if target not in seen:
                seen.add(target)
                stack.append((target, [*path, target]))
    return []


def test_no_import_cycle_between_top_level_parts() -> None:
    graph = _graph()
    cycles = {part: cycle for part in graph if (cycle := _cycle_from(graph, part))}
    assert cycles == {}
