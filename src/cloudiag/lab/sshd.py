"""The OpenSSH server of each lab system VM, as CloudStack reaches one: port 3922, root, a key.

One `sshd` per system VM (not the user VM), started detached in the VM's network namespace
and its own mount namespace (``mountns``), listening on the VM's control address only, so
only the control segment reaches it (the lab's hypervisor node). Its configuration is the
lab's own (not /etc/ssh/sshd_config); its host key, the client key pair ``id_rsa.cloud``
(RSA, as CloudStack's) and the authorized key live in ``<state>/ssh`` (0700, keys 0600).
The key is authorized from the hypervisor's address only (``from=``). A pid is trusted
only when its command line shows that VM's sshd with the lab's configuration.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import stat
import time
from dataclasses import dataclass
from pathlib import Path

from cloudiag.lab import mountns, system
from cloudiag.lab.errors import LabError
from cloudiag.lab.topology import HYPERVISOR_ADDRESS, SSH_PORT, Node

log = logging.getLogger(__name__)

#: sshd re-executes itself for every connection, so it must be started by absolute path.
SSHD = "/usr/sbin/sshd"
#: Where openssh-server's unit makes the privilege separation directory at boot.
PRIVSEP_DIR = Path("/run/sshd")
#: How long a freshly started sshd may take to listen.
START_TIMEOUT = 10.0
#: Sessions per connection and connections being set up at once: far above OpenSSH's
#: defaults (10, 10:30:100), so that tests and benches opening many are never refused.
MAX_SESSIONS = 256
MAX_STARTUPS = "256:30:512"
CLIENT_KEY = "id_rsa.cloud"
HOST_KEY = "ssh_host_ed25519_key"


def ssh_dir(state: Path) -> Path:
    """The lab's SSH directory: the client key pair, authorized_keys, known_hosts, one
    directory per VM."""
    return state / "ssh"


def client_key(state: Path) -> Path:
    """The private key the agent logs in with (CloudStack's is /root/.ssh/id_rsa.cloud)."""
    return ssh_dir(state) / CLIENT_KEY


def known_hosts(state: Path) -> Path:
    """A known_hosts file with every system VM's host key, at its control address and port."""
    return ssh_dir(state) / "known_hosts"


def vm_dir(state: Path, n: Node) -> Path:
    """One VM's sshd files: host key, configuration, pid file, log."""
    return ssh_dir(state) / n.name


def config_path(state: Path, n: Node) -> Path:
    """The VM's sshd_config."""
    return vm_dir(state, n) / "sshd_config"


def host_key(state: Path, n: Node) -> Path:
    """The VM's private host key (ed25519: one key, one fingerprint to pin)."""
    return vm_dir(state, n) / HOST_KEY


def _control(n: Node) -> str:
    address = n.address_on("control")
    if address is None:
        raise LabError(f"{n.name} has no control address: no sshd for it")
    return str(address)


def config_text(state: Path, n: Node) -> str:
    """The VM's sshd_config: key logins as root only, on the control address only."""
    d = vm_dir(state, n)
    return "\n".join(
        [
            f"# cloudiag lab: the sshd of {n.name}",
            f"Port {SSH_PORT}",
            f"ListenAddress {_control(n)}",
            "AddressFamily inet",
            f"HostKey {host_key(state, n)}",
            f"PidFile {d / 'sshd.pid'}",
            f"AuthorizedKeysFile {ssh_dir(state) / 'authorized_keys'}",
            "PermitRootLogin prohibit-password",
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "UsePAM no",
            "UseDNS no",
            "StrictModes yes",
            f"MaxSessions {MAX_SESSIONS}",
            f"MaxStartups {MAX_STARTUPS}",
            "LoginGraceTime 30",
            "PrintMotd no",
            "PrintLastLog no",
            "X11Forwarding no",
            "AllowAgentForwarding no",
            "AllowTcpForwarding no",
            "PermitTunnel no",
            "Subsystem sftp internal-sftp",
            "",
        ]
    )


def argv(state: Path, n: Node) -> list[str]:
    """The VM's sshd command: in the foreground (its pid is ours), logging to stderr."""
    return [SSHD, "-D", "-e", "-f", str(config_path(state, n))]


def _keygen(*args: str) -> None:
    system.run([system.which("ssh-keygen") or "ssh-keygen", "-q", *args], timeout=60)


def fingerprint(public_key: str) -> str:
    """``SHA256:…`` of an OpenSSH public key line, as ``ssh-keygen -l`` prints it."""
    blob = base64.b64decode(public_key.split()[1])
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def _check_modes(directory: Path) -> None:
    # StrictModes refuses an authorized_keys file below a group- or world-writable
    # directory (/tmp is one): say so plainly rather than as a failed login later.
    for d in [directory, *directory.parents]:
        st = d.stat()
        if st.st_uid != 0 or st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            raise LabError(
                f"sshd refuses keys below {d} (owned by uid {st.st_uid}, mode "
                f"{stat.filemode(st.st_mode)}): use a state dir whose parents only root can write"
            )


def ensure_keys(state: Path, nodes: list[Node]) -> None:
    """Make the client key pair and each VM's host key where missing; write authorized_keys
    and known_hosts. Keys already there are kept (a restarted VM keeps its host key)."""
    d = ssh_dir(state)
    d.mkdir(mode=0o700, parents=True, exist_ok=True)
    d.chmod(0o700)
    _check_modes(d)
    key = client_key(state)
    if not key.exists():
        _keygen("-t", "rsa", "-b", "3072", "-N", "", "-C", "cloudiag-lab", "-f", str(key))
    public = Path(f"{key}.pub").read_text().strip()
    authorized = d / "authorized_keys"
    authorized.write_text(f'from="{HYPERVISOR_ADDRESS}" {public}\n')
    authorized.chmod(0o600)
    lines = []
    for n in nodes:
        vd = vm_dir(state, n)
        vd.mkdir(mode=0o700, exist_ok=True)
        hk = host_key(state, n)
        if not hk.exists():
            _keygen("-t", "ed25519", "-N", "", "-C", f"root@{n.name}", "-f", str(hk))
        kind, blob = Path(f"{hk}.pub").read_text().split()[:2]
        lines.append(f"[{_control(n)}]:{SSH_PORT} {kind} {blob}\n")
    known_hosts(state).write_text("".join(lines))


def new_host_key(state: Path, n: Node) -> None:
    """Give the VM a new host key (as a rebuilt VM has), replacing its old one; the lab's
    known_hosts is left as it is (see ``access.rekey``)."""
    hk = host_key(state, n)
    for path in (hk, Path(f"{hk}.pub")):
        path.unlink(missing_ok=True)
    _keygen("-t", "ed25519", "-N", "", "-C", f"root@{n.name}", "-f", str(hk))


def host_key_fingerprint(state: Path, n: Node) -> str | None:
    """The fingerprint of the VM's host key, or None when it has none yet."""
    try:
        return fingerprint(Path(f"{host_key(state, n)}.pub").read_text())
    except (OSError, IndexError, ValueError):
        return None


def client_public_key(state: Path) -> str | None:
    """The client's public key line, or None when there is none yet."""
    try:
        return Path(f"{client_key(state)}.pub").read_text().strip()
    except OSError:
        return None


def is_sshd(pid: int, state: Path, n: Node) -> bool:
    """Whether ``pid`` is the listening sshd of that VM (not a connection's child).

    The listener rewrites its title ("sshd: /usr/sbin/sshd -D -e -f CFG [listener] …"), so
    the check looks for the program and this VM's configuration in the whole line.
    """
    line = " ".join(system.cmdline(pid))
    return SSHD in line and f"-f {config_path(state, n)}" in line


def pid_file_sshd(state: Path, n: Node) -> int | None:
    """The pid in the VM's sshd pid file, if that process is still that sshd."""
    try:
        pid = int((vm_dir(state, n) / "sshd.pid").read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if system.alive(pid) and is_sshd(pid, state, n) else None


def sshd_pids(ns: str, state: Path, n: Node) -> list[int]:
    """The VM's sshd listeners, from its pid file and from its network namespace."""
    found = {p for p in system.namespace_pids(ns) if is_sshd(p, state, n)}
    if (pid := pid_file_sshd(state, n)) is not None:
        found.add(pid)
    return sorted(found)


@dataclass(frozen=True)
class SshdState:
    """One VM's sshd as it really is."""

    pid: int | None
    listening: bool


def read_state(ns: str | None, state: Path, n: Node) -> SshdState:
    """Whether the VM's sshd runs (in namespace ``ns``, None: it does not exist) and listens."""
    pid = next(iter(sshd_pids(ns, state, n)), None) if ns else None
    up = pid is not None and system.listening(pid, "tcp", _control(n), SSH_PORT)
    return SshdState(pid if up else None, up)


def _log_tail(path: Path, lines: int = 5) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return ""


def start(prefix: str, ns: str, state: Path, n: Node) -> int:
    """Start the VM's sshd (a stale one is stopped first) and wait until it listens.

    The VM's network and mount namespaces must exist, and its keys (`ensure_keys`).
    Returns its pid; raises LabError with the tail of its log if it does not come up.
    """
    stop(ns, state, n)
    # openssh-server's unit makes it at boot; sshd refuses to start without it.
    PRIVSEP_DIR.mkdir(mode=0o755, exist_ok=True)
    cfg = config_path(state, n)
    cfg.write_text(config_text(state, n))
    cfg.chmod(0o600)
    logfile = vm_dir(state, n) / "sshd.log"
    pid = system.spawn_argv([*mountns.enter_argv(prefix, n, state), *argv(state, n)], logfile)
    deadline = time.monotonic() + START_TIMEOUT
    while not system.listening(pid, "tcp", _control(n), SSH_PORT):
        if not system.alive(pid) or time.monotonic() > deadline:
            system.terminate([pid])
            tail = _log_tail(logfile)
            raise LabError(f"the sshd of {n.name} did not start: {tail or 'no output'}")
        time.sleep(0.02)
    return pid


def stop(ns: str, state: Path, n: Node) -> None:
    """Stop the VM's sshd and its connections; LabError if one does not exit.

    A connection's processes outlive the listener (each is a session of its own), so
    every process of the VM's mount namespace goes with it: only sshd starts any there.
    """
    pids = {*sshd_pids(ns, state, n), *mountns.pids(state, n)}
    survivors = system.terminate(pids)
    if survivors:
        raise LabError(f"cannot stop the sshd of {n.name}: {survivors} did not exit")
