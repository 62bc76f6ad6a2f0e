"""The lab's one error, and the guards that raise it."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from cloudiag.lab.system import CommandError


class LabError(RuntimeError):
    """The lab cannot be built, changed or read; the message says why and what to do."""


def need_root(action: str) -> None:
    """Raise LabError unless we are root: `action` names what needed it (``up``, ``stop``…)."""
    if os.geteuid() != 0:
        # Network namespaces, veth pairs and bridges all need CAP_NET_ADMIN / CAP_SYS_ADMIN.
        raise LabError(f"lab {action} needs root: run it as root or with sudo")


@contextlib.contextmanager
def as_lab_error() -> Iterator[None]:
    """Turn a failed command inside the block into a LabError with the same message."""
    try:
        yield
    except CommandError as exc:
        raise LabError(str(exc)) from None
