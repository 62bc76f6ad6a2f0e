"""A real CloudStack cloud as the source: its management server's API says which system VMs
run on this agent's host, and how to reach them.

At start the agent's host is found with ``listHosts`` (by CloudStack's host uuid, or by its
exact name): its id, name, zone and hypervisor become the agent's identity, so the VMs'
``hostid`` and the agent's host are one id. Then ``listRouters`` (``listall=true``) and
``listSystemVms`` filtered by that ``hostid``, page by page, give its VMs, each reached over
SSH as CloudStack reaches it: the control address (``linklocalip`` on KVM, where the host
reaches it over ``cloud0``; ``privateip`` on VMware, where the management network reaches
it), port 3922, root, the key ``/root/.ssh/id_rsa.cloud``.

Calls are signed with an API key and secret key (signatureVersion 3 with an expiry), async
with httpx. Every heartbeat asks for the VMs; the API is asked at most every
``refresh_interval`` seconds, in the background: a heartbeat never waits for CloudStack, and
a failed refresh keeps the last good list.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx

from cloudiag.agent.sources.base import Host, Zone
from cloudiag.bus.messages import SshAccess, VmReport
from cloudiag.client import ApiCallError, ApiKey, AsyncClient
from cloudiag.domain import VmType

log = logging.getLogger(__name__)

#: CloudStack's key for its system VMs on a KVM host, and their sshd's port.
CLOUD_KEY = "/root/.ssh/id_rsa.cloud"
SYSTEM_VM_SSH_PORT = 3922
#: Hypervisors whose system VMs are reached on the management network (privateip), not on
#: a link-local network of the host.
_PRIVATE_CONTROL = frozenset({"vmware"})
#: listSystemVms's types that are ours (CloudStack also has e.g. domain router types there).
_SYSTEM_VM_TYPES = {
    "consoleproxy": VmType.CONSOLE_PROXY,
    "secondarystoragevm": VmType.SECONDARY_STORAGE,
}


class CloudStackError(ValueError):
    """CloudStack could not be asked, or does not know this host as the config names it."""


@dataclass(frozen=True)
class CloudStackConfig:
    """Where the CloudStack management server is, who asks, and which host this is."""

    #: The management server's base URL, e.g. https://cloudstack.example:8443 (the API is
    #: at /client/api).
    url: str
    api_key: str
    secret_key: str = field(repr=False)
    #: This host in CloudStack: its uuid or its exact name.
    host: str
    key_file: str = CLOUD_KEY
    port: int = SYSTEM_VM_SSH_PORT
    #: cloudiag's zipapp in a warm session, CloudStack's own diagnostics.py, or auto (the
    #: zipapp when the VM has a usable python).
    script: Literal["cloudiag", "cloudstack", "auto"] = "auto"
    #: A CA bundle for the management server's TLS certificate; None: the system's.
    ca_file: str | None = None
    #: Open the SSH connections in this network namespace of the host (where its control
    #: network is, when not in the agent's own); None: the agent's own.
    netns: str | None = None
    page_size: int = 500
    refresh_interval: float = 60.0
    timeout: float = 30.0


@dataclass(frozen=True)
class CloudStackHost:
    """The agent's host as CloudStack knows it."""

    zone: Zone
    host: Host
    hypervisor: str


@contextlib.asynccontextmanager
async def api(config: CloudStackConfig) -> AsyncIterator[AsyncClient]:
    """A signed client of the management server's API."""
    verify: ssl.SSLContext | bool = True
    if config.ca_file is not None:
        verify = ssl.create_default_context(cafile=config.ca_file)
    async with httpx.AsyncClient(timeout=config.timeout, verify=verify) as http:
        yield AsyncClient(config.url, ApiKey(config.api_key, config.secret_key), http=http)


async def listing(
    client: AsyncClient, command: str, item: str, page_size: int, **params: object
) -> list[dict[str, Any]]:
    """Every item of a list command, asked page by page (CloudStack's page and pagesize)."""
    items: list[dict[str, Any]] = []
    page = 1
    while True:
        try:
            body = await client.call(command, page=page, pagesize=page_size, **params)
        except (ApiCallError, httpx.HTTPError) as exc:
            raise CloudStackError(f"{command} failed at {client.url}: {exc}") from exc
        batch = body.get(item, [])
        items += batch
        count = int(body.get("count", 0))
        if not batch or len(batch) < page_size or len(items) >= count:
            return items
        page += 1


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


async def find_host(client: AsyncClient, config: CloudStackConfig) -> CloudStackHost:
    """This host in CloudStack, by uuid or exact name; CloudStackError unless exactly one."""
    by = {"id": config.host} if _is_uuid(config.host) else {"name": config.host}
    hosts = await listing(client, "listHosts", "host", config.page_size, type="Routing", **by)
    # CloudStack matches a name by substring: only the exact one is this host.
    exact = [h for h in hosts if h.get("id") == config.host or h.get("name") == config.host]
    if len(exact) != 1:
        found = ", ".join(sorted(str(h.get("name")) for h in exact)) or "none"
        raise CloudStackError(
            f"CloudStack at {config.url} has {len(exact)} hosts named or identified "
            f"{config.host!r} ({found}); give the host's uuid (--host-id)"
        )
    h = exact[0]
    return CloudStackHost(
        Zone(id=str(h["zoneid"]), name=str(h.get("zonename") or h["zoneid"])),
        Host(id=str(h["id"]), name=str(h.get("name") or h["id"])),
        str(h.get("hypervisor") or ""),
    )


def control_address(vm: dict[str, Any], hypervisor: str) -> str | None:
    """The address the host reaches the VM's sshd on: linklocalip (KVM, over cloud0), or
    privateip on VMware (the management network); the other one when that one is missing."""
    first, second = ("privateip", "linklocalip")
    if hypervisor.lower() not in _PRIVATE_CONTROL:
        first, second = second, first
    address = vm.get(first) or vm.get(second)
    return str(address) if address else None


def report(
    vm: dict[str, Any], vm_type: VmType, hypervisor: str, config: CloudStackConfig
) -> VmReport | None:
    """The VM as the agent reports it; None when CloudStack gives no address to reach it."""
    control = control_address(vm, hypervisor)
    if control is None:
        return None
    addresses = {
        role: vm[key]
        for role, key in (("public", "publicip"), ("guest", "guestipaddress"))
        if vm.get(key)
    }
    return VmReport(
        id=str(vm["id"]),
        name=str(vm["name"]),
        vm_type=vm_type,
        state="Running" if vm.get("state") == "Running" else "Stopped",
        addresses={**addresses, "control": control},
        access=SshAccess(
            address=control,
            port=config.port,
            key_file=config.key_file,
            script=config.script,
            netns=config.netns,
        ),
    )


async def host_vms(
    client: AsyncClient, config: CloudStackConfig, host: CloudStackHost
) -> list[VmReport]:
    """The host's virtual routers, secondary storage VMs and console proxies."""
    size, host_id = config.page_size, host.host.id
    routers, system_vms = await asyncio.gather(
        listing(client, "listRouters", "router", size, hostid=host_id, listall=True),
        listing(client, "listSystemVms", "systemvm", size, hostid=host_id),
    )
    typed = [(vm, VmType.DOMAIN_ROUTER) for vm in routers] + [
        (vm, _SYSTEM_VM_TYPES[str(vm.get("systemvmtype"))])
        for vm in system_vms
        if vm.get("systemvmtype") in _SYSTEM_VM_TYPES
    ]
    vms = []
    for vm, vm_type in typed:
        # A VM another host runs now (CloudStack moved it between the two listings) is not
        # this host's to report.
        if vm.get("hostid") not in (None, host_id):
            continue
        try:
            reported = report(vm, vm_type, host.hypervisor, config)
        except (KeyError, ValueError) as exc:  # ValueError: pydantic's, a malformed field.
            log.warning(
                "CloudStack's entry of %s unreadable (%s); not reported", vm.get("name"), exc
            )
            continue
        if reported is None:
            log.warning("CloudStack gives no control address for %s; not reported", vm.get("name"))
            continue
        vms.append(reported)
    return vms


async def open_source(config: CloudStackConfig) -> CloudStackSource:
    """Find this host in CloudStack and read its VMs once; raises CloudStackError."""
    async with api(config) as client:
        host = await find_host(client, config)
        vms = await host_vms(client, config, host)
    log.info(
        "CloudStack at %s: host %s (%s, %s) runs %d system VMs",
        config.url,
        host.host.name,
        host.host.id,
        host.hypervisor or "hypervisor unknown",
        len(vms),
    )
    return CloudStackSource(config, host, vms)


class CloudStackSource:
    """The system VMs CloudStack places on this host, refreshed in the background."""

    def __init__(self, config: CloudStackConfig, host: CloudStackHost, vms: list[VmReport]) -> None:
        """A source that knows its host and a first list of its VMs (see open_source)."""
        self.config = config
        self.cloudstack_host = host
        self._vms = vms
        self._read_at = time.monotonic()
        self._refresh: asyncio.Task[None] | None = None

    @property
    def zone(self) -> Zone:
        """The host's zone in CloudStack."""
        return self.cloudstack_host.zone

    @property
    def host(self) -> Host:
        """The host, with CloudStack's id and name."""
        return self.cloudstack_host.host

    async def vms(self) -> list[VmReport]:
        """The VMs as last read; a read is started (not awaited) once they are older than
        the refresh interval."""
        stale = time.monotonic() - self._read_at >= self.config.refresh_interval
        if stale and (self._refresh is None or self._refresh.done()):
            self._refresh = asyncio.create_task(self._read())
        return list(self._vms)

    async def _read(self) -> None:
        try:
            async with api(self.config) as client:
                self._vms = await host_vms(client, self.config, self.cloudstack_host)
        except Exception as exc:  # Whatever it was, the agent goes on with what it knows.
            log.warning("%s; reporting the VMs of the last good read", exc)
        finally:
            # A failed read waits its interval too: CloudStack down is not asked in a loop.
            self._read_at = time.monotonic()

    async def close(self) -> None:
        """Stop a read under way (tests, and an agent that stops)."""
        if self._refresh is not None:
            self._refresh.cancel()
            await asyncio.gather(self._refresh, return_exceptions=True)
