"""What every probe prints: its report for people, then the one line the parser reads."""

from __future__ import annotations

import json
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

#: The start of a probe's last stdout line; a JSON object follows. The parser takes the
#: last line that starts with it; every other line a probe prints is indented or starts
#: with a word of its own, and text from the network is printed escaped (repr-like), so a
#: peer cannot put a line of its own at the start of a line.
MARK = "@cloudiag-probe "


def say(text: str = "") -> None:
    """One line of the report, at once (a long probe shows its progress live)."""
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def shown(text: str) -> str:
    """Text from the network, safe on one report line: no control characters."""
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)


def finish(result: dict[str, Any], ok: bool, why: str = "") -> int:
    """Print the machine line (and ``why`` on stderr when the check failed): the exit code."""
    sys.stdout.write(MARK + json.dumps(result, sort_keys=True, allow_nan=False) + "\n")
    sys.stdout.flush()
    if not ok and why:
        sys.stderr.write(f"{why}\n")
        sys.stderr.flush()
    return 0 if ok else 1


def ms(seconds: float) -> float:
    """Seconds as milliseconds, rounded to microseconds (how the reports give times)."""
    return round(seconds * 1000.0, 3)
