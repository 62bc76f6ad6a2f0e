"""Each system VM's own files: a persistent mount namespace per VM.

Why persistent (``unshare --mount=<file>``, the file bound under the lab's state dir) rather
than a private namespace made when sshd starts: everything that enters the VM sees the same
files (sshd and its sessions, a test, later the netns executor), files can be added while
the VM runs, and `lab status` can look inside without a process there. It lives and dies
with the VM: made at `start`, unmounted at `stop` and `down`.

What a VM sees in it is the host's tree with three changes, as ``ip netns exec`` gives:
the files of ``/etc/netns/<ns>/`` bound over those of /etc (the lab's resolv.conf), a sysfs
of the VM's network namespace on /sys, and the VM's own paths: each one a file or directory
of ``<state>/vms/<vm>/root/<path>`` bound over ``<path>``. A path missing on the host (such
as /opt/cloud) gets its mount point from an overlay of its nearest existing parent whose
upper layer holds only that mount point, so nothing of the host is hidden; an overlay is
refused on ``/`` or on a directory with mounts below it (an overlay would hide those).
Binds of a directory show a change made in the state dir at once (no remount).
"""

from __future__ import annotations

import contextlib
import logging
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path, PurePosixPath

from cloudiag.lab import system
from cloudiag.lab.errors import LabError
from cloudiag.lab.resolv import ETC_NETNS
from cloudiag.lab.topology import Node, namespace

log = logging.getLogger(__name__)

#: Where `ip netns` keeps its namespace files.
NETNS_RUN = Path("/run/netns")


def ns_dir(state: Path) -> Path:
    """The directory of the lab's mount-namespace files (a private mount of its own)."""
    return state / "mntns"


def ns_file(state: Path, n: Node) -> Path:
    """The file a VM's mount namespace is bound to."""
    return ns_dir(state) / n.name


def vm_root(state: Path, n: Node) -> Path:
    """The tree of a VM's own files: ``<vm_root>/opt/cloud`` is the VM's /opt/cloud."""
    return state / "vms" / n.name / "root"


def enter_argv(prefix: str, n: Node, state: Path) -> list[str]:
    """The argv prefix that runs a program in the VM: its mount and network namespaces.

    `nsenter` execs the program in place, so the pid of what it starts is the program's.
    """
    return [
        _nsenter(),
        f"--mount={ns_file(state, n)}",
        f"--net={NETNS_RUN / namespace(prefix, n)}",
        "--",
    ]


def _nsenter() -> str:
    return system.which("nsenter") or "nsenter"


def _mount(*args: str) -> list[str]:
    return [system.which("mount") or "mount", *args]


def _umount(*args: str) -> list[str]:
    return [system.which("umount") or "umount", *args]


def _mount_points(mountinfo: str) -> list[str]:
    # Field 5 of mountinfo is the mount point, octal-escaped (\040 for a space).
    fields = (line.split() for line in mountinfo.splitlines())
    return [f[4].encode().decode("unicode_escape") for f in fields if len(f) > 4]


def is_mounted(path: Path) -> bool:
    """Whether ``path`` is a mount point in this (the root) mount namespace."""
    try:
        return str(path) in _mount_points(Path("/proc/self/mountinfo").read_text())
    except OSError:
        return False


def exists(state: Path, n: Node) -> bool:
    """Whether the VM's mount namespace is there (its file is bound)."""
    return is_mounted(ns_file(state, n))


def pids(state: Path, n: Node) -> list[int]:
    """Every process in the VM's mount namespace (sshd, its sessions, what they run)."""
    try:
        inode = ns_file(state, n).stat().st_ino
    except OSError:
        return []
    if not exists(state, n):
        return []
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if (entry / "ns" / "mnt").stat().st_ino == inode:
                    found.append(int(entry.name))
    return found


def _private_dir(directory: Path) -> None:
    # A mount-namespace file may only be bound on a private mount (the kernel refuses one
    # that would propagate into the namespace itself); on systemd hosts / is shared.
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not is_mounted(directory):
        system.run(_mount("--bind", str(directory), str(directory)))
        system.run(_mount("--make-private", str(directory)))


def _in_vm(prefix: str, n: Node, state: Path, *argv: str) -> str:
    return system.run([*enter_argv(prefix, n, state), *argv])


def _below(root: PurePosixPath, mounts: Iterable[str]) -> list[str]:
    return [m for m in mounts if PurePosixPath(m) != root and PurePosixPath(m).is_relative_to(root)]


def _make_mount_point(
    prefix: str, n: Node, state: Path, target: PurePosixPath, is_dir: bool
) -> None:
    """Give the VM a mount point at ``target`` through an overlay of its nearest parent."""
    parent = target.parent
    while not Path(parent).exists():
        parent = parent.parent
    mounts = _mount_points(_in_vm(prefix, n, state, "cat", "/proc/self/mountinfo"))
    layers = state / "vms" / n.name / "overlay" / str(parent).strip("/").replace("/", "_")
    if str(parent) in mounts and (layers / "upper").is_dir():
        # The overlay made for an earlier path is there: the point is made through it
        # (in its upper layer), as a second overlay on one work dir cannot be mounted.
        made = ("mkdir", "-p", str(target)) if is_dir else ("touch", str(target))
        _in_vm(prefix, n, state, *made)
        return
    if parent == PurePosixPath("/") or _below(parent, mounts):
        raise LabError(
            f"cannot give {n.name} its own {target}: {parent} does not have it and an "
            "overlay there would hide the mounts below it"
        )
    upper, work = layers / "upper", layers / "work"
    point = upper / target.relative_to(parent)
    (point if is_dir else point.parent).mkdir(parents=True, exist_ok=True)
    if not is_dir:
        point.touch()
    work.mkdir(parents=True, exist_ok=True)
    options = f"lowerdir={parent},upperdir={upper},workdir={work}"
    _in_vm(prefix, n, state, *_mount("-t", "overlay", "overlay", "-o", options, str(parent)))


def add(prefix: str, n: Node, state: Path, path: str) -> None:
    """Give the running VM its own ``path`` (absolute): the same path under `vm_root`,
    which must exist, bound over it in the VM's mount namespace."""
    target = PurePosixPath(path)
    source = vm_root(state, n) / target.relative_to("/")
    if not Path(target).exists():
        _make_mount_point(prefix, n, state, target, source.is_dir())
    _in_vm(prefix, n, state, *_mount("--bind", str(source), str(target)))


def release(prefix: str, n: Node, state: Path, path: str) -> None:
    """Undo `add` of a path the host has: unmount the VM's own ``path``, which shows the
    host's again (a mount point made by an overlay stays until the VM stops)."""
    _in_vm(prefix, n, state, *_umount(path))


def create(
    prefix: str, n: Node, state: Path, paths: Sequence[str], optional: Sequence[str] = ()
) -> None:
    """Make the VM's mount namespace (its network namespace must exist) with its own paths.

    ``paths`` are absolute paths in the VM, each backed by the same path under
    `vm_root` (which must exist); so are ``optional`` ones, but one that cannot be given
    (say, a host whose /etc has mounts below it, as in a container) is logged and left
    out. Idempotent: an existing namespace is made again.
    """
    remove(state, n)
    _private_dir(ns_dir(state))
    target = ns_file(state, n)
    target.touch(mode=0o600)
    netns = NETNS_RUN / namespace(prefix, n)
    # Slave: unmounts in the root namespace (a deleted network namespace's file) reach this
    # one, and nothing mounted here goes back. Mount-namespace files are never copied into
    # a new namespace (the kernel skips them), so no VM's namespace pins another's.
    unshare = [system.which("unshare") or "unshare", f"--mount={target}"]
    system.run([_nsenter(), f"--net={netns}", "--", *unshare, "--propagation", "slave", "true"])
    try:
        # The VM's own paths first: an overlay made for one then lies below the binds of /etc.
        for path in paths:
            add(prefix, n, state, path)
        for path in optional:
            try:
                add(prefix, n, state, path)
            except (LabError, system.CommandError) as exc:
                log.warning("%s does not get its own %s: %s", n.name, path, exc)
        etc = ETC_NETNS / namespace(prefix, n)
        for item in sorted(etc.iterdir()) if etc.is_dir() else []:
            if Path("/etc", item.name).exists():
                _in_vm(prefix, n, state, *_mount("--bind", str(item), f"/etc/{item.name}"))
        # The VM's own sysfs (its NICs in /sys/class/net), as `ip netns exec` mounts it.
        _in_vm(prefix, n, state, *_umount("--lazy", "/sys"))
        _in_vm(prefix, n, state, *_mount("-t", "sysfs", "sysfs", "/sys"))
    except BaseException:
        remove(state, n)
        raise


def remove(state: Path, n: Node) -> None:
    """Unmount and remove the VM's mount namespace file; nothing happens if there is none.

    The namespace ends with its last process (the VM's processes are stopped first).
    """
    target = ns_file(state, n)
    if is_mounted(target):
        system.run(_umount(str(target)))
    with contextlib.suppress(FileNotFoundError):
        target.unlink()


def remove_all(state: Path, nodes: Iterable[Node]) -> list[str]:
    """Remove every VM's mount namespace and the private mount of their directory.

    Returns what could not be removed, one message each (empty when all went).
    """
    errors: list[str] = []
    for n in nodes:
        try:
            remove(state, n)
        except system.CommandError as exc:
            errors.append(str(exc))
    directory = ns_dir(state)
    # Stray files of a VM no longer declared: the directory's own entries, never other paths.
    for stray in directory.iterdir() if directory.is_dir() else []:
        if is_mounted(stray):
            try:
                system.run(_umount(str(stray)))
            except system.CommandError as exc:
                errors.append(str(exc))
    if is_mounted(directory):
        try:
            system.run(_umount(str(directory)))
        except system.CommandError as exc:
            errors.append(str(exc))
    if not errors:
        shutil.rmtree(directory, ignore_errors=True)
    return errors
