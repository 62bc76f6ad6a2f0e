"""Low-level helpers of the lab: `ip`, namespaces, processes. Argv lists only, never a shell."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

#: Where tools live when PATH lacks the sbin directories (non-login root shells, sudo -E).
_EXTRA_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

#: Time limit of one `ip` call: they are instant unless the kernel is badly stuck.
IP_TIMEOUT = 20.0

# Writes sysctls in many namespaces with one process: it enters each in turn (setns through
# libc, as Python 3.11 has no os.setns), as /proc/sys/net belongs to the opener's netns.
# IPv6 keys are skipped when the kernel has no IPv6 (booted with ipv6.disable=1).
# Arguments: NAMESPACE-FILE KEY=VALUE... "--", for each namespace.
_SYSCTL_MANY_SCRIPT = """
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWNET = 0x40000000
args = sys.argv[1:]
while args:
    end = args.index("--")
    path, items, args = args[0], args[1:end], args[end + 1:]
    fd = os.open(path, os.O_RDONLY)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), "setns " + path)
    os.close(fd)
    for item in items:
        key, value = item.split("=", 1)
        try:
            with open("/proc/sys/" + key.replace(".", "/"), "w") as fh:
                fh.write(value)
        except FileNotFoundError:
            if not key.startswith("net.ipv6."):
                raise
"""

#: Where `ip netns` keeps its named namespaces.
NETNS_DIR = Path("/run/netns")


class CommandError(Exception):
    """A command of the lab failed; the message holds the command and its stderr."""


def which(tool: str) -> str | None:
    """The full path of a tool, also looking in the sbin directories."""
    return shutil.which(tool) or shutil.which(tool, path=_EXTRA_PATH)


def _ip_path() -> str:
    return which("ip") or "ip"


def run(argv: Sequence[str], *, check: bool = True, timeout: float = IP_TIMEOUT) -> str:
    """Run a command, return its stdout; CommandError on failure when ``check``."""
    try:
        done = subprocess.run(
            list(argv),
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise CommandError(f"{' '.join(argv)}: {exc}") from exc
    if check and done.returncode != 0:
        detail = done.stderr.strip() or f"exit code {done.returncode}"
        raise CommandError(f"{' '.join(argv)}: {detail}")
    return done.stdout


def ip(*args: str, check: bool = True) -> str:
    """Run ``ip ARGS``; returns stdout."""
    return run([_ip_path(), *args], check=check)


def ip_json(*args: str) -> list[dict[str, Any]]:
    """Run ``ip -j ARGS`` and parse its JSON (old iproute2 prints nothing for an empty list)."""
    out = ip("-j", *args)
    if not out.strip():
        return []
    data = json.loads(out)
    return data if isinstance(data, list) else []


def ip_batch(
    commands: Sequence[Sequence[str]], *, namespace: str | None = None, force: bool = False
) -> None:
    """Run many ``ip`` commands in one process (``ip -batch``), in ``namespace`` if given.

    Stops at the first failure (CommandError naming it): a lab is built whole or not at
    all. ``force``: carry on past failures (a teardown removes all it can), then raise.
    """
    if not commands:
        return
    script = "".join(" ".join(c) + "\n" for c in commands)
    where = ("-n", namespace) if namespace else ()
    argv = [_ip_path(), *where, *(("-force",) if force else ()), "-batch", "-"]
    try:
        done = subprocess.run(
            argv, input=script, capture_output=True, text=True, check=False, timeout=IP_TIMEOUT
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise CommandError(f"{' '.join(argv)}: {exc}") from exc
    if done.returncode != 0:
        detail = done.stderr.strip() or f"exit code {done.returncode}"
        raise CommandError(f"{' '.join(argv)}: {detail}")


def list_namespaces() -> list[str]:
    """Names of every named network namespace on the host."""
    return sorted(str(ns["name"]) for ns in ip_json("netns", "list") if "name" in ns)


def netns_exec(namespace: str, *argv: str) -> str:
    """Run a command inside a namespace and wait for it."""
    return run([_ip_path(), "netns", "exec", namespace, *argv])


def set_sysctls_many(values: dict[str, dict[str, str]]) -> None:
    """Set sysctls in many namespaces (namespace -> key -> value) with one process."""
    args: list[str] = []
    for ns, items in values.items():
        args += [str(NETNS_DIR / ns), *(f"{k}={v}" for k, v in items.items()), "--"]
    if args:
        run([sys.executable, "-I", "-S", "-c", _SYSCTL_MANY_SCRIPT, *args])


def pids_by_namespace(namespaces: Iterable[str]) -> dict[str, list[int]]:
    """The processes living in each of these namespaces, read from /proc in one pass
    (what `ip netns pids` does, without a process per namespace)."""
    inodes: dict[tuple[int, int], str] = {}
    for ns in namespaces:
        with contextlib.suppress(OSError):
            st = (NETNS_DIR / ns).stat()
            inodes[(st.st_dev, st.st_ino)] = ns
    found: dict[str, list[int]] = {ns: [] for ns in inodes.values()}
    if not inodes:
        return found
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            st = (entry / "ns" / "net").stat()
        except OSError:
            continue
        owner = inodes.get((st.st_dev, st.st_ino))
        if owner is not None:
            found[owner].append(int(entry.name))
    return found


def namespace_pids(namespace: str) -> list[int]:
    """Processes living in a namespace (`ip netns pids`); [] if it is gone."""
    out = ip("netns", "pids", namespace, check=False)
    return [int(p) for p in out.split() if p.isdigit()]


def cmdline(pid: int) -> list[str]:
    """A process's argv, or [] if it is gone."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def alive(pid: int) -> bool:
    """True while the process exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    # The state follows the command name, which is in parentheses and may hold spaces.
    state = stat.rsplit(")", 1)[-1].split()[:1]
    return bool(state) and state[0] not in ("Z", "X")


def _reap(pid: int) -> None:
    # Lab servers started by this process are its children: collect them so that they do
    # not linger as zombies (for other processes this is a no-op).
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def terminate(pids: Iterable[int], grace: float = 2.0) -> list[int]:
    """SIGTERM, then SIGKILL after ``grace`` seconds; returns the pids that survived."""
    targets = sorted({p for p in pids if p > 1 and p != os.getpid()})
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, grace)):
        for pid in targets:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while True:
            for pid in targets:
                _reap(pid)
            targets = [p for p in targets if alive(p)]
            if not targets or time.monotonic() >= deadline:
                break
            time.sleep(0.02)
        if not targets:
            break
    return targets


def spawn_detached(namespace: str, argv: Sequence[str], log: Path) -> int:
    """Start ``argv`` in a namespace, in its own session, output to ``log``; returns its pid.

    `ip netns exec` execs the program in place, so the pid is the server's own.
    """
    return spawn_argv([_ip_path(), "netns", "exec", namespace, *argv], log)


def spawn_argv(argv: Sequence[str], log: Path) -> int:
    """Start ``argv`` detached, in its own session, output to ``log``; returns its pid.

    posix_spawn rather than Popen: the server outlives this call on purpose, and a dropped
    Popen object would warn about it.
    """
    full = list(argv)
    actions = [
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, str(log), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644),
        (os.POSIX_SPAWN_DUP2, 1, 2),
    ]
    return os.posix_spawn(full[0], full, dict(os.environ), file_actions=actions, setsid=True)


def _proc_hex(address: str) -> str:
    # /proc/net/{tcp,udp} print the raw network-order word as a host-order integer.
    return f"{int.from_bytes(socket.inet_aton(address), sys.byteorder):08X}"


def listening(pid: int, protocol: str, address: str, port: int) -> bool:
    """True if the namespace of ``pid`` has a socket bound to address:port.

    Read from /proc/PID/net, which shows the sockets of that process's namespace: no need
    to enter it. TCP must be in LISTEN state (0A); a bound UDP socket is enough.
    """
    local = f"{_proc_hex(address)}:{port:04X}"
    try:
        lines = Path(f"/proc/{pid}/net/{protocol}").read_text().splitlines()[1:]
    except OSError:
        return False
    for line in lines:
        fields = line.split()
        if len(fields) > 3 and fields[1] == local and (protocol != "tcp" or fields[3] == "0A"):
            return True
    return False
