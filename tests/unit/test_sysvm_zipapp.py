"""The zipapp the agent ships: deterministic, stamped with the sources' hash, and runnable."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from cloudiag.sysvm import build, types
from tests.sysvm_zipapp import zipapp


def test_the_same_sources_give_the_same_bytes_and_name(tmp_path: Path) -> None:
    first = build.build(tmp_path / "a")
    second = build.build(tmp_path / "b")
    assert (
        first.name == second.name == build.archive_name(build.source_hash(build.shipped_sources()))
    )
    assert first.read_bytes() == second.read_bytes()


def test_a_changed_source_changes_the_hash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    copy = tmp_path / "sysvm"
    shutil.copytree(build.PACKAGE_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(build, "PACKAGE_DIR", copy)
    before = build.build(tmp_path / "out")
    (copy / "errors.py").write_text((copy / "errors.py").read_text() + "\n# changed\n")
    after = build.build(tmp_path / "out")
    assert before.name != after.name and before.exists() and after.exists()


def test_the_running_zipapp_prints_its_hash() -> None:
    done = subprocess.run(
        [sys.executable, "-I", "-S", zipapp(), "--version"], capture_output=True, check=True
    )
    stamp = Path(zipapp()).name.removeprefix("cloudiag-sysvm-").removesuffix(".pyz")
    assert done.stdout.decode() == f"cloudiag-sysvm {stamp}\n"
    assert stamp == build.current_stamp()


def test_the_zip_holds_sources_and_bytecode_but_not_the_builder() -> None:
    names = zipfile.ZipFile(zipapp()).namelist()
    assert "__main__.py" in names
    assert {"sysvm/cli.py", "sysvm/cli.pyc", "sysvm/types/ping.pyc"} <= set(names)
    assert not any(n.startswith("sysvm/build") for n in names)
    assert all(i.compress_type == zipfile.ZIP_STORED for i in zipfile.ZipFile(zipapp()).infolist())


def test_the_zip_lists_the_type_modules_it_holds() -> None:
    # A zip cannot be listed cheaply at start-up: the build writes the list in.
    with zipfile.ZipFile(zipapp()) as zipped:
        index = zipped.read("sysvm/types/_index.py").decode()
    assert index == f"NAMES = {types.module_names()!r}\n"


def test_the_bytecode_is_used_without_compiling(tmp_path: Path) -> None:
    # Start-up runs the bytecode and never reads the sources: with every .py replaced by
    # one that fails, the build still runs.
    path = Path(zipapp())
    blanked = tmp_path / path.name
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(blanked, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename.startswith("sysvm/") and info.filename.endswith(".py"):
                data = b"raise SystemExit('source was compiled')\n"
            dst.writestr(info, data)
    done = subprocess.run(
        [sys.executable, "-I", "-S", str(blanked), "--version"], capture_output=True, check=False
    )
    assert done.returncode == 0, done.stderr


def test_a_build_someone_else_could_write_is_replaced(tmp_path: Path) -> None:
    first = build.build(tmp_path)
    os.chmod(first, 0o666)  # noqa: S103 (the point of the test)
    first.write_bytes(b"not a zip")
    again = build.build(tmp_path)
    assert again == first and zipfile.is_zipfile(again)
    assert not again.stat().st_mode & 0o022


def test_the_build_folder_is_private(tmp_path: Path) -> None:
    build.build(tmp_path / "new")
    assert (tmp_path / "new").stat().st_mode & 0o777 == 0o700


def test_a_folder_others_can_write_to_is_refused(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)  # noqa: S103 (the point of the test)
    with pytest.raises(PermissionError):
        build.build(shared)
    assert list(shared.iterdir()) == []


@pytest.mark.skipif(shutil.which("ping") is None, reason="ping is not installed")
def test_the_zipapp_runs_a_diagnostic() -> None:
    done = subprocess.run(
        [sys.executable, "-I", "-S", zipapp(), "--no-deny", "ping", "127.0.0.1", "-c", "1"],
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stdout
    assert b"1 received" in done.stdout


def _other_pythons() -> list[str]:
    """Other Python 3 interpreters on this machine (pyenv's), as a VM may carry."""
    root = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions"
    found = sorted(str(p) for p in root.glob("3.*/bin/python3") if p.is_file())
    return [p for p in found if not Path(p).resolve().samefile(Path(sys.executable).resolve())]


@pytest.mark.parametrize("python", _other_pythons() or [pytest.param("", marks=pytest.mark.skip)])
def test_other_interpreters_run_the_build_from_its_sources(python: str) -> None:
    # Bytecode of another version is ignored (its magic number differs): the sources run.
    done = subprocess.run(
        [python, "-I", "-S", zipapp(), "--deny", "10.0.0.0/8", "ping", "10.1.2.3"],
        capture_output=True,
        timeout=60,
        check=False,
    )
    if b"SyntaxError" in done.stderr and b"annotations" in done.stderr:
        pytest.skip(f"{python} predates from __future__ import annotations")
    assert done.returncode == 2, done.stderr
    assert b"10.1.2.3 is in 10.0.0.0/8" in done.stdout


def test_a_new_build_prunes_all_but_the_newest_older_builds(tmp_path: Path) -> None:
    older = [tmp_path / build.archive_name(f"{n:016x}") for n in range(4)]
    for age, path in enumerate(reversed(older)):
        path.write_bytes(b"old build")
        path.chmod(0o644)
        os.utime(path, (1_000_000 - age, 1_000_000 - age))
    foreign = tmp_path / build.archive_name("f" * 16)
    foreign.write_bytes(b"not ours to judge")
    os.chmod(foreign, 0o666)  # noqa: S103 (a file another user could have written)
    unrelated = tmp_path / "notes.txt"
    unrelated.write_text("kept")

    current = build.build(tmp_path)

    left = {p.name for p in tmp_path.iterdir()}
    # The two newest older builds stay for sessions still reading them; the rest go.
    assert left == {current.name, older[3].name, older[2].name, foreign.name, unrelated.name}


def test_an_existing_build_prunes_nothing(tmp_path: Path) -> None:
    current = build.build(tmp_path)
    stale = [tmp_path / build.archive_name(f"{n:016x}") for n in range(4)]
    for path in stale:
        path.write_bytes(b"old build")
        path.chmod(0o644)
    assert build.build(tmp_path) == current
    assert all(path.exists() for path in stale)
