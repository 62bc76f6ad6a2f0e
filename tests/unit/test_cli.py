"""The command line is one package: `cloudiag` and a module per subcommand, nothing above it."""

from __future__ import annotations

import ast
import importlib.metadata
from pathlib import Path

import pytest

import cloudiag
from cloudiag.cli import build_parser, main

SRC = Path(cloudiag.__file__).parent


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names |= {node.module, *(f"{node.module}.{a.name}" for a in node.names)}
    return names


def test_no_module_outside_cli_imports_the_command_line() -> None:
    importers = [
        str(path.relative_to(SRC))
        for path in SRC.rglob("*.py")
        if "cli" not in path.relative_to(SRC).parts[:1]
        and path.name != "__main__.py"
        and any(n == "cloudiag.cli" or n.startswith("cloudiag.cli.") for n in _imports(path))
    ]
    assert importers == []


def test_subcommand_modules_use_the_shared_options_not_the_parser() -> None:
    for path in (SRC / "cli").glob("*.py"):
        if path.name != "__init__.py":
            assert "cloudiag.cli" not in _imports(path), path.name


def test_the_console_script_is_the_package_main() -> None:
    (script,) = [e for e in importlib.metadata.entry_points(group="console_scripts")
                 if e.name == "cloudiag"]  # fmt: skip
    assert script.value == "cloudiag.cli:main"
    assert script.load() is main


@pytest.mark.parametrize("command", ["demo", "serve", "agent", "lab", "user"])
def test_every_subcommand_is_registered(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        build_parser().parse_args([command, "--help"])
    assert done.value.code == 0
    assert f"usage: cloudiag {command}" in capsys.readouterr().out


def test_demo_help_names_the_lab_prefix_variable(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["demo", "--help"])
    assert "CLOUDIAG_LAB_PREFIX" in capsys.readouterr().out
