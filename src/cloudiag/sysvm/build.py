"""Build the package into one zipapp, ``cloudiag-sysvm-<hash>.pyz``, with the standard zipapp.

The hash is the content hash of the shipped sources: the same sources give the same hash,
and the same interpreter gives the same bytes (fixed entry order, times and modes, no
compression). An agent compares the hash in the file name, or what ``--version`` prints,
with its own to tell whether a VM holds the current build. The zip holds the sources and
their bytecode (unchecked hash-based .pyc, so no start compiles anything); an interpreter of
another version ignores the bytecode and compiles the sources.

``python3 -m cloudiag.sysvm.build DIR`` builds into DIR and prints the file's path.
"""

from __future__ import annotations

import hashlib
import os
import py_compile
import stat
import sys
import tempfile
import time
import zipapp
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
#: The package's name inside the zip (its modules import each other relatively).
ARCHIVE_PACKAGE = "sysvm"
_NOT_SHIPPED = frozenset({"build.py", "__main__.py"})
_MAIN = """import sys
from {package}.cli import main
sys.exit(main(stamp="{stamp}"))
"""
# A fixed time for every entry: zipfile stores local time, so go through mktime().
_FIXED_MTIME = time.mktime((1980, 1, 2, 0, 0, 0, 0, 0, -1))
#: Builds kept in a build folder besides the newest: a session started from an older build
#: still reads modules from its zip (zipimport opens the file by name), so a build is not
#: removed the moment a newer one appears, but the folder does not grow with every upgrade.
KEEP_OLDER_BUILDS = 2


def shipped_sources() -> list[tuple[str, bytes]]:
    """(path inside the package, content) of every shipped module, sorted by path."""
    found = []
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        rel = path.relative_to(PACKAGE_DIR).as_posix()
        if rel not in _NOT_SHIPPED:
            found.append((rel, path.read_bytes()))
    return found


def source_hash(sources: list[tuple[str, bytes]]) -> str:
    """The content hash of the sources (16 hex digits), as stamped on a build."""
    digest = hashlib.sha256()
    for rel, data in sources:
        digest.update(f"{rel}\0{len(data)}\0".encode())
        digest.update(data)
    return digest.hexdigest()[:16]


def current_stamp() -> str:
    """The stamp of a build of the sources here: what a VM's ``--version`` must print."""
    return source_hash(shipped_sources())


def archive_name(stamp: str) -> str:
    """The file name of the build with that stamp."""
    return f"cloudiag-sysvm-{stamp}.pyz"


def _type_modules(sources: list[tuple[str, bytes]]) -> list[str]:
    """The type modules among the sources: what types/__init__.py would list on disk."""
    names = []
    for rel, _ in sources:
        folder, _, file = rel.rpartition("/")
        if folder == "types" and not file.startswith("_"):
            names.append(file.removesuffix(".py"))
    return sorted(names)


def _write_module(package: Path, rel: str, data: bytes) -> None:
    """A module of the package and its bytecode, beside it (where zipimport looks)."""
    path = package / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    py_compile.compile(
        str(path),
        cfile=str(path.with_suffix(".pyc")),
        dfile=f"{ARCHIVE_PACKAGE}/{rel}",
        doraise=True,
        invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
    )


def _stage(root: Path, sources: list[tuple[str, bytes]], stamp: str) -> None:
    package = root / ARCHIVE_PACKAGE
    for rel, data in sources:
        _write_module(package, rel, data)
    index = f"NAMES = {_type_modules(sources)!r}\n"
    _write_module(package, "types/_index.py", index.encode())
    (root / "__main__.py").write_text(_MAIN.format(package=ARCHIVE_PACKAGE, stamp=stamp))
    for path in [root, *root.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
        os.utime(path, (_FIXED_MTIME, _FIXED_MTIME))


def _ours(path: Path, kind: int) -> bool:
    """Whether ``path`` is of that kind (no symlink), ours, and only we can write it."""
    try:
        info = path.lstat()
    except OSError:
        return False
    return (
        stat.S_IFMT(info.st_mode) == kind
        and info.st_uid == os.getuid()
        and not info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
    )


def is_trusted(path: Path) -> bool:
    """Whether a build found on disk is ours to run: a regular file only we can write."""
    return _ours(path, stat.S_IFREG)


def build(directory: Path) -> Path:
    """The build of the current sources in ``directory``, made if it is not there yet.

    ``directory`` is created private (0700); one that someone else could write to is
    refused (PermissionError), since they could swap the build before it runs. A file of
    the right name that someone else could have written is replaced.
    """
    sources = shipped_sources()
    stamp = source_hash(sources)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not _ours(directory, stat.S_IFDIR):
        raise PermissionError(f"{directory} is not a folder only this user can write to")
    target = directory / archive_name(stamp)
    if is_trusted(target):
        return target
    with tempfile.TemporaryDirectory(dir=directory) as scratch:
        root = Path(scratch) / "root"
        _stage(root, sources, stamp)
        partial = Path(scratch) / target.name
        zipapp.create_archive(root, partial, compressed=False)
        partial.chmod(0o644)
        # Atomic: a concurrent run sees the old build or the whole new one.
        os.replace(partial, target)
    prune(directory, keep=target)
    return target


def prune(directory: Path, *, keep: Path) -> list[Path]:
    """Remove all but the newest ``KEEP_OLDER_BUILDS`` builds in ``directory`` besides
    ``keep``; only our own regular files named like a build. Returns the removed paths."""
    older = [
        path for path in directory.glob(archive_name("*")) if path != keep and is_trusted(path)
    ]
    older.sort(key=lambda path: path.stat().st_mtime, reverse=True)
    removed = []
    for path in older[KEEP_OLDER_BUILDS:]:
        try:
            path.unlink()
        except FileNotFoundError:
            continue  # Another build pruned it first.
        removed.append(path)
    return removed


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python3 -m cloudiag.sysvm.build DIR")
    print(build(Path(sys.argv[1])))
