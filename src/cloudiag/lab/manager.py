"""Build, inspect and remove the lab zone: `cloudiag lab up|down|status|stop|start`.

Synchronous on purpose (it runs `ip` step by step); asyncio callers use
``asyncio.to_thread``. Nothing is ever created in the root namespace: veth pairs are made
from inside the switch namespace with their peer placed straight into the node's namespace,
and every address and route comes from the declaration in ``topology``, which only uses
documentation and link-local ranges.

State (the web root, pid and log files of the servers) lives in
``/run/cloudiag-lab/<prefix>`` (``$CLOUDIAG_LAB_STATE_DIR/<prefix>`` if set). `status` does
not trust it: it reads the namespaces, their addresses and their processes from the kernel.

Each lab namespace also gets ``/etc/netns/<namespace>/resolv.conf`` pointing at the lab's
DNS server, which `ip netns exec` mounts over /etc/resolv.conf: a name looked up inside the
lab is asked of the lab, never of the host's resolver. `down` removes those files.
"""

from __future__ import annotations

import contextlib
import grp
import logging
import os
import pwd
import shutil
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cloudiag.lab import system
from cloudiag.lab.models import InterfaceInfo, LabStatus, NamespaceInfo, ServiceInfo, ZoneInfo
from cloudiag.lab.system import CommandError
from cloudiag.lab.topology import (
    DEFAULT_ROUTE,
    DNS,
    DNS_DOMAIN,
    DNS_RECORDS,
    NODES,
    SEGMENTS,
    SWITCH,
    TARGETS,
    VM_ROLES,
    ZONE_NAME,
    Node,
    Service,
    all_namespaces,
    bridge_mac,
    in_lab,
    mac_address,
    namespace,
    node,
    port_mac,
    port_name,
    stable_uuid,
    switch_namespace,
    validate_prefix,
    zone_uuid,
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

log = logging.getLogger(__name__)

DEFAULT_PREFIX = "cdlab"
STATE_ROOT = Path("/run/cloudiag-lab")
#: `ip netns exec NS` bind-mounts every file of /etc/netns/NS over the one of /etc.
ETC_NETNS = Path("/etc/netns")
_RESOLV_MARK = "# cloudiag lab: names resolve through the lab's own DNS server"

#: Tool -> Debian package, needed to build and use the lab.
REQUIRED_TOOLS = {
    "ip": "iproute2",
    "ping": "iputils-ping",
    "traceroute": "traceroute",
    "arping": "iputils-arping",
}
#: Optional: without it the lab has no DNS server.
OPTIONAL_TOOLS = {"dnsmasq": "dnsmasq-base"}

#: How long a freshly started server may take to bind its socket.
SERVICE_START_TIMEOUT = 10.0

_ROLE_ORDER = (*VM_ROLES, "upstream", "web", "dns", "switch")

_INDEX_HTML = """<!doctype html>
<html><head><title>cloudiag lab</title></head>
<body><h1>cloudiag lab</h1><p>The web server of the lab zone ({prefix}).</p></body></html>
"""


class LabError(RuntimeError):
    """The lab cannot be built, changed or read; the message says why and what to do."""


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


def _need_root(action: str) -> None:
    if os.geteuid() != 0:
        # Network namespaces, veth pairs and bridges all need CAP_NET_ADMIN / CAP_SYS_ADMIN.
        raise LabError(f"lab {action} needs root: run it as root or with sudo")


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


# --- reading the real state -------------------------------------------------------------


@dataclass(frozen=True)
class _Inspection:
    status: LabStatus
    #: Namespaces of this prefix that exist now.
    existing: frozenset[str]
    #: Every namespace exists with its declared NICs up and addressed (servers aside).
    intact: bool
    #: Service kind -> running.
    services: dict[str, bool]


def _lab_namespaces(prefix: str) -> list[str]:
    # Prefixes have no "-", so "<prefix>-" cannot match another lab's namespaces.
    try:
        names = system.list_namespaces()
    except (CommandError, ValueError) as exc:
        raise LabError(f"cannot list network namespaces: {exc}") from None
    return [n for n in names if n.startswith(f"{prefix}-")]


def _links(ns: str) -> list[dict[str, Any]]:
    try:
        return system.ip_json("-n", ns, "addr", "show")
    except (CommandError, ValueError):
        # Deleted under our feet (a concurrent stop): it simply is not running.
        return []


def _v4(link: dict[str, Any]) -> dict[str, Any] | None:
    return next((a for a in link.get("addr_info", []) if a.get("family") == "inet"), None)


def _interface_info(link: dict[str, Any], network: str | None) -> InterfaceInfo:
    addr = _v4(link)
    return InterfaceInfo(
        name=str(link.get("ifname", "")),
        network=network,
        address=str(addr["local"]) if addr else None,
        prefixlen=int(addr["prefixlen"]) if addr else None,
        mac=link.get("address"),
        state=str(link.get("operstate", "UNKNOWN")),
    )


def _nics_ok(n: Node, links: dict[str, dict[str, Any]]) -> bool:
    for iface in n.interfaces:
        link = links.get(iface.name)
        addr = _v4(link) if link else None
        if (
            link is None
            or link.get("operstate") != "UP"
            or addr is None
            or addr.get("local") != str(iface.address.ip)
            or addr.get("prefixlen") != iface.address.network.prefixlen
        ):
            return False
    return True


def _is_service(pid: int, svc: Service) -> bool:
    argv = system.cmdline(pid)
    if svc.kind == "web":
        return "http.server" in argv
    return bool(argv) and os.path.basename(argv[0]) == "dnsmasq"


def _service_pid(ns: str, svc: Service) -> int | None:
    return next((p for p in system.namespace_pids(ns) if _is_service(p, svc)), None)


def _service_info(ns: str | None, svc: Service, state: Path) -> ServiceInfo:
    pid = _service_pid(ns, svc) if ns else None
    running = pid is not None and system.listening(pid, svc.protocol, str(svc.address), svc.port)
    reason = None
    if not running:
        if svc.kind == "dns" and system.which("dnsmasq") is None:
            reason = "dnsmasq is not installed (apt-get install dnsmasq-base)"
        elif ns is not None:
            reason = f"not running (log: {state / (svc.kind + '.log')})"
        else:
            reason = "its namespace does not exist"
    return ServiceInfo(
        name=svc.program,
        running=running,
        pid=pid if running else None,
        listen=f"{svc.address}:{svc.port}/{svc.protocol}",
        reason=reason,
    )


def _node_entry(
    prefix: str, n: Node, existing: frozenset[str], state: Path
) -> tuple[NamespaceInfo, bool, ServiceInfo | None]:
    ns = namespace(prefix, n)
    present = ns in existing
    links = {str(link.get("ifname")): link for link in _links(ns)} if present else {}
    declared = [i.name for i in n.interfaces]
    # Declared NICs first, in their order, then anything else that is there.
    names = [x for x in declared if x in links] + sorted(
        x for x in links if x not in declared and x != "lo"
    )
    interfaces = [
        _interface_info(links[x], i.segment if (i := n.interface(x)) else None) for x in names
    ]
    intact = present and _nics_ok(n, links)
    service = _service_info(ns if present else None, n.service, state) if n.service else None

    def on(segment: str) -> str | None:
        return next((i.address for i in interfaces if i.network == segment and i.address), None)

    entry = NamespaceInfo(
        namespace=ns,
        name=n.name,
        role=n.role,
        systemvmtype=n.systemvmtype,
        uuid=stable_uuid(prefix, n.name),
        running=intact and (service is None or service.running),
        interfaces=interfaces,
        controladdress=on("control"),
        publicaddress=on("public"),
        guestaddress=on("guest"),
        service=service,
    )
    return entry, intact, service


def _switch_entry(prefix: str, existing: frozenset[str]) -> tuple[NamespaceInfo, bool]:
    ns = switch_namespace(prefix)
    links = {str(link.get("ifname")): link for link in _links(ns)} if ns in existing else {}
    bridges = [links[s.name] for s in SEGMENTS if s.name in links]
    # Admin state, not operstate: a bridge whose VMs are all stopped is down but fine.
    intact = len(bridges) == len(SEGMENTS) and all("UP" in b.get("flags", []) for b in bridges)
    interfaces = [_interface_info(b, str(b.get("ifname"))) for b in bridges]
    entry = NamespaceInfo(
        namespace=ns,
        name=SWITCH,
        role="switch",
        systemvmtype=None,
        uuid=stable_uuid(prefix, SWITCH),
        running=intact,
        interfaces=interfaces,
        controladdress=None,
        publicaddress=None,
        guestaddress=None,
    )
    return entry, intact


def _inspect(prefix: str, state: Path) -> _Inspection:
    existing = frozenset(_lab_namespaces(prefix))
    if existing:
        _need_root("status")
    entries: list[NamespaceInfo] = []
    intact_all = True
    services: dict[str, bool] = {}
    warnings: list[str] = []
    for n in NODES:
        entry, intact, service = _node_entry(prefix, n, existing, state)
        entries.append(entry)
        intact_all = intact_all and intact
        if n.service is not None and service is not None:
            services[n.service.kind] = service.running
            if existing and not service.running and n.service.kind == "dns":
                warnings.append(f"the DNS server is not running: {service.reason}")
    switch, switch_ok = _switch_entry(prefix, existing)
    entries.append(switch)
    intact_all = intact_all and switch_ok
    entries.sort(key=lambda e: _ROLE_ORDER.index(e.role))
    lab_status = LabStatus(
        prefix=prefix,
        up=intact_all and services.get("web", False),
        zone=ZoneInfo(name=ZONE_NAME, uuid=zone_uuid(prefix)),
        namespaces=entries,
        targets=dict(TARGETS),
        warnings=warnings,
    )
    return _Inspection(lab_status, existing, intact_all, services)


def status(prefix: str = DEFAULT_PREFIX, state_dir: Path | None = None) -> LabStatus:
    """The lab as it really is: which namespaces exist, their NICs read back with `ip -j`.

    Every declared namespace is listed; one that does not exist is ``running: false`` with
    no interfaces (a stopped VM). Raises LabError if the lab exists and we are not root.
    """
    prefix = _prefix(prefix)
    return _inspect(prefix, _state_dir(prefix, state_dir)).status


# --- building ---------------------------------------------------------------------------


def _sysctls(n: Node | None) -> dict[str, str]:
    # No IPv6 in the lab: it spares DAD, router solicitations and MLD noise on the bridges.
    values = {
        "net.ipv6.conf.all.disable_ipv6": "1",
        "net.ipv6.conf.default.disable_ipv6": "1",
    }
    if n is not None and n.forwarding:
        values["net.ipv4.ip_forward"] = "1"
    return values


def _create_namespace(ns: str, n: Node | None) -> None:
    system.ip("netns", "add", ns)
    system.set_sysctls(ns, _sysctls(n))
    system.ip("-n", ns, "link", "set", "lo", "up")


def _build_switch(prefix: str) -> None:
    sw = switch_namespace(prefix)
    _create_namespace(sw, None)
    for seg in SEGMENTS:
        # No STP: ports forward at once (a loop is impossible, each VM has one port per bridge).
        system.ip(
            *("-n", sw, "link", "add", seg.name, "address", bridge_mac(prefix, seg)),
            *("type", "bridge", "stp_state", "0"),
        )
        system.ip("-n", sw, "link", "set", seg.name, "up")


def _wire(prefix: str, n: Node) -> None:
    """Plug a node's NICs into the switch, address them, add its routes."""
    sw = switch_namespace(prefix)
    ns = namespace(prefix, n)
    for iface in n.interfaces:
        if not in_lab(iface.address.ip):
            raise LabError(f"refusing {iface.address} on {ns}: outside the lab's ranges")
        port = port_name(n, iface)
        mac = mac_address(prefix, n, iface)
        system.ip(
            *("-n", sw, "link", "add", port, "address", port_mac(prefix, n, iface), "type", "veth"),
            *("peer", "name", iface.name, "address", mac, "netns", ns),
        )
        system.ip("-n", sw, "link", "set", port, "master", iface.segment, "up")
        extra = () if iface.prefix_route else ("noprefixroute",)
        system.ip("-n", ns, "addr", "add", str(iface.address), "dev", iface.name, *extra)
        system.ip("-n", ns, "link", "set", iface.name, "up")
    for route in n.routes:
        if not in_lab(route.via):
            raise LabError(f"refusing a route via {route.via} in {ns}: outside the lab")
        dest = "default" if route.destination == DEFAULT_ROUTE else str(route.destination)
        system.ip("-n", ns, "route", "add", dest, "via", str(route.via))


def _write_resolv(ns: str) -> None:
    # Without a host /etc/resolv.conf to mount over, `ip netns exec` would warn on every
    # call (noise in every diagnostic's stderr): then the lab just does without.
    if not Path("/etc/resolv.conf").exists():
        return
    # Best effort: a read-only /etc only costs name resolution inside the lab.
    try:
        d = ETC_NETNS / ns
        d.mkdir(parents=True, exist_ok=True)
        (d / "resolv.conf").write_text(
            f"{_RESOLV_MARK}\nnameserver {DNS}\nsearch {DNS_DOMAIN}\noptions timeout:1 attempts:2\n"
        )
    except OSError as exc:
        log.warning("cannot write %s: %s", ETC_NETNS / ns / "resolv.conf", exc)


def _remove_resolv(ns: str) -> None:
    path = ETC_NETNS / ns / "resolv.conf"
    with contextlib.suppress(OSError):
        # Only a file this module wrote: someone's own netns config is not ours to remove.
        if path.read_text().startswith(_RESOLV_MARK):
            path.unlink()
    with contextlib.suppress(OSError):
        path.parent.rmdir()


def _create_node(prefix: str, n: Node) -> None:
    ns = namespace(prefix, n)
    _create_namespace(ns, n)
    _wire(prefix, n)
    _write_resolv(ns)


def _dnsmasq_argv(dnsmasq: str) -> list[str]:
    try:
        user = pwd.getpwnam("nobody")
        creds = ["--user=nobody", f"--group={grp.getgrgid(user.pw_gid).gr_name}"]
    except KeyError:
        creds = ["--user=root", "--group=root"]
    # Authoritative for the lab's zone and the reverse zones of its /24s: unknown names get
    # NXDOMAIN at once. No upstream servers (--no-resolv), so nothing is ever forwarded.
    reverse = [
        seg.network.network_address.reverse_pointer.split(".", 1)[1]
        for seg in SEGMENTS
        if seg.network.prefixlen == 24
    ]
    return [
        dnsmasq,
        "--keep-in-foreground",
        "--conf-file=/dev/null",
        "--no-resolv",
        "--no-hosts",
        f"--listen-address={DNS}",
        "--bind-interfaces",
        *creds,
        "--log-facility=-",
        "--pid-file=",
        *(f"--local=/{zone}/" for zone in (DNS_DOMAIN, *reverse)),
        *(f"--host-record={name},{addr}" for name, addr in DNS_RECORDS.items()),
    ]


def _service_argv(svc: Service, state: Path) -> list[str] | None:
    if svc.kind == "web":
        return [
            sys.executable,
            "-I",
            "-m",
            "http.server",
            "--bind",
            str(svc.address),
            "--directory",
            str(state / "www"),
            str(svc.port),
        ]
    dnsmasq = system.which("dnsmasq")
    return _dnsmasq_argv(dnsmasq) if dnsmasq else None


def _log_tail(path: Path, lines: int = 5) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return ""


def _start_services(prefix: str, state: Path, nodes: list[Node]) -> None:
    """Start the servers of these nodes (stale ones killed first) and wait until bound."""
    www = state / "www"
    www.mkdir(parents=True, exist_ok=True)
    (www / "index.html").write_text(_INDEX_HTML.format(prefix=prefix))
    started: list[tuple[Service, int]] = []
    for n in nodes:
        svc = n.service
        if svc is None:
            continue
        ns = namespace(prefix, n)
        system.terminate(p for p in system.namespace_pids(ns) if _is_service(p, svc))
        argv = _service_argv(svc, state)
        if argv is None:
            log.warning("dnsmasq is not installed: the lab has no DNS server")
            continue
        pid = system.spawn_detached(ns, argv, state / f"{svc.kind}.log")
        (state / f"{svc.kind}.pid").write_text(f"{pid}\n")
        started.append((svc, pid))
    deadline = time.monotonic() + SERVICE_START_TIMEOUT
    for svc, pid in started:
        while not system.listening(pid, svc.protocol, str(svc.address), svc.port):
            if not system.alive(pid) or time.monotonic() > deadline:
                tail = _log_tail(state / f"{svc.kind}.log")
                msg = f"the lab's {svc.program} did not start: {tail or 'no output'}"
                if svc.kind == "dns":
                    # DNS is optional: the lab works without it, status says why.
                    log.warning("%s", msg)
                    break
                raise LabError(msg)
            time.sleep(0.02)


def _build(prefix: str, state: Path) -> None:
    state.mkdir(parents=True, exist_ok=True)
    _build_switch(prefix)
    for n in NODES:
        _create_node(prefix, n)
    _start_services(prefix, state, [n for n in NODES if n.service])


@contextlib.contextmanager
def _as_lab_error() -> Iterator[None]:
    try:
        yield
    except CommandError as exc:
        raise LabError(str(exc)) from None


def up(prefix: str = DEFAULT_PREFIX, state_dir: Path | None = None) -> LabStatus:
    """Build the lab and return its status; idempotent.

    A complete lab is left as it is (a server that died is restarted); a partial one is
    torn down and rebuilt. Raises LabError when something is missing (root, tools) or a
    step fails, in which case whatever was built is removed again.
    """
    prefix = _prefix(prefix)
    missing = check_requirements()
    _need_root("up")
    if missing:
        raise LabError("cannot build the lab: " + "; ".join(missing))
    state = _state_dir(prefix, state_dir)
    current = _inspect(prefix, state)
    try:
        with _as_lab_error():
            if current.intact:
                stale = [n for n in NODES if n.service and not current.services[n.service.kind]]
                if stale:
                    _start_services(prefix, state, stale)
            else:
                if current.existing or state.exists():
                    down(prefix, state_dir)
                _build(prefix, state)
    except BaseException:
        if not current.intact:
            # Never leave half a lab behind; the original error is the one that matters.
            with contextlib.suppress(Exception):
                down(prefix, state_dir)
        raise
    return status(prefix, state_dir)


# --- removing ---------------------------------------------------------------------------


def _pid_file_service(state: Path, n: Node) -> int | None:
    """The pid in a server's pid file, if that process is still that server."""
    if n.service is None:
        return None
    try:
        pid = int((state / f"{n.service.kind}.pid").read_text().strip())
    except (OSError, ValueError):
        return None
    # The pid may have been reused by an unrelated process since: check what it runs.
    return pid if system.alive(pid) and _is_service(pid, n.service) else None


def down(prefix: str = DEFAULT_PREFIX, state_dir: Path | None = None) -> None:
    """Remove every namespace of the lab and every process in them, and its state.

    The servers are found by pid file and by `ip netns pids`, so nothing survives. Safe to
    call when nothing is up. Raises LabError if something could not be removed.
    """
    prefix = _prefix(prefix)
    state = _state_dir(prefix, state_dir)
    existing = _lab_namespaces(prefix)
    if not existing and not state.exists():
        for ns in all_namespaces(prefix):
            _remove_resolv(ns)
        return
    _need_root("down")
    pids = {p for n in NODES if (p := _pid_file_service(state, n)) is not None}
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
        _remove_resolv(ns)
    shutil.rmtree(state, ignore_errors=True)
    if state_dir is None:
        with contextlib.suppress(OSError):
            state.parent.rmdir()  # only when empty: other labs keep theirs
    left = _lab_namespaces(prefix)
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
    if ns not in _lab_namespaces(prefix):
        return
    _need_root("stop")
    survivors = system.terminate(system.namespace_pids(ns))
    if survivors:
        raise LabError(f"cannot stop {n.name}: processes {survivors} did not exit")
    with _as_lab_error():
        system.ip("netns", "delete", ns)


def start_vm(prefix: str, name: str, state_dir: Path | None = None) -> None:
    """Start a stopped VM of the lab again, with the same NICs, MACs and addresses."""
    prefix = _prefix(prefix)
    n = _node(name)
    _need_root("start")
    existing = _lab_namespaces(prefix)
    if switch_namespace(prefix) not in existing:
        raise LabError(f"the lab {prefix!r} is not up: run `cloudiag lab up` first")
    ns = namespace(prefix, n)
    state = _state_dir(prefix, state_dir)
    with _as_lab_error():
        if ns not in existing:
            try:
                _create_node(prefix, n)
            except BaseException:
                with contextlib.suppress(CommandError):
                    system.ip("netns", "delete", ns)
                raise
        if n.service is not None:
            svc = _service_info(ns, n.service, state)
            if not svc.running:
                _start_services(prefix, state, [n])
