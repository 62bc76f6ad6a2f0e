"""A real OpenSSH server for the SSH executor's tests: its own keys, config and port.

``SshServer(root)`` makes a host key, a client key pair authorized for root and an
``sshd_config`` under ``root``; ``start()`` runs ``/usr/sbin/sshd -D -e -f <config>`` on
127.0.0.1:<free port> (inside ``netns`` when given, via ``ip netns exec``), ``stop()`` kills
it, ``new_host_key()`` replaces its host key (the next start presents another one).

sshd runs in a mount namespace of its own where ``/opt`` is ``<root>/opt``: what the tests
put in the "VM" (``/opt/cloud/bin/diagnostics.py``, the zipapp under ``/opt/…``) never
touches the machine's own /opt.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from tests.pg_server import free_port
from tests.processes import children

SSHD = "/usr/sbin/sshd"
# Run in the new mount namespace: /opt becomes the test's folder, root's ~/.bashrc an empty
# file (bash reads it for every command over SSH; the machine's may run `pyenv init`, whose
# rehash lock, left by a login killed mid-way, stalls later logins), then sshd replaces it.
_MOUNT_OPT = (
    "import os, subprocess, sys; "
    "subprocess.run(['mount', '--bind', sys.argv[1], '/opt'], check=True); "
    "os.path.exists('/root/.bashrc') and subprocess.run("
    "['mount', '--bind', sys.argv[2], '/root/.bashrc'], check=True); "
    "os.execv(sys.argv[3], sys.argv[3:])"
)


def _keygen(path: Path) -> None:
    path.unlink(missing_ok=True)
    path.with_suffix(".pub").unlink(missing_ok=True)
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "cloudiag-test", "-f", str(path)],
        check=True,
    )


def fingerprint(public_key: Path) -> str:
    """The SHA256 fingerprint of a public key file, as ssh-keygen prints it."""
    out = subprocess.run(
        ["ssh-keygen", "-l", "-E", "sha256", "-f", str(public_key)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return out.split()[1]


class SshServer:
    """One sshd with keys of its own, started and stopped by the test."""

    def __init__(self, root: Path, *, netns: str | None = None, port: int | None = None) -> None:
        self.root = root
        self.netns = netns
        self.port = port or free_port()
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.host_key = root / "host_ed25519"
        self.client_key = root / "id_client"
        self.other_key = root / "id_other"
        _keygen(self.host_key)
        _keygen(self.client_key)
        _keygen(self.other_key)
        authorized = root / "authorized_keys"
        authorized.write_bytes(self.client_key.with_suffix(".pub").read_bytes())
        authorized.chmod(0o600)
        self.config = root / "sshd_config"
        self.config.write_text(
            f"Port {self.port}\n"
            "ListenAddress 127.0.0.1\n"
            f"HostKey {self.host_key}\n"
            f"AuthorizedKeysFile {authorized}\n"
            "PidFile none\n"
            "PermitRootLogin prohibit-password\n"
            "PubkeyAuthentication yes\n"
            "PasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\n"
            "UsePAM no\n"
            # The keys sit under /tmp, which is world-writable: StrictModes would refuse them.
            "StrictModes no\n"
            "Subsystem sftp internal-sftp\n"
            "LogLevel VERBOSE\n"
        )
        self.opt = root / "opt"
        self.opt.mkdir(exist_ok=True)
        self.bashrc = root / "bashrc"
        self.bashrc.touch()
        self.log = root / "sshd.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def fingerprint(self) -> str:
        """The fingerprint of the host key it presents."""
        return fingerprint(self.host_key.with_suffix(".pub"))

    def new_host_key(self) -> None:
        """Replace the host key (takes effect at the next start)."""
        _keygen(self.host_key)

    def start(self) -> None:
        """Run sshd and wait until it accepts connections."""
        # sshd's privilege separation needs this folder (Debian makes it at boot).
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
        argv = [
            *("unshare", "--mount", "--propagation", "private", "--"),
            *(sys.executable, "-c", _MOUNT_OPT, str(self.opt), str(self.bashrc)),
            *(SSHD, "-D", "-e", "-f", str(self.config)),
        ]
        if self.netns is not None:
            argv = ["ip", "netns", "exec", self.netns, *argv]
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=log)
        deadline = time.monotonic() + 10
        while not self._listening():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"sshd did not start: {self.log.read_text()[-2000:]}")
            time.sleep(0.05)

    def _listening(self) -> bool:
        if self.netns is not None:
            out = subprocess.run(
                ["ip", "netns", "exec", self.netns, "ss", "-Hltn", f"sport = :{self.port}"],
                capture_output=True,
                text=True,
            ).stdout
            return bool(out.strip())
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", self.port)) == 0

    def stop(self) -> None:
        """Kill sshd and every process it started, as when the VM's sshd dies.

        Each connection's sshd calls setsid(), so a process group does not reach them:
        walk the process tree instead.
        """
        if self.proc is None:
            return
        doomed = _descendants(self.proc.pid)
        self.proc.kill()
        self.proc.wait()
        for pid in doomed:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.proc = None

    def pause(self, signum: int = signal.SIGSTOP) -> None:
        """Freeze sshd and everything it started (SIGCONT to thaw): a VM that hangs."""
        assert self.proc is not None
        for pid in [self.proc.pid, *_descendants(self.proc.pid)]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    def resume(self) -> None:
        """Thaw what ``pause`` froze."""
        self.pause(signal.SIGCONT)


def _descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        for child in children(todo.pop()):
            found.append(child)
            todo.append(child)
    return found


@contextlib.contextmanager
def running(root: Path, netns: str | None = None) -> Iterator[SshServer]:
    """An SshServer of its own in ``root`` (inside ``netns`` if given), started, and stopped
    with everything it started at the end, even on failure."""
    server = SshServer(root, netns=netns)
    server.start()
    try:
        yield server
    finally:
        server.stop()
