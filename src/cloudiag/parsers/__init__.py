"""Parsers of diagnostic output: one per type, each registered beside the others here.

The summary goes to API clients as `jobresult.diagnostics.parsed` (clients that don't know
it ignore it) and to the UI for its tables and charts. Everything in it is plain text and
numbers taken from the tool's output: never markup.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cloudiag.parsers import arping, ping, traceroute

Parser = Callable[[str], dict[str, Any]]

#: By diagnostic type name (sysvm/diagnostics.py declares the types).
PARSERS: dict[str, Parser] = {
    "ping": ping.parse,
    "ping6": ping.parse,
    "traceroute": traceroute.parse,
    "traceroute6": traceroute.parse,
    "arping": arping.parse,
}

#: Parsing stops after this many lines: the output is capped anyway, the work stays bounded.
MAX_LINES = 10_000


def parse(type_name: str, stdout: str) -> dict[str, Any] | None:
    """The summary of a run's stdout, or None for a type without a parser or unusable output."""
    parser = PARSERS.get(type_name.lower())
    if parser is None:
        return None
    lines = stdout.splitlines()[:MAX_LINES]
    try:
        return parser("\n".join(lines))
    except (ValueError, IndexError):  # Odd output never fails a job.
        return None
