"""The requests of a warm session (session.py): one JSON object a line on its stdin.

::

    {"op": "run", "j": "<job id>", "args": [<the one-shot script's words>]}
    {"op": "cancel", "j": "<job id>"}
    {"op": "ping", "n": <int>}

Anything else is refused with the reason, naming the job when the line had a usable id.
"""

from __future__ import annotations

import json
import re

from .frozen import Frozen, set_fields

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

#: The longest request line, newline included.
MAX_LINE = 65536
_JOB_ID_RE = re.compile(r"[A-Za-z0-9_.:-]{1,80}")
_FIELDS = {"run": {"op", "j", "args"}, "cancel": {"op", "j"}, "ping": {"op", "n"}}


class ProtocolError(ValueError):
    """A request line that is not one; ``job`` is its job id when it had a usable one."""

    def __init__(self, why: str, job: str | None = None) -> None:
        super().__init__(why)
        self.why = why
        self.job = job


class SessionRequest(Frozen):
    """One checked request: ``op`` is "run" (``job``, ``args``), "cancel" (``job``) or
    "ping" (``number``)."""

    __slots__ = ("args", "job", "number", "op")
    op: str
    job: str
    args: list[str]
    number: int

    def __init__(
        self, op: str, job: str = "", args: list[str] | None = None, number: int = 0
    ) -> None:
        set_fields(self, op=op, job=job, args=list(args or ()), number=number)


def is_job_id(value: object) -> bool:
    """Whether ``value`` is a job id the protocol accepts."""
    return isinstance(value, str) and _JOB_ID_RE.fullmatch(value) is not None


def parse_request(line: bytes) -> SessionRequest:
    """The request of one line (its newline may be there); ProtocolError says what is wrong."""
    if len(line) > MAX_LINE:
        raise ProtocolError(f"a request line is longer than {MAX_LINE} bytes")
    try:
        obj: Any = json.loads(line.decode("utf-8"))
    except ValueError:
        # UnicodeDecodeError is a ValueError too.
        raise ProtocolError("a request line is not one JSON object") from None
    if not isinstance(obj, dict):
        raise ProtocolError("a request line is not one JSON object")
    job = obj.get("j")
    usable = job if is_job_id(job) else None
    op = obj.get("op")
    # A list or an object is no op (nor hashable).
    if not isinstance(op, str) or op not in _FIELDS:
        raise ProtocolError(f"unknown op {str(op)[:40]!r}: run, cancel or ping", usable)
    extra = sorted(set(obj) - _FIELDS[op])
    if extra:
        raise ProtocolError(f"unknown field {extra[0]!r} in a {op} request", usable)
    if op == "ping":
        number = obj.get("n")
        if not isinstance(number, int) or isinstance(number, bool):
            raise ProtocolError('a ping needs an integer "n"')
        return SessionRequest("ping", number=number)
    if usable is None:
        raise ProtocolError('a job id "j" is 1 to 80 of A-Z a-z 0-9 _ . : -')
    if op == "cancel":
        return SessionRequest("cancel", usable)
    args = obj.get("args")
    if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        raise ProtocolError('"args" must be a list of strings', usable)
    return SessionRequest("run", usable, args)
