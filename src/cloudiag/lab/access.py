"""The system VMs over SSH: their keys, their own files (a mount namespace each), their sshd.

A lab has SSH once `lab up --ssh` made its client key; from then on every system VM that
starts gets its mount namespace (with /opt/cloud from its own tree, holding the
CloudStack-style script) and its sshd, and every one that stops loses both.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from cloudiag.lab import diagnostics_script, mountns, sshd, vm_files
from cloudiag.lab.errors import LabError
from cloudiag.lab.models import LabSshInfo, ScriptInfo, SshdInfo
from cloudiag.lab.topology import (
    CLOUDSTACK_SCRIPT_VM,
    HYPERVISOR,
    HYPERVISOR_ADDRESS,
    SSH_PORT,
    SYSTEM_VM_ROLES,
    Node,
    namespace,
)

#: The VM paths backed by each system VM's own tree: /opt/cloud holds the CloudStack-style
#: script; /var/lib/cloudiag is where the SSH executor installs the zipapp, which must land
#: in the VM, not on the lab's machine. Where getDiagnosticsData's defaults point comes
#: from vm_files.py (logs, dnsmasq, haproxy, the SSVM's and CPVM's properties), as far as
#: the host allows (vm_files.PATHS are optional).
VM_PATHS = ("/opt/cloud", "/var/lib/cloudiag")
#: Files of the VM's own, made empty: root's ~/.bashrc, which bash reads for every command
#: over SSH. The machine's runs `pyenv init` here, whose rehash lock, left by a login killed
#: mid-way (a test kills sshd under a job), stalled every later login for 60 s; a real
#: VM's root has a shell start-up of its own too.
VM_FILES = ("/root/.bashrc",)


def enabled(state: Path) -> bool:
    """Whether the lab runs sshd in its system VMs (its client key exists)."""
    try:
        return sshd.client_key(state).exists()
    except PermissionError:
        # Not root: a lab that exists says so first (need_root); its leftovers stay unseen.
        return False


def script_path(state: Path, n: Node) -> Path:
    """Where the VM's /opt/cloud/bin/diagnostics.py lives on the host."""
    return mountns.vm_root(state, n) / diagnostics_script.PATH.lstrip("/")


def setup(state: Path, vms: Sequence[Node]) -> None:
    """Make the keys and the files of each of these system VMs (a script already there
    keeps its form)."""
    vms = list(vms)
    sshd.ensure_keys(state, vms)
    for n in vms:
        for path in VM_PATHS:
            (mountns.vm_root(state, n) / path.lstrip("/")).mkdir(parents=True, exist_ok=True)
        for path in VM_FILES:
            own = mountns.vm_root(state, n) / path.lstrip("/")
            own.parent.mkdir(parents=True, exist_ok=True)
            own.touch()
        vm_files.write(state, n)
        if diagnostics_script.read(script_path(state, n)) is None:
            diagnostics_script.write(script_path(state, n), "python3")


def start_vm(prefix: str, state: Path, n: Node) -> None:
    """Give a running system VM its mount namespace and its sshd (both made again)."""
    ns = namespace(prefix, n)
    sshd.stop(ns, state, n)
    mountns.create(prefix, n, state, (*VM_PATHS, *VM_FILES), optional=vm_files.PATHS)
    sshd.start(prefix, ns, state, n)


def stop_vm(prefix: str, state: Path, n: Node) -> None:
    """Stop a system VM's sshd (and its connections) and remove its mount namespace."""
    sshd.stop(namespace(prefix, n), state, n)
    mountns.remove(state, n)


def set_script(state: Path, n: Node, form: str) -> None:
    """Switch the VM's script to that form; it shows in the VM at once (a bound directory)."""
    if n.role not in SYSTEM_VM_ROLES:
        raise LabError(f"{n.name} is not a system VM: it has no diagnostics.py")
    try:
        diagnostics_script.write(script_path(state, n), form)
    except ValueError as exc:
        raise LabError(str(exc)) from None


def rekey(prefix: str, state: Path, n: Node) -> None:
    """Give a system VM a new host key, as a VM rebuilt from its template has, and restart
    its sshd with it if it runs (its connections end).

    The lab's known_hosts keeps the old key, as an agent's does when a VM was rebuilt
    behind its back: an agent that checks it refuses the VM until the file is fixed
    (`lab up` writes every VM's current key there again).
    """
    if n.role not in SYSTEM_VM_ROLES:
        raise LabError(f"{n.name} is not a system VM: it has no sshd")
    ns = namespace(prefix, n)
    running = sshd.read_state(ns, state, n).listening
    sshd.new_host_key(state, n)
    if running:
        sshd.start(prefix, ns, state, n)


def sshd_info(ns: str | None, state: Path, n: Node) -> SshdInfo:
    """The VM's sshd as it really is, with its host key's fingerprint."""
    now = sshd.read_state(ns, state, n)
    reason = None
    if not now.listening:
        if ns is None:
            reason = "its namespace does not exist"
        else:
            reason = f"not running (log: {sshd.vm_dir(state, n) / 'sshd.log'})"
    return SshdInfo(
        running=now.listening,
        pid=now.pid,
        port=SSH_PORT,
        listen=f"{n.address_on('control')}:{SSH_PORT}/tcp",
        host_key=sshd.host_key_fingerprint(state, n),
        reason=reason,
    )


def script_info(state: Path, n: Node) -> ScriptInfo | None:
    """The VM's script as its file says, or None when it has none."""
    found = diagnostics_script.read(script_path(state, n))
    if found is None:
        return None
    return ScriptInfo(
        path=diagnostics_script.PATH,
        form=found.form,
        interpreter=found.interpreter,
        emulated=found.emulated,
    )


def lab_info(prefix: str, state: Path) -> LabSshInfo:
    """How to reach the lab's system VMs over SSH."""
    return LabSshInfo(
        hypervisor=namespace(prefix, HYPERVISOR),
        address=str(HYPERVISOR_ADDRESS),
        port=SSH_PORT,
        user="root",
        key_file=str(sshd.client_key(state)),
        public_key=sshd.client_public_key(state),
        known_hosts=str(sshd.known_hosts(state)),
        cloudstack_script_vm=CLOUDSTACK_SCRIPT_VM,
    )
