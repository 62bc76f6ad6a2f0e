"""What the parsers share: bounds on the work, number patterns, small readers of text, and
the conventions of RIPE Atlas's result format that several summaries follow."""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Callable, Iterator
from typing import Any, Final

#: Lines after this many are ignored: the summary must stay cheap whatever a run printed.
MAX_LINES: Final = 10_000
#: Longer lines are cut. The longest real line (traceroute -q 10 with long names) is
#: about 3 000 characters; the cut bounds the regular-expression work per line.
MAX_LINE_CHARS: Final = 4_096
#: Text beyond this is ignored, so that even one enormous "line" costs a bounded amount.
MAX_CHARS: Final = MAX_LINES * 200

#: A parser takes the run's stdout, stderr and exit code (a string, as CloudStack's API
#: returns it) and returns the summary.
Parser = Callable[[str, str, str], dict[str, Any]]

# ASCII everywhere: with Unicode semantics "\d" also matches digits such as "٣", which
# int() and float() would happily read as numbers.
ASCII: Final = re.ASCII
# Bounded digit runs keep int() below CPython's digit limit (which raises ValueError) and
# float() below infinity (which is not JSON).
INT: Final = r"[0-9]{1,9}"
FLOAT: Final = r"[0-9]{1,9}(?:\.[0-9]{1,9})?"

#: Atlas's ``min``/``avg``/``max`` when no reply came back (Atlas writes -1, not null).
NO_RTT: Final = -1.0
#: Atlas's entry for a probe that got no answer.
TIMEOUT: Final = "*"


def as_text(value: object) -> str:
    """The text of a value that should be a str (None and bytes happen in practice)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bytes | bytearray):
        return bytes(value[:MAX_CHARS]).decode("utf-8", errors="replace")
    if value is None:
        return ""
    return str(value)


def lines_of(text: str) -> Iterator[str]:
    """The first MAX_LINES lines of ``text``, each cut to MAX_LINE_CHARS, without ``\\r``."""
    text = text[:MAX_CHARS]
    start = 0
    for _ in range(MAX_LINES):
        if start >= len(text):
            return
        end = text.find("\n", start)
        if end < 0:
            end = len(text)
        yield text[start : min(end, start + MAX_LINE_CHARS)].rstrip("\r")
        start = end + 1


def to_int(text: str | None) -> int | None:
    return int(text) if text else None


def to_float(text: str | None) -> float | None:
    if not text:
        return None
    value = float(text)
    return value if math.isfinite(value) else None


def exit_code(text: str) -> int | None:
    """The exit code as an int, None when it is not a (small) integer."""
    match = re.fullmatch(r"\s*(-?[0-9]{1,9})\s*", text, ASCII)
    return int(match.group(1)) if match else None


def split_named(text: str) -> tuple[str | None, str]:
    """``"gw.lab.test (203.0.113.1)"`` -> (name, address); a bare address -> (None, it).

    The name is None when the tool printed the address in its place (no reverse name).
    """
    text = text.strip()
    if text.endswith(")"):
        cut = text.rfind("(")
        if cut >= 0:
            name, address = text[:cut].strip(), text[cut + 1 : -1].strip()
            if address:
                return (name if name and name != address else None), address
    return None, text


def canonical(address: str) -> str:
    """An IP address in canonical form (so "::0001" equals "::1"); other text unchanged."""
    # ping prints link-local IPv6 sources with their zone ("fe80::1%eth0").
    try:
        return str(ipaddress.ip_address(address.split("%", 1)[0]))
    except ValueError:
        return address


def is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def family(address: str | None) -> int | None:
    """Atlas's ``af``: 4 or 6 for an IP address, None for anything else."""
    if address is None:
        return None
    try:
        return ipaddress.ip_address(address.split("%", 1)[0]).version
    except ValueError:
        return None


def rtt_from(times: list[float]) -> dict[str, float] | None:
    """min/avg/max/mdev as ping computes them, for output cut before ping's own summary."""
    if not times:
        return None
    count = len(times)
    avg = sum(times) / count
    # ping's mdev is the population standard deviation: sqrt(E[t^2] - E[t]^2).
    variance = max(sum(t * t for t in times) / count - avg * avg, 0.0)
    return {
        "min": round(min(times), 3),
        "avg": round(avg, 3),
        "max": round(max(times), 3),
        "mdev": round(math.sqrt(variance), 3),
    }
