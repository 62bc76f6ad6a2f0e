"""What a lab system VM keeps where getDiagnosticsData's defaults point: its CloudStack
release, dnsmasq and haproxy configuration, its logs, the SSVM's and CPVM's agent
properties, written into the VM's own tree (mountns.vm_root) so that its mount namespace
shows them at those paths and nothing else on the machine sees them.

Each file says which VM it belongs to, so a test can tell the VM's own file from the host's.
"""

from __future__ import annotations

from pathlib import Path

from cloudiag.lab import mountns
from cloudiag.lab.topology import DNS, DNS_DOMAIN, Node

#: The VM's own directories (bound whole: the host's are hidden in the VM).
DIRECTORIES = ("/var/log", "/usr/local/cloud", "/etc/haproxy", "/etc/dnsmasq.d")
#: The VM's own files directly under /etc.
ETC_FILES = (
    "/etc/cloudstack-release",
    "/etc/dnsmasq.conf",
    "/etc/dhcphosts.txt",
    "/etc/dhcpopts.txt",
)
#: Every path of the VM's own here, as the mount namespace gets them.
PATHS = (*DIRECTORIES, *ETC_FILES)
RELEASE = "Cloudstack Release 4.14.0 (cloudiag lab)"


def contents(n: Node) -> dict[str, str]:
    """The files of the VM, by path in the VM."""
    own = f"# {n.name}: a cloudiag lab system VM\n"
    files = {
        "/etc/cloudstack-release": f"{RELEASE}\n",
        "/var/log/cloud.log": f"{own}INFO  [cloud] {n.name} started\n",
        "/var/log/daemon.log": f"{own}systemd[1]: Started cloud.service.\n",
        "/var/log/patchsystemvm.log": f"{own}patched the system VM\n",
    }
    if n.role == "router":
        guest = n.address_on("guest")
        files.update(
            {
                "/etc/dnsmasq.conf": f"{own}interface=eth0\ndomain={DNS_DOMAIN}\n"
                f"conf-dir=/etc/dnsmasq.d\n",
                "/etc/dnsmasq.d/cloud.conf": f"{own}dhcp-option=6,{guest}\nserver={DNS}\n",
                "/etc/dhcphosts.txt": f"{own}",
                "/etc/dhcpopts.txt": f"{own}",
                "/etc/haproxy/haproxy.cfg": f"{own}global\n    maxconn 4096\n",
                "/var/log/dnsmasq.log": f"{own}dnsmasq[1]: started\n",
                "/var/log/haproxy.log": f"{own}haproxy[1]: Proxy stats started.\n",
                "/var/log/routerServiceMonitor.log": f"{own}all services are running\n",
            }
        )
    else:
        conf = "/usr/local/cloud/systemvm/conf"
        files.update(
            {
                f"{conf}/agent.properties": f"{own}resource={n.systemvmtype}\n",
                f"{conf}/consoleproxy.properties": f"{own}consoleproxy.httpListenPort=80\n",
            }
        )
    return files


def write(state: Path, n: Node) -> None:
    """Write the VM's files into its own tree (its directories made, even when empty)."""
    root = mountns.vm_root(state, n)
    for directory in DIRECTORIES:
        (root / directory.lstrip("/")).mkdir(parents=True, exist_ok=True)
    for path in ETC_FILES:
        (root / path.lstrip("/")).touch()
    for path, text in contents(n).items():
        file = root / path.lstrip("/")
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(text)
