"""The system-VM zipapp as the agent ships it, built once per test session."""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

from cloudiag.sysvm import build


@functools.cache
def zipapp() -> str:
    """The path of a fresh build of the current sources (in a private temporary folder)."""
    return str(build.build(Path(tempfile.mkdtemp(prefix="cloudiag-sysvm-test-"))))
