"""The argv of a probe: this very package run again as a child process, ``probe <type> …``.

Kept apart from run.py: the type modules use it, and importing the validator from here
would import the registry while it gathers those modules.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..validate import Request

#: The ``tool`` of the types the package does itself: no program to install on the VM.
PROBE_TOOL = "cloudiag-probe"

# .../<package>/probes/argv.py: the package's folder, and where the package lies.
_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_ROOT = os.path.dirname(_PACKAGE_DIR)
_PACKAGE = __name__.rsplit(".", 2)[0]


def self_command() -> list[str]:
    """The argv prefix that runs this package again: the zipapp, or the sources."""
    if os.path.isfile(_ROOT):
        # Inside the zipapp (its path is a file): the same isolated start as the session.
        return [sys.executable, "-I", "-S", _ROOT]
    # From the sources (tests, the agent describing a run): the package is importable
    # only with site-packages, so no -I -S.
    return [sys.executable, "-m", _PACKAGE]


def probe_argv(req: Request, interface: str | None = None) -> list[str]:
    """``<self> probe <type> <options and defaults> -- <target> [address]``.

    A target whose name the VM resolved and checked (pin_destination) goes as it was given,
    followed by the address it was pinned to: the probe goes to that very address, and
    still has the name to report, and for an URL's Host header and TLS server name.
    """
    dtype = req.type
    argv = [*self_command(), "probe", dtype.name, *dtype.forced_options, *req.params]
    for flag, value in dtype.default_options:
        if flag not in req.params:
            argv.extend((flag, value))
    if req.given == req.address:
        return [*argv, "--", req.address]
    return [*argv, "--", req.given, dtype.target.host(req.address)]
