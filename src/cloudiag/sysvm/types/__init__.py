"""One module per diagnostic type, each declaring ``TYPE``; this list is the registry's.

Adding a type is a new module here and its name in ``MODULES`` (listing them keeps the
script's start-up free of pkgutil's import cost, about 25 ms, and works inside the zipapp).
"""

from __future__ import annotations

from . import arping, ping, ping6, traceroute, traceroute6

MODULES = (ping, traceroute, arping, ping6, traceroute6)
