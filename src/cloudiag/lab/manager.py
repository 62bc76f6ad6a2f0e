"""The lab's lifecycle: `cloudiag lab up|down|status|stop|start`, and what it requires.

Synchronous on purpose (it runs `ip` step by step); asyncio callers use
``asyncio.to_thread``. ``building`` makes the namespaces and their wiring, ``services``
runs the lab's servers, ``resolv`` gives each namespace the lab's DNS server, and
``inspection`` reads the lab back from the kernel, and ``access`` gives the system VMs their
own files and sshd (`up --ssh`); this module decides what to do with them.

State (the web root, pid and log files of the servers) lives in
``/run/cloudiag-lab/<prefix>`` (``$CLOUDIAG_LAB_STATE_DIR/<prefix>`` if set). `status` does
not trust it: it reads the namespaces, their addresses and their processes from the kernel.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

from cloudiag.lab import access, certs, mountns, sshd, system
from cloudiag.lab.building import build, create_node
from cloudiag.lab.errors import LabError, as_lab_error, need_root
from cloudiag.lab.inspection import inspect, lab_namespaces, service_info
from cloudiag.lab.layout import LabSize, Layout, layout
from cloudiag.lab.models import LabStatus
from cloudiag.lab.resolv import remove_lab_resolv
from cloudiag.lab.services import pid_file_service, start_services
from cloudiag.lab.size_record import read_size, write_size
from cloudiag.lab.system import CommandError
from cloudiag.lab.topology import (
    Node,
    namespace,
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
    "set_script",
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
    "tracepath": "iputils-tracepath",
    "mtr": "mtr-tiny",
}
#: Optional: without it the lab has no DNS server.
OPTIONAL_TOOLS = {"dnsmasq": "dnsmasq-base"}
#: Needed for `lab up --ssh`: the VMs' sshd, the keys, their mount namespaces.
SSH_TOOLS = {
    "/usr/sbin/sshd": "openssh-server",
    "ssh-keygen": "openssh-client",
    "nsenter": "util-linux",
    "unshare": "util-linux",
}


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


def _layout(state: Path, size: LabSize | None = None) -> Layout:
    """The layout of ``size``, else of the size the lab in ``state`` was built with."""
    try:
        return layout(size if size is not None else read_size(state))
    except ValueError as exc:
        raise LabError(str(exc)) from None


def _prefix(prefix: str) -> str:
    try:
        return validate_prefix(prefix)
    except ValueError as exc:
        raise LabError(str(exc)) from None


def check_requirements(*, ssh: bool = False) -> list[str]:
    """What is missing to build the lab (with sshd: ``ssh``), one message each; an empty
    list means ready.

    Only blockers are listed; the optional DNS server is reported by `check_warnings`.
    """
    missing: list[str] = []
    if os.geteuid() != 0:
        missing.append("the lab needs root: run it as root or with sudo")
    tools = {**REQUIRED_TOOLS, **(SSH_TOOLS if ssh else {})}
    for tool, package in tools.items():
        # sshd is named by its absolute path: that is how it must be started.
        present = os.access(tool, os.X_OK) if tool.startswith("/") else system.which(tool)
        if not present:
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


def up(
    prefix: str = DEFAULT_PREFIX,
    state_dir: Path | None = None,
    *,
    ssh: bool = False,
    size: LabSize | None = None,
) -> LabStatus:
    """Build the lab and return its status; idempotent.

    ``ssh``: also run sshd in each system VM (`lab up --ssh`); a lab that has it keeps it.
    ``size``: zones, hosts and routers per host (default: the size the lab has, else the
    one-zone, one-host, one-router lab); a lab of another size is rebuilt.
    A complete lab is left as it is (a server or an sshd that died is restarted); a partial
    one is torn down and rebuilt. Raises LabError when something is missing (root, tools),
    the size cannot be built or a step fails, in which case whatever was built is removed
    again.
    """
    prefix = _prefix(prefix)
    state = _state_dir(prefix, state_dir)
    lay = _layout(state, size)
    ssh = ssh or access.enabled(state)
    missing = check_requirements(ssh=ssh)
    need_root("up")
    if missing:
        raise LabError("cannot build the lab: " + "; ".join(missing))
    current = inspect(prefix, state)
    keep = current.intact and read_size(state) == lay.size
    try:
        with as_lab_error():
            if keep:
                stale = [n for n in lay.nodes if n.service and not current.services[n.service.stem]]
                if stale:
                    start_services(prefix, state, stale)
                if ssh:
                    access.setup(state, lay.system_vms())
                    running = current.sshd or {}
                    for n in lay.system_vms():
                        if not running.get(n.name):
                            access.start_vm(prefix, state, n)
            else:
                if current.existing or state.exists():
                    down(prefix, state_dir)
                # First: a `down` after a crash halfway through finds every node.
                write_size(state, lay.size)
                build(prefix, state, lay)
                if ssh:
                    access.setup(state, lay.system_vms())
                    for n in lay.system_vms():
                        access.start_vm(prefix, state, n)
    except BaseException:
        if not keep:
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
        remove_lab_resolv(prefix)
        certs.remove_ca(prefix)
        return
    need_root("down")
    lay = layout(read_size(state))
    pids = {p for n in lay.nodes if (p := pid_file_service(state, n)) is not None}
    for n in lay.system_vms():
        pids.update(p for p in (sshd.pid_file_sshd(state, n),) if p is not None)
        pids.update(mountns.pids(state, n))
    for found in system.pids_by_namespace(existing).values():
        pids.update(found)
    survivors = system.terminate(pids)
    # The mount namespaces first: each holds a sysfs of its VM's network namespace.
    errors: list[str] = mountns.remove_all(state, lay.system_vms())
    try:
        system.ip_batch([["netns", "delete", ns] for ns in existing], force=True)
    except CommandError as exc:
        errors.append(str(exc))
    remove_lab_resolv(prefix)
    certs.remove_ca(prefix)
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


def _node(state: Path, name: str) -> Node:
    lay = _layout(state)
    try:
        n = lay.node(name)
    except KeyError:
        names = ", ".join(x.name for x in lay.nodes)
        raise LabError(f"no VM {name!r} in the lab; one of: {names}") from None
    return n


def stop_vm(prefix: str, name: str, state_dir: Path | None = None) -> None:
    """Stop one VM of the lab (by name or role): its processes and namespace go away.

    Its NICs vanish with it, as a stopped VM's would, and so do its sshd and its mount
    namespace; `start_vm` brings it back identical.
    """
    prefix = _prefix(prefix)
    state = _state_dir(prefix, state_dir)
    n = _node(state, name)
    ns = namespace(prefix, n)
    if ns not in lab_namespaces(prefix) and not mountns.exists(state, n):
        return
    need_root("stop")
    with as_lab_error():
        if n in _layout(state).system_vms():
            access.stop_vm(prefix, state, n)
        survivors = system.terminate(system.namespace_pids(ns))
        if survivors:
            raise LabError(f"cannot stop {n.name}: processes {survivors} did not exit")
        if ns in lab_namespaces(prefix):
            system.ip("netns", "delete", ns)


def start_vm(prefix: str, name: str, state_dir: Path | None = None) -> None:
    """Start a stopped VM of the lab again, with the same NICs, MACs and addresses (and,
    in a lab with SSH, its sshd with the same host key)."""
    prefix = _prefix(prefix)
    state = _state_dir(prefix, state_dir)
    n = _node(state, name)
    need_root("start")
    existing = lab_namespaces(prefix)
    if switch_namespace(prefix) not in existing:
        raise LabError(f"the lab {prefix!r} is not up: run `cloudiag lab up` first")
    ns = namespace(prefix, n)
    with as_lab_error():
        if ns not in existing:
            try:
                create_node(prefix, n, _layout(state).segments)
            except BaseException:
                with contextlib.suppress(CommandError):
                    system.ip("netns", "delete", ns)
                raise
        if n.service is not None:
            svc = service_info(ns, n.service, state)
            if not svc.running:
                start_services(prefix, state, [n])
        if access.enabled(state) and n in _layout(state).system_vms():
            if not sshd.read_state(ns, state, n).listening:
                access.start_vm(prefix, state, n)


def set_script(prefix: str, name: str, form: str, state_dir: Path | None = None) -> None:
    """Switch a system VM's /opt/cloud/bin/diagnostics.py to the form ``python3`` (b'…'
    reprs) or ``python2`` (raw text); the lab must have SSH (`up --ssh`)."""
    prefix = _prefix(prefix)
    state = _state_dir(prefix, state_dir)
    n = _node(state, name)
    need_root("script")
    if not access.enabled(state):
        raise LabError(f"the lab {prefix!r} has no SSH: run `cloudiag lab up --ssh` first")
    access.set_script(state, n, form)


def rekey(prefix: str, name: str, state_dir: Path | None = None) -> None:
    """Give a system VM a new host key and restart its sshd (see ``access.rekey``); the lab
    must have SSH (`up --ssh`)."""
    prefix = _prefix(prefix)
    state = _state_dir(prefix, state_dir)
    n = _node(state, name)
    need_root("rekey")
    if not access.enabled(state):
        raise LabError(f"the lab {prefix!r} has no SSH: run `cloudiag lab up --ssh` first")
    with as_lab_error():
        access.rekey(prefix, state, n)
