"""``python3 -m cloudiag.sysvm``: the script run from its sources (the VM runs the zipapp)."""

from __future__ import annotations

import sys

from .cli import main

sys.exit(main())
