"""What the parsers of the package's own checks (tcp, dns, http, route) share: reading the
probe's machine line (sysvm/probes/report.py), the last stdout line starting with its mark.

The line is JSON that the probe wrote; it is read as untrusted text all the same: NaN and
Infinity are refused (not JSON-ready), and each summary takes only the fields it knows,
each of the kind it expects.
"""

from __future__ import annotations

import json
from typing import Any, Final

from cloudiag.parsers.common import MAX_CHARS, as_text
from cloudiag.sysvm.probes.report import MARK

#: The machine line may be long (route lists every route): up to this many characters.
MAX_RESULT_CHARS: Final = 1 << 20


def _no_constants(name: str) -> None:
    raise ValueError(f"{name} is not JSON-ready")


def probe_result(stdout: str) -> dict[str, Any] | None:
    """The probe's result object from its output, or None when there is none (cut short)."""
    text = as_text(stdout)[: MAX_CHARS + MAX_RESULT_CHARS]
    start = text.rfind("\n" + MARK)
    start = start + 1 if start >= 0 else (0 if text.startswith(MARK) else -1)
    if start < 0:
        return None
    end = text.find("\n", start)
    line = text[start + len(MARK) : end if end >= 0 else len(text)]
    if len(line) > MAX_RESULT_CHARS:
        return None
    try:
        found = json.loads(line, parse_constant=_no_constants)
    except ValueError:
        return None
    return found if isinstance(found, dict) else None


def pick(found: dict[str, Any] | None, fields: dict[str, tuple[type, ...]]) -> dict[str, Any]:
    """The known fields of a result, each None unless it has one of its allowed kinds."""
    found = found or {}
    picked: dict[str, Any] = {}
    for name, kinds in fields.items():
        value = found.get(name)
        # bool is an int to isinstance(): a flag never passes for a number.
        ok = isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds)
        picked[name] = value if ok else None
    return picked


def failure(stderr: str) -> str:
    """The probe's one-line reason on stderr (its last non-empty line), or ""."""
    lines = [line.strip() for line in as_text(stderr)[-4096:].splitlines() if line.strip()]
    return lines[-1] if lines else ""
