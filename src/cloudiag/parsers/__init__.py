"""Structured summaries of finished diagnostics, for the web UI's charts and for API clients.

One parser module per tool: a type's declaration (``sysvm/types/<name>.py``) names its parser
``<parser>``, and the module ``cloudiag/parsers/<parser>.py`` defines ``parse_<parser>``.
``PARSERS`` maps every type to its parser; :func:`parse` picks one by type name. The tools
are Debian's iputils ``ping`` and ``arping`` and Dmitry Butskoy's ``traceroute`` 2.1.x, run
with ``LC_ALL=C``.

Where RIPE Atlas defines a result format (ping, traceroute), a summary uses its field names
and meanings, so that tools that read Atlas results read ours: ``af``, ``dst_addr``,
``dst_name`` (the target as it was asked for, name or address), ``sent``/``rcvd``,
``min``/``avg``/``max`` (-1 when nothing came back, as in Atlas), ``result`` entries with
``rtt`` or ``"x": "*"``. The fields the web UI needs beyond Atlas's (``loss``, ``mdev``,
``unreachable``, ``seq``, reverse ``name``, ``annotation``, ``reached``…) have names Atlas does
not use, so Atlas readers ignore them. The measurement's bookkeeping (``msm_id``,
``prb_id``, ``timestamp``, ``fw``, ``from``) is the job's, in the job's own fields: with it
added, RIPE Atlas's own reader (``ripe.atlas.sagan``) reads the summaries (a test shows it).

Why not jc: ``jc`` (1.26) has ping and traceroute parsers, but it gets real lab output wrong
(tests/unit/test_parsers.py shows each case): its ping drops iputils' ``From …
Destination Host Unreachable`` lines and misreads output cut at the time limit, and its
traceroute drops the ``*`` of unanswered probes, so Atlas's ``{"x": "*"}`` cannot be made
from it. It has no arping parser (Atlas has no arping either).

Every summary is JSON-ready (only dict, list, str, int, float, bool and None; floats are
always finite) and has ``"type"``. Times are float milliseconds. Text taken from the
tool's output (host names, messages) is returned as plain strings and never interpreted:
whoever displays it escapes it.

``ping`` / ``ping6`` (Atlas's ping result)::

    {"type": "ping", "af": 4, "dst_addr": "198.51.100.10", "dst_name": "web.lab.test",
     "src_addr": None, "proto": "ICMP", "size": 56, "ttl": 63,
     "sent": 3, "rcvd": 2, "dup": 1, "min": 0.512, "avg": 0.59, "max": 0.652,
     "result": [{"rtt": 0.607, "ttl": 63, "seq": 1}, {"rtt": 0.652, "ttl": 63, "dup": 1,
                "seq": 1}, {"x": "*", "seq": 2}, {"rtt": 0.512, "ttl": 63, "seq": 3}],
     "mdev": 0.058, "loss": 33.3333, "corrupted": 0, "errors": 1,
     "unreachable": [{"seq": 2, "from": "203.0.113.1",
                      "message": "Destination Host Unreachable"}],
     "complete": True}

``traceroute`` / ``traceroute6`` (Atlas's traceroute result)::

    {"type": "traceroute", "af": 4, "dst_addr": "198.51.100.10", "dst_name": "web.lab.test",
     "size": 60,
     "result": [{"hop": 1, "result": [{"from": "203.0.113.1", "rtt": 0.512,
                                       "name": "gw.lab.test"},
                                      {"x": "*"},
                                      {"from": "203.0.113.1", "rtt": 0.4, "err": "H",
                                       "annotation": "!H"}]}],
     "max_hops": 20, "reached": False}

``arping`` (no Atlas format)::

    {"type": "arping", "destination": "203.0.113.1", "source": "203.0.113.30",
     "interface": "eth2", "sent": 2, "received": 2,
     "replies": [{"address": "203.0.113.1", "mac": "02:C0:C1:16:F1:77", "time": 0.55,
                  "kind": "Unicast"}],
     "macs": ["02:C0:C1:16:F1:77"], "duplicate": False, "dad": False, "complete": True}

``tracepath`` (RIPE Atlas traceroute hops, plus the path MTU)::

    {"type": "tracepath", "af": 4, "dst_addr": "198.51.100.10", "dst_name": "web.lab.test",
     "pmtu": 1400, "forward_hops": 2, "return_hops": 2, "reached": True,
     "result": [{"hop": 2, "pmtu": 1400,
                 "result": [{"from": "203.0.113.1", "name": "gw.lab.test", "rtt": 0.006,
                             "mtu": 1400}, {"x": "*"}]}]}

``mtr`` (RIPE Atlas traceroute hops, plus mtr's statistics per hop)::

    {"type": "mtr", "af": 4, "dst_addr": "198.51.100.10", "dst_name": None, "cycles": 5,
     "size": 64, "reached": True,
     "result": [{"hop": 1, "result": [{"from": "203.0.113.1", "name": "gw.lab.test"}],
                 "loss": 0.0, "sent": 5, "last": 0.068, "avg": 0.077, "best": 0.068,
                 "worst": 0.086, "stdev": 0.006}]}
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Final, cast

from cloudiag.parsers.arping import parse_arping
from cloudiag.parsers.common import MAX_CHARS, MAX_LINE_CHARS, MAX_LINES, Parser, as_text
from cloudiag.parsers.ping import parse_ping
from cloudiag.parsers.traceroute import parse_traceroute
from cloudiag.sysvm.errors import DiagnosticsInputError
from cloudiag.sysvm.registry import TYPES
from cloudiag.sysvm.tokens import validate_address

__all__ = [
    "MAX_CHARS",
    "MAX_LINES",
    "MAX_LINE_CHARS",
    "PARSERS",
    "Parser",
    "parse",
    "parse_arping",
    "parse_ping",
    "parse_traceroute",
    "parser_named",
]


def parser_named(name: str) -> Parser:
    """The function ``parse_<name>`` of the module ``cloudiag.parsers.<name>``.

    Raises ImportError or AttributeError when there is none (a completeness test sees to it
    that every type's parser exists).
    """
    module = importlib.import_module(f"{__name__}.{name}")
    return cast(Parser, getattr(module, f"parse_{name}"))


#: The parser of each diagnostic type, by the type's name (as its declaration names it).
PARSERS: Final[Mapping[str, Parser]] = MappingProxyType(
    {name: parser_named(dtype.parser_name) for name, dtype in TYPES.items()}
)


def parse(
    type_name: str,
    stdout: str,
    stderr: str = "",
    exitcode: str = "0",
    target: str | None = None,
) -> dict[str, Any] | None:
    """The structured summary of a finished diagnostic, or None for a type without parser.

    ``type_name`` is matched case-insensitively. ``target`` is the destination as the job
    asked for it: a summary's ``dst_name`` is that host name or address even when the tool
    was handed the address it resolves to (the VM pins a name to one checked address when
    the operator denies networks, and then the tool never sees the name). Never raises:
    whatever the output (cut short, garbage, markup, megabytes), the result is a summary
    of what could be read, or None. Only the first MAX_LINES lines are read.
    """
    if not isinstance(type_name, str):
        return None
    parser = PARSERS.get(type_name.lower())
    if parser is None:
        return None
    try:
        summary = parser(as_text(stdout), as_text(stderr), as_text(exitcode))
    except Exception:
        # A summary is an extra: odd output must never fail the job or the API answer
        # that carries it. The parsers are written not to raise; this is the backstop.
        return None
    if target is not None and "dst_name" in summary:
        try:
            summary["dst_name"] = validate_address(target)
        except DiagnosticsInputError:
            pass  # Not a host (a URL, host:port…): the parser's dst_name stands.
    return summary
