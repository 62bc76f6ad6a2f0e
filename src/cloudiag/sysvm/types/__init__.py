"""One module per diagnostic type, each declaring ``TYPE``, found by listing this package.

Adding a type is adding its module here: nothing else in the package names it. A zip cannot
be listed without the zipfile module (a few milliseconds more at every start), so the
zipapp carries the list, written by build.py as ``_index.py``. Modules whose names start
with "_" are helpers, not types.
"""

from __future__ import annotations

import os
from importlib import import_module


def module_names() -> list[str]:
    """The names of the type modules, sorted."""
    try:
        from ._index import NAMES  # type: ignore[import-not-found]  # Only in the zipapp.
    except ImportError:
        files = os.listdir(os.path.dirname(__file__))
        NAMES = [f[:-3] for f in files if f.endswith(".py") and not f.startswith("_")]
    return sorted(NAMES)


MODULES = tuple(import_module(f"{__name__}.{name}") for name in module_names())
