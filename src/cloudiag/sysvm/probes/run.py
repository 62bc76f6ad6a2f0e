"""``<zipapp> probe <type> [option ...] -- <target> [address]``: validate again, then check.

The words come from the type's argv (argv.py); they are validated once more with the type's
own declaration, as every request is on the VM, so a probe never acts on words that did
not pass. ``address`` is the one a name was pinned to (argv.py): an IP literal, of the
family the type allows.
"""

from __future__ import annotations

import sys
from importlib import import_module

from ..cli import MAX_TIME_LIMIT
from ..errors import DiagnosticsInputError
from ..registry import get_type
from ..tokens import parse_ip
from ..validate import options_of, validate_for

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

    from ..diagnostic_type import DiagnosticType

#: The types a probe module implements (sysvm/probes/<name>.py with ``probe()``).
PROBES = ("dns", "http", "route", "tcp")


def _pinned(dtype: DiagnosticType, extra: Sequence[str]) -> str | None:
    """The address a name was pinned to, checked (None when there is none)."""
    if not extra:
        return None
    ip = parse_ip(extra[0])
    if len(extra) > 1 or ip is None or ip.version not in dtype.target.families:
        raise DiagnosticsInputError(
            "ipaddress", f"after the target comes at most one IP address, got {list(extra)!r}"
        )
    return str(ip)


def main(args: Sequence[str]) -> int:
    """Run the probe the words name; 2 (and a stderr line) when they are refused."""
    args = list(args)
    try:
        if not args or args[0] not in PROBES:
            raise DiagnosticsInputError("type", f"probe needs one of {', '.join(PROBES)}")
        dtype = get_type(args[0])
        if "--" not in args or args.index("--") + 1 >= len(args):
            raise DiagnosticsInputError("ipaddress", "probe needs '-- <target>'")
        cut = args.index("--")
        params = [w for w in args[1:cut] if w not in dtype.forced_options]
        target, extra = args[cut + 1], args[cut + 2 :]
        # The estimate was held to the operator's limit before this process started.
        req = validate_for(dtype, target, params, time_limit=MAX_TIME_LIMIT)
        pinned = _pinned(dtype, extra)
        options = options_of(req.params, dtype)
        module = import_module(f"{__package__}.{dtype.name}")
        return int(module.probe(req, options, pinned))
    except DiagnosticsInputError as exc:
        sys.stderr.write(f"probe: {exc.message}\n")
        return 2
