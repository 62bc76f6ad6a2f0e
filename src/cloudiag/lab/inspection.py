"""Reading a lab as it really is: its namespaces, links and servers, read from the kernel.

Nothing here trusts the state directory: namespaces come from `ip netns`, their NICs from
`ip -j addr`, their servers from the processes in them and the sockets those hold.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cloudiag.lab import access, system
from cloudiag.lab.errors import LabError, need_root
from cloudiag.lab.layout import Layout, host_uuid, layout, zone_uuid
from cloudiag.lab.models import (
    HostInfo,
    InterfaceInfo,
    LabStatus,
    NamespaceInfo,
    ServiceInfo,
    SizeInfo,
    ZoneInfo,
)
from cloudiag.lab.services import service_pid
from cloudiag.lab.size_record import read_size
from cloudiag.lab.system import CommandError
from cloudiag.lab.topology import (
    SWITCH,
    SYSTEM_VM_ROLES,
    TARGETS,
    VM_ROLES,
    Node,
    Segment,
    Service,
    namespace,
    stable_uuid,
    switch_namespace,
)

#: How many `ip -j addr` run at once when a lab is read back.
_READERS = 4

_ROLE_ORDER = (*VM_ROLES, "upstream", "web", "dns", "hypervisor", "switch")


@dataclass(frozen=True)
class Inspection:
    """A lab read back: its status, and what `up` needs to decide between repair and rebuild."""

    status: LabStatus
    #: Namespaces of this prefix that exist now.
    existing: frozenset[str]
    #: Every namespace exists with its declared NICs up and addressed (servers aside).
    intact: bool
    #: Service (its ``stem``: web, dns, web2…) -> running.
    services: dict[str, bool]
    #: The lab runs sshd in its system VMs (`up --ssh` made its keys).
    ssh: bool = False
    #: System VM name -> its sshd listens (only with ``ssh``).
    sshd: dict[str, bool] | None = None


def lab_namespaces(prefix: str) -> list[str]:
    """The namespaces of the lab `prefix` that exist now; LabError if they cannot be listed."""
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


def _v6(link: dict[str, Any]) -> dict[str, Any] | None:
    # The global one: a NIC with IPv6 also has its fe80:: address.
    return next(
        (
            a
            for a in link.get("addr_info", [])
            if a.get("family") == "inet6" and a.get("scope") == "global"
        ),
        None,
    )


def _interface_info(link: dict[str, Any], network: str | None) -> InterfaceInfo:
    addr = _v4(link)
    addr6 = _v6(link)
    return InterfaceInfo(
        name=str(link.get("ifname", "")),
        network=network,
        address=str(addr["local"]) if addr else None,
        prefixlen=int(addr["prefixlen"]) if addr else None,
        address6=f"{addr6['local']}/{addr6['prefixlen']}" if addr6 else None,
        mac=link.get("address"),
        state=str(link.get("operstate", "UNKNOWN")),
    )


def _nics_ok(n: Node, links: dict[str, dict[str, Any]]) -> bool:
    for iface in n.interfaces:
        link = links.get(iface.name)
        addr = _v4(link) if link else None
        addr6 = _v6(link) if link else None
        if (
            link is None
            or link.get("operstate") != "UP"
            or addr is None
            or addr.get("local") != str(iface.address.ip)
            or addr.get("prefixlen") != iface.address.network.prefixlen
        ):
            return False
        if iface.address6 is not None and (
            addr6 is None
            or addr6.get("local") != str(iface.address6.ip)
            or addr6.get("prefixlen") != iface.address6.network.prefixlen
        ):
            return False
    return True


def service_info(ns: str | None, svc: Service, state: Path) -> ServiceInfo:
    """Whether `svc` runs in namespace `ns` (None: it does not exist) and listens; if not, why."""
    pid = service_pid(ns, svc) if ns else None
    running = pid is not None and system.listening(pid, svc.protocol, str(svc.address), svc.port)
    reason = None
    if not running:
        if svc.kind == "dns" and system.which("dnsmasq") is None:
            reason = "dnsmasq is not installed (apt-get install dnsmasq-base)"
        elif ns is not None:
            reason = f"not running (log: {state / (svc.stem + '.log')})"
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
    prefix: str,
    n: Node,
    found: list[dict[str, Any]] | None,
    state: Path,
    ssh: bool,
    zone: str | None,
) -> tuple[NamespaceInfo, bool, ServiceInfo | None]:
    ns = namespace(prefix, n)
    present = found is not None
    links = {str(link.get("ifname")): link for link in found or []}
    declared = [i.name for i in n.interfaces]
    # Declared NICs first, in their order, then anything else that is there.
    names = [x for x in declared if x in links] + sorted(
        x for x in links if x not in declared and x != "lo"
    )
    interfaces = [
        _interface_info(links[x], i.segment if (i := n.interface(x)) else None) for x in names
    ]
    intact = present and _nics_ok(n, links)
    service = service_info(ns if present else None, n.service, state) if n.service else None
    with_ssh = ssh and n.role in SYSTEM_VM_ROLES
    sshd = access.sshd_info(ns if present else None, state, n) if with_ssh else None

    def on(segment: str) -> str | None:
        return next((i.address for i in interfaces if i.network == segment and i.address), None)

    entry = NamespaceInfo(
        namespace=ns,
        name=n.name,
        role=n.role,
        systemvmtype=n.systemvmtype,
        uuid=stable_uuid(prefix, n.name),
        running=intact and (service is None or service.running) and (sshd is None or sshd.running),
        interfaces=interfaces,
        controladdress=on("control"),
        publicaddress=on("public"),
        guestaddress=on("guest"),
        service=service,
        ssh=sshd,
        script=access.script_info(state, n) if with_ssh else None,
        host=n.host,
        zone=zone,
    )
    return entry, intact, service


def _switch_entry(
    prefix: str, found: list[dict[str, Any]] | None, segments: tuple[Segment, ...]
) -> tuple[NamespaceInfo, bool]:
    ns = switch_namespace(prefix)
    links = {str(link.get("ifname")): link for link in found or []}
    bridges = [links[s.name] for s in segments if s.name in links]
    # Admin state, not operstate: a bridge whose VMs are all stopped is down but fine.
    intact = len(bridges) == len(segments) and all("UP" in b.get("flags", []) for b in bridges)
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


def inspect(prefix: str, state: Path) -> Inspection:
    """Read the lab `prefix` back; LabError if it exists and we are not root."""
    existing = frozenset(lab_namespaces(prefix))
    if existing:
        need_root("status")
    entries: list[NamespaceInfo] = []
    intact_all = True
    services: dict[str, bool] = {}
    warnings: list[str] = []
    ssh = access.enabled(state)
    sshd: dict[str, bool] = {}
    lay = layout(read_size(state))
    zones = {z.number: zone_uuid(prefix, z) for z in lay.zones}
    # Read in a few threads: a lab of a hundred VMs is a hundred `ip -j addr`.
    wanted = [switch_namespace(prefix), *(namespace(prefix, n) for n in lay.nodes)]
    present = [ns for ns in wanted if ns in existing]
    with ThreadPoolExecutor(max_workers=_READERS) as pool:
        read = dict(zip(present, pool.map(_links, present), strict=True))
    # None: the namespace does not exist.
    links: dict[str, list[dict[str, Any]] | None] = {ns: read.get(ns) for ns in wanted}
    for n in lay.nodes:
        zone = zones[n.zone] if n.zone is not None else None
        found = links[namespace(prefix, n)]
        entry, intact, service = _node_entry(prefix, n, found, state, ssh, zone)
        if entry.ssh is not None:
            sshd[n.name] = entry.ssh.running
        entries.append(entry)
        intact_all = intact_all and intact
        if n.service is not None and service is not None:
            services[n.service.stem] = service.running
            warning = f"the DNS server is not running: {service.reason}"
            dns_down = existing and not service.running and n.service.kind == "dns"
            # Once: further public networks' DNS servers fail for the same reason.
            if dns_down and warning not in warnings:
                warnings.append(warning)
    switch, switch_ok = _switch_entry(prefix, links[switch_namespace(prefix)], lay.segments)
    entries.append(switch)
    intact_all = intact_all and switch_ok
    entries.sort(key=lambda e: _ROLE_ORDER.index(e.role))
    webs = [
        services.get(n.service.stem, False)
        for n in lay.nodes
        if n.service and n.service.kind == "web"
    ]
    lab_status = LabStatus(
        prefix=prefix,
        up=intact_all and all(webs) and all(sshd.values()),
        zone=ZoneInfo(name=lay.zones[0].name, uuid=zones[1]),
        size=SizeInfo(zones=lay.size.zones, hosts=lay.size.hosts, routers=lay.size.routers),
        zones=[ZoneInfo(name=z.name, uuid=zones[z.number]) for z in lay.zones],
        hosts=_hosts(prefix, lay, zones),
        namespaces=entries,
        targets=dict(TARGETS),
        warnings=warnings,
        ssh=access.lab_info(prefix, state) if ssh else None,
    )
    return Inspection(lab_status, existing, intact_all, services, ssh, sshd if ssh else None)


def _hosts(prefix: str, lay: Layout, zones: dict[int, str]) -> list[HostInfo]:
    return [
        HostInfo(
            number=h.number,
            name=h.node.name,
            namespace=namespace(prefix, h.node),
            uuid=host_uuid(prefix, h),
            zone=zones[h.zone],
            vms=[n.name for n in lay.vms(h.number)],
        )
        for h in lay.hosts
    ]
