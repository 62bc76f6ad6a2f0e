"""Build, inspect and remove the lab zone (`cloudiag lab up|down|status|stop|start`).

Synchronous on purpose: it shells out to `ip` step by step; asyncio callers use
`asyncio.to_thread`. Nothing is ever created in the root namespace: veth pairs are made
from inside the switch namespace with their peer placed straight into the node's namespace.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from cloudiag.lab.topology import (
    DNS,
    DNS_NAMES,
    NETWORKS,
    NODES,
    SYSTEM_VM_ROLES,
    TARGETS,
    WEB,
    Node,
    namespace,
    node,
    stable_uuid,
    switch_namespace,
)

DEFAULT_PREFIX = "cdlab"
NETNS_DIR = Path("/run/netns")

_TOOLS = {
    "ip": "iproute2",
    "ping": "iputils-ping",
    "traceroute": "traceroute",
    "arping": "iputils-arping",
}


class LabError(RuntimeError):
    """The lab cannot be built or changed; the message says why."""


class LabStatus(BaseModel):
    """What `lab status --json` prints."""

    prefix: str
    up: bool
    zone: dict[str, str]
    namespaces: list[dict[str, Any]]
    targets: dict[str, str]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data."""
        return self.model_dump()

    def system_vms(self) -> list[dict[str, Any]]:
        """The router, SSVM and CPVM entries."""
        return [ns for ns in self.namespaces if ns["role"] in SYSTEM_VM_ROLES]


def _which(tool: str) -> str | None:
    return shutil.which(tool) or shutil.which(tool, path="/usr/sbin:/sbin:/usr/bin:/bin")


def check_requirements() -> list[str]:
    """What is missing to build the lab; empty when ready."""
    missing: list[str] = []
    if os.geteuid() != 0:
        missing.append("lab needs root (network namespaces): run it as root or with sudo")
    for tool, package in _TOOLS.items():
        if _which(tool) is None:
            missing.append(f"missing: {tool} (apt-get install {package})")
    return missing


def _state_dir(prefix: str, state_dir: Path | None) -> Path:
    if state_dir is not None:
        return state_dir
    base = Path(os.environ.get("CLOUDIAG_LAB_STATE_DIR", "/run/cloudiag-lab"))
    return base / prefix


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise LabError(f"ip {' '.join(args)}: {proc.stderr.strip()}")
    return proc


def _netns_exec(ns: str, *argv: str) -> None:
    proc = subprocess.run(
        ["ip", "netns", "exec", ns, *argv], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise LabError(f"{' '.join(argv)} in {ns}: {proc.stderr.strip()}")


def _namespaces(prefix: str) -> list[str]:
    """Existing namespaces that belong to this lab."""
    try:
        names = os.listdir(NETNS_DIR)
    except FileNotFoundError:
        return []
    return sorted(n for n in names if n.startswith(f"{prefix}-"))


def _build_switch(prefix: str) -> None:
    sw = switch_namespace(prefix)
    _ip("netns", "add", sw)
    _ip("-n", sw, "link", "set", "lo", "up")
    for bridge in NETWORKS:
        _ip("-n", sw, "link", "add", bridge, "type", "bridge")
        _ip("-n", sw, "link", "set", bridge, "up")


def _build_node(prefix: str, n: Node) -> None:
    sw = switch_namespace(prefix)
    ns = namespace(prefix, n)
    _ip("netns", "add", ns)
    _ip("-n", ns, "link", "set", "lo", "up")
    for iface in n.ifaces:
        port = f"{n.tag}-{iface.name}"
        _ip("-n", sw, "link", "add", port, "type", "veth", "peer", "name", iface.name, "netns", ns)
        _ip("-n", sw, "link", "set", port, "master", iface.network, "up")
        if iface.address:
            _ip("-n", ns, "addr", "add", f"{iface.address}/{iface.prefixlen}", "dev", iface.name)
        _ip("-n", ns, "link", "set", iface.name, "up")
    if n.forwarding:
        _netns_exec(ns, "sysctl", "-qw", "net.ipv4.ip_forward=1")
    for network, via in n.routes:
        _ip("-n", ns, "route", "add", network, "via", via)
    if n.gateway:
        _ip("-n", ns, "route", "add", "default", "via", n.gateway)


def _spawn(prefix: str, state: Path, name: str, ns: str, argv: list[str]) -> None:
    """Start a lab service detached in a namespace; its pid goes to a file."""
    log = (state / f"{name}.log").open("ab")
    proc = subprocess.Popen(
        ["ip", "netns", "exec", ns, *argv],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    log.close()
    (state / f"{name}.pid").write_text(str(proc.pid))


def _start_services(prefix: str, state: Path) -> None:
    www = state / "www"
    www.mkdir(parents=True, exist_ok=True)
    (www / "index.html").write_text(
        "<!doctype html><title>cloudiag lab</title><p>cloudiag lab web server</p>\n"
    )
    _spawn(
        prefix,
        state,
        "web",
        namespace(prefix, "web"),
        [
            sys.executable,
            "-I",
            "-m",
            "http.server",
            "--bind",
            WEB,
            "--directory",
            str(www),
            "80",
        ],
    )
    dnsmasq = _which("dnsmasq")
    if dnsmasq:
        _spawn(
            prefix,
            state,
            "dns",
            namespace(prefix, "dns"),
            [
                dnsmasq,
                "--keep-in-foreground",
                "--conf-file=/dev/null",
                "--no-resolv",
                "--no-hosts",
                f"--listen-address={DNS}",
                "--bind-interfaces",
                "--user=root",
                "--log-facility=-",
                f"--pid-file={state / 'dnsmasq.pid'}",
                *(f"--address=/{name}/{addr}" for name, addr in DNS_NAMES.items()),
            ],
        )


def _service_running(state: Path, name: str) -> bool:
    try:
        pid = int((state / f"{name}.pid").read_text())
    except (OSError, ValueError):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _wait_listening(prefix: str, timeout: float = 5.0) -> None:
    """Return once the web server accepts connections (so `up` hands over a working lab)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        probe = subprocess.run(
            [
                "ip",
                "netns",
                "exec",
                namespace(prefix, "upstream"),
                sys.executable,
                "-I",
                "-S",
                "-c",
                f"import socket; socket.create_connection(('{WEB}', 80), 1).close()",
            ],
            capture_output=True,
            check=False,
        )
        if probe.returncode == 0:
            return
        time.sleep(0.1)


def up(prefix: str = DEFAULT_PREFIX, state_dir: Path | None = None) -> LabStatus:
    """Build the lab; idempotent (a complete lab is left as it is, a partial one rebuilt)."""
    missing = check_requirements()
    if missing:
        raise LabError("; ".join(missing))
    state = _state_dir(prefix, state_dir)
    current = status(prefix, state_dir)
    if current.up:
        return current
    down(prefix, state_dir)
    state.mkdir(parents=True, exist_ok=True)
    try:
        _build_switch(prefix)
        for n in NODES:
            _build_node(prefix, n)
        _start_services(prefix, state)
        _wait_listening(prefix)
    except BaseException:
        down(prefix, state_dir)
        raise
    return status(prefix, state_dir)


def _kill_namespace_processes(ns: str) -> None:
    pids = _ip("netns", "pids", ns, check=False).stdout.split()
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)


def down(prefix: str = DEFAULT_PREFIX, state_dir: Path | None = None) -> None:
    """Remove every namespace of the lab and every process in them; safe when nothing is up."""
    state = _state_dir(prefix, state_dir)
    for name in ("web", "dns"):
        with contextlib.suppress(OSError, ValueError, ProcessLookupError):
            os.killpg(int((state / f"{name}.pid").read_text()), signal.SIGKILL)
    for ns in _namespaces(prefix):
        _kill_namespace_processes(ns)
        _ip("netns", "delete", ns, check=False)
    shutil.rmtree(state, ignore_errors=True)


def stop_vm(prefix: str, name: str, state_dir: Path | None = None) -> None:
    """Stop one VM of the lab: its namespace goes away, as a stopped VM's NICs would."""
    n = node(name)
    ns = namespace(prefix, n)
    if ns not in _namespaces(prefix):
        return
    _kill_namespace_processes(ns)
    _ip("netns", "delete", ns)


def start_vm(prefix: str, name: str, state_dir: Path | None = None) -> None:
    """Start a stopped VM of the lab again, with the same interfaces and addresses."""
    n = node(name)
    if switch_namespace(prefix) not in _namespaces(prefix):
        raise LabError(f"the lab {prefix} is not up")
    if namespace(prefix, n) in _namespaces(prefix):
        return
    _build_node(prefix, n)


def _read_ifaces(ns: str) -> list[dict[str, Any]]:
    out = _ip("-n", ns, "-j", "addr", "show", check=False).stdout
    try:
        links = json.loads(out or "[]")
    except ValueError:
        return []
    result = []
    for link in links:
        if link.get("ifname") == "lo":
            continue
        v4 = [a for a in link.get("addr_info", []) if a.get("family") == "inet"]
        result.append(
            {
                "name": link.get("ifname"),
                "mac": link.get("address", ""),
                "address": v4[0]["local"] if v4 else "",
                "prefixlen": v4[0]["prefixlen"] if v4 else 0,
            }
        )
    return result


def status(prefix: str = DEFAULT_PREFIX, state_dir: Path | None = None) -> LabStatus:
    """The lab as it really is now: which namespaces exist, their addresses read back."""
    state = _state_dir(prefix, state_dir)
    existing = set(_namespaces(prefix))
    entries: list[dict[str, Any]] = []
    for n in NODES:
        ns = namespace(prefix, n)
        running = ns in existing
        live = {i["name"]: i for i in _read_ifaces(ns)} if running else {}
        interfaces = [
            {
                "name": i.name,
                "network": i.network,
                "address": i.address,
                "prefixlen": i.prefixlen,
                "mac": live.get(i.name, {}).get("mac", ""),
            }
            for i in n.ifaces
        ]
        entry: dict[str, Any] = {
            "namespace": ns,
            "name": n.name,
            "role": n.role,
            "systemvmtype": n.systemvmtype,
            "uuid": stable_uuid(prefix, n.name),
            "running": running,
            "interfaces": interfaces,
            "controladdress": n.address_on("control"),
            "publicaddress": n.address_on("public"),
            "guestaddress": n.address_on("guest"),
        }
        if n.role in ("web", "dns"):
            entry["service"] = n.role
            entry["servicerunning"] = _service_running(state, n.role)
        entries.append(entry)
    sw = switch_namespace(prefix)
    entries.append(
        {
            "namespace": sw,
            "name": "switch",
            "role": "switch",
            "systemvmtype": None,
            "uuid": stable_uuid(prefix, "switch"),
            "running": sw in existing,
            "bridges": list(NETWORKS),
        }
    )
    up_now = all(e["running"] for e in entries) and _service_running(state, "web")
    return LabStatus(
        prefix=prefix,
        up=up_now,
        zone={"name": "lab-zone", "uuid": stable_uuid(prefix, "zone")},
        namespaces=entries,
        targets=dict(TARGETS),
    )
