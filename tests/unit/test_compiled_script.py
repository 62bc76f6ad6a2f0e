"""The executor runs the script's bytecode only when it is current and trusted."""

from __future__ import annotations

import importlib.util
import os
import py_compile
import shutil
from pathlib import Path

import pytest

from cloudiag.agent.executors import netns


@pytest.fixture
def script(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "diagnostics.py"
    shutil.copy(netns.SCRIPT_PATH, path)
    monkeypatch.setattr(netns, "SCRIPT_PATH", str(path))
    return path


def _pyc(path: Path) -> str:
    return importlib.util.cache_from_source(str(path))


def test_fresh_bytecode_is_used(script: Path) -> None:
    py_compile.compile(str(script), cfile=_pyc(script))
    assert netns.compiled_script() == _pyc(script)


def test_no_bytecode_means_the_source(script: Path) -> None:
    assert netns.compiled_script() == str(script)


def test_stale_bytecode_is_not_used(script: Path) -> None:
    py_compile.compile(str(script), cfile=_pyc(script))
    script.write_text(script.read_text() + "\n# changed\n")
    assert netns.compiled_script() == str(script)


def test_bytecode_others_can_write_is_not_used(script: Path) -> None:
    py_compile.compile(str(script), cfile=_pyc(script))
    os.chmod(_pyc(script), 0o666)  # noqa: S103 (the point of the test)
    assert netns.compiled_script() == str(script)


def test_hash_based_bytecode_is_not_used(script: Path) -> None:
    py_compile.compile(
        str(script),
        cfile=_pyc(script),
        invalidation_mode=py_compile.PycInvalidationMode.CHECKED_HASH,
    )
    assert netns.compiled_script() == str(script)
