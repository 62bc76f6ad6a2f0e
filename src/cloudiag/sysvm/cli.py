"""The script's entry point on the VM: the second wall of validation, then the tool.

``cloudiag-sysvm.pyz [--time-limit S] [--deny CIDR]... [--no-deny] <type> <target> [param ...]``

Limits and policy come as arguments, never from the environment (SSH does not pass it):
``--time-limit`` is the operator's limit for the options' estimate, ``--deny`` names a
forbidden network (repeatable; without any, the default list of policy.py applies) and
``--no-deny`` allows every destination. ``--version`` prints the build's content hash.

``cloudiag-sysvm.pyz collect …`` gathers getDiagnosticsData's zip instead (collect.py).

``cloudiag-sysvm.pyz serve [--max-jobs N]`` is the warm session instead (session.py): one
process that runs many requests, each given these same words. ``cloudiag-sysvm.pyz probe
<type> …`` is a check the package does itself (probes/), run by a request as its tool.
"""

from __future__ import annotations

import os
import sys

from . import collect
from .command import build_argv
from .errors import DiagnosticsInputError
from .framing import RecordWriter
from .policy import DEFAULT_DENIED_NETWORKS, parse_networks, pin_destination
from .process import exit_status, run_tool
from .route import choose_interface
from .tokens import FLOAT_RE
from .validate import validate

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

    from .policy import Network

USAGE = (
    "usage: cloudiag-sysvm [--time-limit S] [--deny CIDR]... [--no-deny] "
    "<type> <target> [param ...] | serve [--max-jobs N] | probe <type> ... | --version\n"
)
#: The longest limit the script accepts (cloudiag.domain.MAX_TIME_LIMIT, held equal by a test).
MAX_TIME_LIMIT = 3600.0
# The validated estimate excludes name resolution; leave a margin before killing.
_KILL_MARGIN = 30.0


class UsageError(ValueError):
    """The script's own arguments are malformed."""


def parse_arguments(args: Sequence[str]) -> tuple[float | None, list[Network], list[str]]:
    """(time limit, denied networks, the request's words) of the script's arguments."""
    args = list(args)
    limit: float | None = None
    denied: list[str] = []
    no_deny = False
    while args and args[0].startswith("--"):
        flag = args.pop(0)
        if flag == "--no-deny":
            no_deny = True
            continue
        if flag not in ("--time-limit", "--deny") or not args:
            raise UsageError(f"unknown option or missing value: {flag}")
        value = args.pop(0)
        if flag == "--deny":
            denied.append(value)
        elif limit is not None or not FLOAT_RE.fullmatch(value):
            raise UsageError(f"--time-limit needs one number of seconds, got {value!r}")
        else:
            limit = float(value)
            if not 0 < limit <= MAX_TIME_LIMIT:
                raise UsageError(f"--time-limit must be in (0, {MAX_TIME_LIMIT:g}] seconds")
    if no_deny and denied:
        raise UsageError("--no-deny and --deny cannot be used together")
    if len(args) < 2:
        raise UsageError("a type and a target are needed")
    try:
        networks = parse_networks(() if no_deny else denied or DEFAULT_DENIED_NETWORKS)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return limit, networks, args


def prepare(args: Sequence[str], writer: RecordWriter) -> tuple[list[str], float] | None:
    """Validate the script's words again (the server validated first): (argv, hard limit).

    None for a refused request, once its "refused" and exit records are written. A name
    aimed at an address gets an "err" note saying which address it stands for.
    """
    try:
        limit, networks, words = parse_arguments(args)
        req = validate(words[0], words[1], words[2:], time_limit=limit)
        pinned = pin_destination(req, networks)
    except UsageError as exc:
        writer.write("refused", f"{exc}\n{USAGE}")
        writer.write("exit", code=-1)
        return None
    except DiagnosticsInputError as exc:
        writer.write("refused", exc.message)
        writer.write("exit", code=-1)
        return None
    if pinned.address != req.address:
        # The tool prints the address only: say which name it stands for.
        writer.write("err", f"[cloudiag] {req.address} is {pinned.address}\n")
        req = pinned
    interface = None
    if req.type.auto_interface and "-I" not in req.params:
        interface = choose_interface(req.type.target.host(req.address))
    hard_limit = (req.type.time_limit if limit is None else limit) + _KILL_MARGIN
    return build_argv(req, interface=interface), hard_limit


def main(argv: Sequence[str] | None = None, *, stamp: str = "source") -> int:
    """Validate again (the server validated first), then run the tool; or serve a session.

    Returns the process exit status: 2 for a refused request (a "refused" record says why).
    """
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["serve"]:
        # Imported here: the one-shot run does without the session's modules.
        from .session import serve

        return serve(args[1:], stamp=stamp)
    if args[:1] == ["probe"]:
        from .probes.run import main as probe

        return probe(args[1:])
    writer = RecordWriter(sys.stdout.buffer)
    if args == ["--version"]:
        sys.stdout.write(f"cloudiag-sysvm {stamp}\n")
        return 0
    if args[:1] == [collect.COMMAND]:
        code = collect.run(args[1:], writer)
        release_stdout()
        return code
    planned = prepare(args, writer)
    if planned is None:
        return 2
    tool_argv, hard_limit = planned
    code = run_tool(tool_argv, sys.stdout.buffer, hard_limit=hard_limit)
    release_stdout()
    return exit_status(code)


def release_stdout() -> None:
    """Flush stdout at the end; a reader that went away leaves no traceback behind."""
    try:
        sys.stdout.flush()
    except OSError:
        # Point stdout at /dev/null so that the interpreter's final flush does not print
        # a BrokenPipeError traceback.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
