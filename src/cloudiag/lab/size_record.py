"""Which size a lab was built with, kept in its state directory (``size.json``).

Written before anything is built, so that `down`, `status`, `stop`/`start` and the
inventory of a lab find all of its nodes, even after an `up` that died halfway. A lab
without the file is of the default size.
"""

from __future__ import annotations

import json
from pathlib import Path

from cloudiag.lab.layout import DEFAULT_SIZE, LabSize

FILE = "size.json"


def read_size(state: Path) -> LabSize:
    """The size recorded in ``state``; the default when there is none (or it is unreadable)."""
    try:
        data = json.loads((state / FILE).read_text())
        return LabSize(int(data["zones"]), int(data["hosts"]), int(data["routers"])).check()
    except (OSError, ValueError, KeyError, TypeError):
        return DEFAULT_SIZE


def write_size(state: Path, size: LabSize) -> None:
    """Record the size of the lab being built in ``state``."""
    state.mkdir(parents=True, exist_ok=True)
    text = json.dumps({"zones": size.zones, "hosts": size.hosts, "routers": size.routers})
    (state / FILE).write_text(text + "\n")
