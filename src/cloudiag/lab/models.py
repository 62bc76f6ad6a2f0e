"""What `lab status` reports: the lab as it really is, in a JSON-ready shape."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from cloudiag.lab.topology import SYSTEM_VM_ROLES


class _Model(BaseModel):
    # Frozen: a status is a snapshot; extra keys are refused so typos fail loudly.
    model_config = ConfigDict(frozen=True, extra="forbid")


class InterfaceInfo(_Model):
    """One NIC as read back from ``ip -j addr`` in its namespace."""

    name: str
    #: The segment (bridge) it is plugged into, per the declaration; None if undeclared.
    network: str | None
    address: str | None
    prefixlen: int | None
    #: Its global IPv6 address with prefix length ("2001:db8:0:113::10/64"), if any.
    address6: str | None = None
    mac: str | None
    #: The kernel's operstate: "UP", "DOWN", "LOWERLAYERDOWN"…
    state: str


class ServiceInfo(_Model):
    """A server process of the lab (the web server, the DNS server)."""

    name: str
    running: bool
    pid: int | None
    #: "198.51.100.10:80/tcp"
    listen: str
    #: Why it is not running, when known (e.g. dnsmasq not installed).
    reason: str | None = None


class SshdInfo(_Model):
    """A system VM's OpenSSH server (labs brought up with ``--ssh``)."""

    running: bool
    pid: int | None
    port: int
    #: "169.254.0.10:3922/tcp": the VM's control address, nothing else.
    listen: str
    #: The fingerprint of its host key ("SHA256:…"), to pin.
    host_key: str | None
    #: Why it is not running, when it is not.
    reason: str | None = None


class ScriptInfo(_Model):
    """A system VM's CloudStack-style /opt/cloud/bin/diagnostics.py."""

    path: str
    #: "python3" (b'…' reprs) or "python2" (raw text).
    form: str
    interpreter: str
    #: The python2 form run by Python 3 (the machine has no python2.7).
    emulated: bool


class NamespaceInfo(_Model):
    """One namespace of the lab: a system VM, the user VM, or a piece of the plumbing."""

    namespace: str
    name: str
    #: router, secondarystoragevm, consoleproxy, uservm, upstream, web, dns, switch
    role: str
    systemvmtype: str | None
    uuid: str
    #: The namespace exists with every declared NIC up and addressed (and its server running).
    running: bool
    interfaces: list[InterfaceInfo]
    controladdress: str | None
    publicaddress: str | None
    guestaddress: str | None
    service: ServiceInfo | None = None
    ssh: SshdInfo | None = None
    script: ScriptInfo | None = None
    #: The hypervisor host it runs on (1, 2, …; a hypervisor: itself), None if shared.
    host: int | None = None
    #: The uuid of its zone, None for the shared upstream, web, DNS and switch.
    zone: str | None = None


class LabSshInfo(_Model):
    """How the lab's system VMs are reached over SSH: from the hypervisor, as root, a key."""

    #: The namespace an SSH client opens its socket in (the hypervisor node).
    hypervisor: str
    #: The hypervisor's control address, the only one the key is authorized from.
    address: str
    port: int
    user: str
    #: The client's private key (RSA, CloudStack's id_rsa.cloud) and its public line.
    key_file: str
    public_key: str | None
    #: Every system VM's host key at [control address]:port.
    known_hosts: str
    #: The VM the lab's inventory sets to CloudStack's own script.
    cloudstack_script_vm: str


class ZoneInfo(_Model):
    """A zone of the lab."""

    name: str
    uuid: str


class HostInfo(_Model):
    """A hypervisor host of the lab: the one an agent serves."""

    number: int
    #: Its hypervisor node ("host", "host2"…) and that node's namespace.
    name: str
    namespace: str
    uuid: str
    #: The uuid of its zone.
    zone: str
    #: The names of the VMs on it.
    vms: list[str]


class SizeInfo(_Model):
    """The size the lab was built with (`lab up --zones --hosts --routers`)."""

    zones: int
    hosts: int
    routers: int


class LabStatus(_Model):
    """The whole lab; ``to_dict()`` is what ``cloudiag lab status --json`` prints."""

    prefix: str
    #: Every namespace is there and running (the DNS server is optional).
    up: bool
    #: The first zone (the only one of a default-size lab).
    zone: ZoneInfo
    size: SizeInfo
    zones: list[ZoneInfo]
    hosts: list[HostInfo]
    namespaces: list[NamespaceInfo]
    targets: dict[str, str]
    #: Things that work in a degraded way (no DNS server…); empty when all is well.
    warnings: list[str] = []
    #: Set when the lab runs sshd in its system VMs (`lab up --ssh`).
    ssh: LabSshInfo | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data."""
        return self.model_dump(mode="json")

    def system_vms(self) -> list[NamespaceInfo]:
        """The router, secondary storage VM and console proxy entries."""
        return [ns for ns in self.namespaces if ns.role in SYSTEM_VM_ROLES]

    def by_role(self, role: str) -> NamespaceInfo:
        """The entry of that role; KeyError if there is none."""
        for ns in self.namespaces:
            if ns.role == role:
                return ns
        raise KeyError(role)
