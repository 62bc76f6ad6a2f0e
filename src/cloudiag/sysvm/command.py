"""The tool's argv for a validated request."""

from __future__ import annotations

from .tokens import is_interface_name

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .validate import Request


def build_argv(req: Request, *, interface: str | None = None) -> list[str]:
    """The tool's argv: the type's own order, else the generic one.

    The generic order is forced options, user options, defaults, ``-I interface``, ``--``,
    the target, then the positional words. ``interface`` is used as ``-I`` for types that
    pick their interface from the routing table (arping) when the user gave none.
    """
    dtype = req.type
    if interface is not None and not is_interface_name(interface):
        raise ValueError(f"not an interface name: {interface!r}")
    if dtype.argv is not None:
        return dtype.argv(req, interface)
    argv = [dtype.tool, *dtype.forced_options, *req.params]
    for flag, value in dtype.default_options:
        if flag not in req.params:
            argv.extend((flag, value))
    if interface is not None and dtype.auto_interface and "-I" not in req.params:
        argv.extend(("-I", interface))
    # "--" ends option parsing in all three Debian tools (iputils ping/arping, traceroute
    # 2.x); every target kind also makes sure the target never starts with "-".
    if dtype.end_of_options:
        argv.append("--")
    argv.append(req.address)
    argv.extend(value for _, value in req.positionals)
    return argv
