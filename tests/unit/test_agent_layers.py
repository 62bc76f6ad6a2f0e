"""The agent stands on its own: no module of cloudiag.agent imports the lab or the CLI.

The lab reaches the agent as data (its inventory), and `cloudiag agent` calls the agent's
wiring; the other way round would tie every agent to the lab's code and the command line.
"""

from __future__ import annotations

import ast
from pathlib import Path

import cloudiag.agent

AGENT_DIR = Path(cloudiag.agent.__file__).parent
FORBIDDEN = ("cloudiag.lab", "cloudiag.cli")


def _imports(path: Path, agent_dir: Path = AGENT_DIR) -> list[str]:
    """Every module the file imports, relative imports resolved, at any depth of the file."""
    package = "cloudiag." + ".".join(path.relative_to(agent_dir.parent).with_suffix("").parts)
    if path.name != "__init__.py":
        package = package.rsplit(".", 1)[0]
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            module = ".".join(p for p in (base, node.module or "") if p)
            # `from cloudiag import lab` imports a module too.
            names += [module] + [f"{module}.{alias.name}" for alias in node.names]
    return names


def _is_under(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def test_no_agent_module_imports_the_lab_or_the_cli() -> None:
    modules = sorted(AGENT_DIR.rglob("*.py"))
    assert len(modules) > 5  # The walk found the package.
    offending = [
        f"{path.relative_to(AGENT_DIR.parent)} imports {name}"
        for path in modules
        for name in _imports(path)
        if any(_is_under(name, bad) for bad in FORBIDDEN)
    ]
    assert offending == []


def test_the_walk_sees_every_form_of_import(tmp_path: Path) -> None:
    agent_dir = tmp_path / "cloudiag" / "agent"
    probe = agent_dir / "sources" / "probe.py"
    probe.parent.mkdir(parents=True)
    probe.write_text(
        "import cloudiag.lab.manager\n"
        "from cloudiag import cli\n"
        "from ... import lab\n"
        "def f() -> None:\n"
        "    from cloudiag.cli import settings_from\n"
    )
    names = _imports(probe, agent_dir)
    assert "cloudiag.lab.manager" in names
    assert "cloudiag.cli" in names
    assert "cloudiag.lab" in names  # `...` from cloudiag.agent.sources is cloudiag.
    assert "cloudiag.cli.settings_from" in names
