"""The lab's lifecycle: `cloudiag lab up|down|status|stop|start`, and what it requires.

Synchronous on purpose (it runs `ip` step by step); asyncio callers use
``asyncio.to_thread``. ``building`` makes the namespaces and their wiring, ``services``
runs the lab's servers, ``resolv`` gives each namespace the lab's DNS server, and
``inspection`` reads the lab back from the kernel; this module decides what to do with them.

State (the web root, pid and log files of the servers) lives in
``/run/cloudiag-lab/<prefix>`` (``$CLOUDIAG_LAB_STATE_DIR/<prefix>`` if set). `status` does
not trust it: it reads the namespaces, their addresses and their processes from the kernel.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

from cloudiag.lab import system
from cloudiag.lab.building import build, create_node
from cloudiag.lab.errors import LabError, as_lab_error, need_root
from cloudiag.lab.inspection import inspect, lab_namespaces, service_info
from cloudiag.lab.models import LabStatus
from cloudiag.lab.resolv import remove_resolv
from cloudiag.lab.services import pid_file_service, start_services
from cloudiag.lab.system import CommandError
from cloudiag.lab.topology import (
    NODES,
    Node,
    all_namespaces,
    namespace,
    node,
    switch_namespace,
    validate_prefix,
)

__all__ = [
    "DEFAULT_PREFIX",
    "LabError",
    "LabStatus",
    "check_requirements",
    "check_warnings",
    "default_prefix",
    "default_state_dir",
    "down",
    "start_vm",
    "status",
    "stop_vm",
    "up",
]

DEFAULT_PREFIX = "cdlab"
STATE_ROOT = Path("/run/cloudiag-lab")

#: Tool -> Debian package, needed to build and use the lab.
REQUIRED_TOOLS = {
    "ip": "iproute2",
    "ping": "iputils-ping",
    "traceroute": "traceroute",
    "arping": "iputils-arping",
}
#: Optional: without it the lab has no DNS server.
OPTIONAL_TOOLS = {"dnsmasq": "dnsmasq-base"}


def default_prefix() -> str:
    """The prefix to use when none is given: $CLOUDIAG_LAB_PREFIX, else ``cdlab``."""
    return os.environ.get("CLOUDIAG_LAB_PREFIX") or DEFAULT_PREFIX


def default_state_dir(prefix: str) -> Path:
    """``$CLOUDIAG_LAB_STATE_DIR/<prefix>``, else ``/run/cloudiag-lab/<prefix>``."""
    root = os.environ.get("CLOUDIAG_LAB_STATE_DIR")
    return (Path(root) if root else STATE_ROOT) / prefix


def _state_dir(prefix: str, state_dir: Path | None) -> Path:
    # A given state_dir is the lab's own directory (the prefix is not appended).
    return state_dir if state_dir is not None else default_state_dir(prefix)


def _prefix(prefix: str) -> str:
    try:
        return validate_prefix(prefix)
    except ValueError as exc:
        raise LabError(str(exc)) from None


def check_requirements() -> list[str]:
    """What is missing to build the lab, one message each; an empty list means ready.

    Only blockers are listed; the optional DNS server is reported by `check_warnings`.
    """
    missing: list[str] = []
    if os.geteuid() != 0:
        missing.append("the lab needs root: run it as root or with sudo")
    for tool, package in REQUIRED_TOOLS.items():
        if system.which(tool) is None:
            missing.append(f"missing: {tool} (apt-get install {package})")
    return missing


def check_warnings() -> list[str]:
    """What the lab would lack without blocking it (no dnsmasq: no DNS server)."""
    return [
        f"optional: {tool} (apt-get install {package}); without it the lab has no DNS server"
        for tool, package in OPTIONAL_TOOLS.items()
        if system.which(tool) is None
    ]


def status(prefix: str = DEFAULT_PREFIX, state_dir: Path | None = None) -> LabStatus:
    """The lab as it really is: which namespaces exist, their NICs read back with `ip -j`.

    Every declared namespace is listed; one that does not exist is ``running: false`` with
    no interfaces (a stopped VM). Raises LabError if the lab exists and we are not root.
    """
    prefix = _prefix(prefix)
    return inspect(prefix, _state_dir(prefix, state_dir)).status


def up(prefix: str = DEFAULT_PREFIX, state_dir: Path | None = None) -> LabStatus:
    """Build the lab and return its status; idempotent.

    A complete lab is left as it is (a server that died is restarted); a partial one is
    torn down and rebuilt. Raises LabError when something is missing (root, tools) or a
    step fails, in which case whatever was built is removed again.
    """
    prefix = _prefix(prefix)
    missing = check_requirements()
    need_root("up")
    if missing:
        raise LabError("cannot build the lab: " + "; ".join(missing))
    state = _state_dir(prefix, state_dir)
    current = inspect(prefix, state)
    try:
        with as_lab_error():
            if current.intact:
                stale = [n for n in NODES if n.service and not current.services[n.service.kind]]
                if stale:
                    start_services(prefix, state, stale)
            else:
                if current.existing or state.exists():
                    down(prefix, state_dir)
                build(prefix, state)
    except BaseException:
        if not current.intact:
            # Never leave half a lab behind; the original error is the one that matters.
            with contextlib.suppress(Exception):
                down(prefix, state_dir)
        raise
    return status(prefix, state_dir)


def down(prefix: str = DEFAULT_PREFIX, state_dir: Path | None = None) -> None:
    """Remove every namespace of the lab and every process in them, and its state.

    The servers are found by pid file and by `ip netns pids`, so nothing survives. Safe to
    call when nothing is up. Raises LabError if something could not be removed.
    """
    prefix = _prefix(prefix)
    state = _state_dir(prefix, state_dir)
    existing = lab_namespaces(prefix)
    if not existing and not state.exists():
        for ns in all_namespaces(prefix):
            remove_resolv(ns)
        return
    need_root("down")
    pids = {p for n in NODES if (p := pid_file_service(state, n)) is not None}
    for ns in existing:
        pids.update(system.namespace_pids(ns))
    survivors = system.terminate(pids)
    errors: list[str] = []
    for ns in existing:
        try:
            system.ip("netns", "delete", ns)
        except CommandError as exc:
            errors.append(str(exc))
    for ns in all_namespaces(prefix):
        remove_resolv(ns)
    shutil.rmtree(state, ignore_errors=True)
    if state_dir is None:
        with contextlib.suppress(OSError):
            state.parent.rmdir()  # only when empty: other labs keep theirs
    left = lab_namespaces(prefix)
    if survivors:
        errors.append(f"processes still running: {', '.join(map(str, survivors))}")
    if left:
        errors.append(f"namespaces still there: {', '.join(left)}")
    if errors:
        raise LabError("lab down incomplete: " + "; ".join(errors))


# --- one VM at a time -------------------------------------------------------------------


def _node(name: str) -> Node:
    try:
        n = node(name)
    except KeyError:
        names = ", ".join(x.name for x in NODES)
        raise LabError(f"no VM {name!r} in the lab; one of: {names}") from None
    return n


def stop_vm(prefix: str, name: str, state_dir: Path | None = None) -> None:
    """Stop one VM of the lab (by name or role): its processes and namespace go away.

    Its NICs vanish with it, as a stopped VM's would; `start_vm` brings it back identical.
    """
    prefix = _prefix(prefix)
    n = _node(name)
    ns = namespace(prefix, n)
    if ns not in lab_namespaces(prefix):
        return
    need_root("stop")
    survivors = system.terminate(system.namespace_pids(ns))
    if survivors:
        raise LabError(f"cannot stop {n.name}: processes {survivors} did not exit")
    with as_lab_error():
        system.ip("netns", "delete", ns)


def start_vm(prefix: str, name: str, state_dir: Path | None = None) -> None:
    """Start a stopped VM of the lab again, with the same NICs, MACs and addresses."""
    prefix = _prefix(prefix)
    n = _node(name)
    need_root("start")
    existing = lab_namespaces(prefix)
    if switch_namespace(prefix) not in existing:
        raise LabError(f"the lab {prefix!r} is not up: run `cloudiag lab up` first")
    ns = namespace(prefix, n)
    state = _state_dir(prefix, state_dir)
    with as_lab_error():
        if ns not in existing:
            try:
                create_node(prefix, n)
            except BaseException:
                with contextlib.suppress(CommandError):
                    system.ip("netns", "delete", ns)
                raise
        if n.service is not None:
            svc = service_info(ns, n.service, state)
            if not svc.running:
                start_services(prefix, state, [n])
