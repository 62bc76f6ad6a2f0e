"""``<zipapp> probe <type> [option ...] -- <target> [extra ...]``: validate again, then check.

The words come from the type's argv (argv.py); they are validated once more with the type's
own declaration, as every request is on the VM, so a probe never acts on words that did
not pass.
"""

from __future__ import annotations

import sys
from importlib import import_module

from ..cli import MAX_TIME_LIMIT
from ..errors import DiagnosticsInputError
from ..registry import get_type
from ..validate import options_of, validate_for

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

#: The types a probe module implements (sysvm/probes/<name>.py with ``probe()``).
PROBES = ("dns", "http", "route", "tcp")


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
        options = options_of(req.params, dtype)
        module = import_module(f"{__package__}.{dtype.name}")
        return int(module.probe(req, options, extra))
    except DiagnosticsInputError as exc:
        sys.stderr.write(f"probe: {exc.message}\n")
        return 2
