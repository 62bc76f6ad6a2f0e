"""A file of a lab system VM's own for the length of a test: bound over the host's in the
VM's mount namespace (`lab up --ssh`), so what runs in the VM over SSH sees it and nothing
else on the machine does."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from cloudiag.lab import manager, mountns, topology


@contextlib.contextmanager
def vm_file(prefix: str, vm_name: str, path: str, text: str, mode: int = 0o755) -> Iterator[None]:
    """The VM's ``path`` (one the host has, e.g. /usr/bin/ping) holds ``text`` until the
    block ends; then the host's file shows again and the copy is removed."""
    node = next(n for n in topology.NODES if n.name == vm_name)
    state = manager.default_state_dir(prefix)
    own = mountns.vm_root(state, node) / path.lstrip("/")
    own.parent.mkdir(parents=True, exist_ok=True)
    own.write_text(text)
    own.chmod(mode)
    try:
        mountns.add(prefix, node, state, path)
        try:
            yield
        finally:
            mountns.release(prefix, node, state, path)
    finally:
        own.unlink()
        for parent in own.relative_to(mountns.vm_root(state, node)).parents:
            if parent != Path("."):
                with contextlib.suppress(OSError):  # Not empty: another path of the VM's.
                    (mountns.vm_root(state, node) / parent).rmdir()
