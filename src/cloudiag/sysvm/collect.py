"""getDiagnosticsData on the VM: its files, network state and scripts' output, in one zip.

``collect [--root DIR]... [--max-file N] [--max-zip N] -- ITEM...`` (a warm session's run
with these words, or the one-shot script's). Each ITEM is, as in CloudStack 4.14's
``get_diagnostics_files.py``, a keyword (``iptables``, ``ipaddr``, ``iprule``, ``iproute``:
that command's output), ``[name]`` (the output of the script ``/opt/cloud/bin/name``) or an
absolute file path under one of the allowed roots. The zip holds what was found and
``fileinfo.txt``, saying for every item what was collected, or why not; it goes back as
"zip" records (base64 pieces of at most CHUNK bytes) before the exit record.

The management server checks the same items with ``check_items`` (its wall); here they are
checked again, and a file is read only once its resolved path is found under a resolved
root and it is a regular file (no device, FIFO or socket is even opened), opened with
O_NOFOLLOW, found to be the same inode, and opened (as the kernel says) under a root: a
symlink out of the roots, or one swapped in meanwhile, is refused. At most max-file bytes
are kept of each item, max-zip in all.
"""

from __future__ import annotations

import base64
import io
import os
import posixpath
import re
import stat
import subprocess

from . import vm_types
from .errors import DiagnosticsInputError
from .frozen import Frozen, set_fields
from .process import tool_env

TYPE_CHECKING = False
if TYPE_CHECKING:
    import threading
    from collections.abc import Iterable, Sequence

    from .framing import RecordWriter

#: The first word of a collection's arguments (the rest are parse_arguments').
COMMAND = "collect"
#: The job type a collection is known by in logs and records (it is no diagnostic type).
TYPE_NAME = "diagnosticsdata"
#: The CloudStack parameter the items come in.
FIELD = "files"

#: What each keyword runs, from an argv list.
KEYWORDS = {
    "iptables": ("iptables-save",),
    "ipaddr": ("ip", "address", "show"),
    "iprule": ("ip", "rule", "list"),
    "iproute": ("ip", "route", "show", "table", "all"),
}
#: Where a ``[name]`` script lives (CloudStack's system VMs keep theirs there).
SCRIPT_DIR = "/opt/cloud/bin"
_SCRIPT_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]{0,63}")

#: The roots file paths may be under unless the operator sets others.
DEFAULT_ROOTS = ("/etc", "/var/log", "/var/lib/misc", "/opt/cloud", "/usr/local/cloud")
#: Never a root, nor anything under them: kernel and device trees.
FORBIDDEN = ("/dev", "/proc", "/sys")
MAX_ROOTS = 32

#: CloudStack 4.14's defaults per VM type (diagnostics.data.router.defaults, …ssvm…, …cpvm…).
_NETWORK = ("iptables", "ipaddr", "iprule", "iproute")
ROUTER_DEFAULTS = (
    *_NETWORK,
    "/etc/cloudstack-release",
    "/etc/dnsmasq.conf",
    "/etc/dhcphosts.txt",
    "/etc/dhcpopts.txt",
    "/etc/dnsmasq.d/cloud.conf",
    "/etc/dnsmasq-resolv.conf",
    "/var/lib/misc/dnsmasq.leases",
    "/var/log/dnsmasq.log",
    "/etc/hosts",
    "/etc/resolv.conf",
    "/etc/haproxy/haproxy.cfg",
    "/var/log/haproxy.log",
    "/etc/ipsec.d/l2tp.conf",
    "/var/log/cloud.log",
    "/var/log/routerServiceMonitor.log",
    "/var/log/daemon.log",
)
SYSTEMVM_DEFAULTS = (
    *_NETWORK,
    "/etc/cloudstack-release",
    "/usr/local/cloud/systemvm/conf/agent.properties",
    "/usr/local/cloud/systemvm/conf/consoleproxy.properties",
    "/var/log/cloud.log",
    "/var/log/patchsystemvm.log",
    "/var/log/daemon.log",
)
DEFAULTS = {
    vm_types.DOMAIN_ROUTER: ROUTER_DEFAULTS,
    vm_types.SECONDARY_STORAGE: SYSTEMVM_DEFAULTS,
    vm_types.CONSOLE_PROXY: SYSTEMVM_DEFAULTS,
}

MAX_ITEMS = 64
#: The longest item (CloudStack's own `files` parameter allows no more per path).
MAX_ITEM_LENGTH = 255
#: Default caps: bytes kept of one item, and of the whole zip.
MAX_FILE = 4 << 20
MAX_ZIP = 16 << 20
#: The highest caps an operator may set (the agent holds one zip in memory).
MAX_FILE_LIMIT = 64 << 20
MAX_ZIP_LIMIT = 64 << 20
#: Bytes of zip in one "zip" record (its base64 is 4/3 of it, within every line limit).
CHUNK = 48 * 1024
#: How long one command or script may run.
COMMAND_TIMEOUT = 30.0
INFO_NAME = "fileinfo.txt"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class Item(Frozen):
    """One checked item: ``kind`` is "keyword", "script" or "file"; ``member`` is its name
    in the zip."""

    __slots__ = ("kind", "member", "text")
    kind: str
    text: str
    member: str

    def __init__(self, kind: str, text: str, member: str) -> None:
        set_fields(self, kind=kind, text=text, member=member)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Item) and (self.kind, self.text) == (other.kind, other.text)

    def __hash__(self) -> int:
        return hash((self.kind, self.text))


def _refuse(message: str) -> DiagnosticsInputError:
    return DiagnosticsInputError(FIELD, message)


def _under(path: str, roots: Iterable[str]) -> bool:
    return any(path == root or path.startswith(root.rstrip("/") + "/") for root in roots)


def _plain_absolute(path: str) -> bool:
    """Absolute, with no empty, "." or ".." component (so nothing for normpath to change)."""
    return path.startswith("/") and all(part not in ("", ".", "..") for part in path[1:].split("/"))


def check_roots(roots: Sequence[str]) -> tuple[str, ...]:
    """The allowed roots, checked: absolute plain paths, never / nor a kernel tree."""
    if not roots:
        raise _refuse("no allowed roots: name at least one directory")
    if len(roots) > MAX_ROOTS:
        raise _refuse(f"at most {MAX_ROOTS} allowed roots")
    for root in roots:
        if _CONTROL.search(root) or not _plain_absolute(root) or root == "/":
            raise _refuse(f"an allowed root must be an absolute plain path, not {root!r}")
        if _under(root, FORBIDDEN) or any(_under(f, [root]) for f in FORBIDDEN):
            raise _refuse(f"{root} cannot be an allowed root (it holds device or kernel files)")
    return tuple(roots)


def parse_item(text: str, roots: Sequence[str]) -> Item:
    """One item checked against the roots; DiagnosticsInputError says why it is refused."""
    shown = repr(text[:80])
    if not text or len(text) > MAX_ITEM_LENGTH:
        raise _refuse(f"an item of files must be 1 to {MAX_ITEM_LENGTH} characters: {shown}")
    if _CONTROL.search(text):
        raise _refuse(f"an item of files contains control characters: {shown}")
    if text in KEYWORDS:
        return Item("keyword", text, f"{text}.txt")
    if text.startswith("["):
        name = text[1:-1] if text.endswith("]") else ""
        if not _SCRIPT_RE.fullmatch(name) or ".." in name:
            raise _refuse(
                f"a script item is [name], a bare file name of {SCRIPT_DIR} (no path): {shown}"
            )
        return Item("script", text, f"scripts/{name}.txt")
    if not text.startswith("/"):
        raise _refuse(
            f"{shown} is neither a keyword ({', '.join(KEYWORDS)}), a [script] nor an absolute path"
        )
    if not _plain_absolute(text):
        raise _refuse(f"a path must not hold '..', '.' or '//' components: {shown}")
    if _under(text, FORBIDDEN):
        raise _refuse(f"{shown} is under {', '.join(FORBIDDEN)}: device and kernel files")
    if not _under(text, roots):
        raise _refuse(f"{shown} is outside the allowed roots ({', '.join(roots)})")
    return Item("file", text, text.lstrip("/"))


def check_items(items: Sequence[str], roots: Sequence[str]) -> list[Item]:
    """Every item checked (duplicates dropped, in order); DiagnosticsInputError otherwise."""
    if not items:
        raise _refuse("no items to collect")
    if len(items) > MAX_ITEMS:
        raise _refuse(f"at most {MAX_ITEMS} items, not {len(items)}")
    checked: list[Item] = []
    for text in items:
        item = parse_item(text, roots)
        if item not in checked:
            checked.append(item)
    return checked


def split_files(text: str) -> list[str]:
    """The items of CloudStack's comma-separated ``files`` parameter."""
    return [part.strip() for part in text.split(",") if part.strip()]


def check_cap(name: str, value: int, ceiling: int) -> int:
    """A size cap in (0, ceiling]."""
    if not 0 < value <= ceiling:
        raise _refuse(f"{name} must be 1 to {ceiling} bytes, not {value}")
    return value


def collect_arguments(
    items: Sequence[str], roots: Sequence[str], max_file: int, max_zip: int
) -> list[str]:
    """The words that ask the VM for a collection (what ``parse_arguments`` reads)."""
    words = [COMMAND]
    for root in roots:
        words += ["--root", root]
    return [*words, "--max-file", str(max_file), "--max-zip", str(max_zip), "--", *items]


class Request(Frozen):
    """A checked collection: its items, roots and caps."""

    __slots__ = ("items", "max_file", "max_zip", "roots")
    items: list[Item]
    roots: tuple[str, ...]
    max_file: int
    max_zip: int

    def __init__(
        self, items: list[Item], roots: tuple[str, ...], max_file: int, max_zip: int
    ) -> None:
        set_fields(self, items=items, roots=roots, max_file=max_file, max_zip=max_zip)


def parse_arguments(args: Sequence[str]) -> Request:
    """The request of ``collect``'s words (after COMMAND); DiagnosticsInputError if not one."""
    args = list(args)
    roots: list[str] = []
    caps = {"--max-file": MAX_FILE, "--max-zip": MAX_ZIP}
    while args and args[0] != "--":
        flag = args.pop(0)
        if flag not in ("--root", *caps) or not args:
            raise _refuse(f"collect: unknown option or missing value: {flag[:40]!r}")
        value = args.pop(0)
        if flag == "--root":
            roots.append(value)
        elif value.isdigit() and len(value) < 12:
            caps[flag] = int(value)
        else:
            raise _refuse(f"collect: {flag} needs a number of bytes")
    if not args:
        raise _refuse("collect: the items follow '--'")
    checked_roots = check_roots(roots or DEFAULT_ROOTS)
    return Request(
        check_items(args[1:], checked_roots),
        checked_roots,
        check_cap("--max-file", caps["--max-file"], MAX_FILE_LIMIT),
        check_cap("--max-zip", caps["--max-zip"], MAX_ZIP_LIMIT),
    )


def _read_file(path: str, real_roots: Sequence[str], cap: int) -> tuple[bytes | None, str]:
    """(the file's first ``cap`` bytes, a note) or (None, why it was not read)."""
    real = os.path.realpath(path)
    if not _under(real, real_roots):
        return None, f"refused: it resolves to {real}, outside the allowed roots"
    try:
        before = os.lstat(real)
    except FileNotFoundError:
        return None, "not found"
    except OSError as exc:
        return None, f"cannot be read: {exc.strerror}"
    if not stat.S_ISREG(before.st_mode):
        # Never opened: opening a device or a FIFO can block or act.
        return None, "refused: not a regular file"
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
    try:
        fd = os.open(real, flags)
    except OSError as exc:
        return None, f"cannot be read: {exc.strerror}"
    try:
        after = os.fstat(fd)
        if (after.st_dev, after.st_ino) != (before.st_dev, before.st_ino) or not stat.S_ISREG(
            after.st_mode
        ):
            return None, "refused: it changed while it was opened"
        # Where the open really led (a directory of the path swapped for a symlink after
        # realpath would lead lstat and open alike out of the roots).
        opened = _opened_path(fd)
        if opened is not None and not _under(opened, real_roots):
            return None, f"refused: it was opened as {opened}, outside the allowed roots"
        with os.fdopen(os.dup(fd), "rb") as fh:
            data = fh.read(cap + 1)
    finally:
        os.close(fd)
    return _capped(data, cap)


def _opened_path(fd: int) -> str | None:
    """The path the kernel holds for an open file (Linux's /proc), or None where unknown."""
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return None


def _capped(data: bytes, cap: int) -> tuple[bytes, str]:
    if len(data) > cap:
        return data[:cap], f" (truncated at {cap} bytes)"
    return data, ""


def _run(argv: Sequence[str], cap: int) -> tuple[bytes | None, str]:
    """(what the command printed, stdout then stderr, and a note) or (None, why not)."""
    try:
        done = subprocess.run(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=tool_env(),
            timeout=COMMAND_TIMEOUT,
            start_new_session=True,
            check=False,
        )
    except FileNotFoundError:
        return None, f"{argv[0]} is not installed"
    except subprocess.TimeoutExpired:
        return None, f"{argv[0]} did not end within {COMMAND_TIMEOUT:g} s"
    except OSError as exc:
        return None, f"{argv[0]} cannot be run: {exc.strerror}"
    data, note = _capped(done.stdout or b"", cap)
    status = f" (exit status {done.returncode})" if done.returncode else ""
    return data, status + note


def _script(name: str, cap: int) -> tuple[bytes | None, str]:
    folder = os.path.realpath(SCRIPT_DIR)
    real = os.path.realpath(posixpath.join(SCRIPT_DIR, name))
    if not _under(real, [folder]) or real == folder:
        return None, f"refused: it resolves to {real}, outside {SCRIPT_DIR}"
    try:
        info = os.lstat(real)
    except FileNotFoundError:
        return None, "not found"
    except OSError as exc:
        return None, f"cannot be run: {exc.strerror}"
    if not stat.S_ISREG(info.st_mode) or not info.st_mode & 0o111:
        return None, "refused: not an executable regular file"
    return _run([real], cap)


def gather(item: Item, real_roots: Sequence[str], cap: int) -> tuple[bytes | None, str]:
    """One item's content and a note, or None and why it is missing."""
    if item.kind == "keyword":
        return _run(KEYWORDS[item.text], cap)
    if item.kind == "script":
        return _script(item.text[1:-1], cap)
    return _read_file(item.text, real_roots, cap)


def build_zip(req: Request, stop: threading.Event | None = None) -> bytes:
    """The zip of the request's items and its fileinfo.txt."""
    # Imported here: the one-shot script's start-up does without it.
    import zipfile

    real_roots = [os.path.realpath(root) for root in req.roots]
    info: list[str] = []
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for item in req.items:
            if stop is not None and stop.is_set():
                info.append(f"{item.text}: MISSING (cancelled)")
                continue
            data, note = gather(item, real_roots, req.max_file)
            if data is None:
                info.append(f"{item.text}: MISSING ({note})")
            elif buf.tell() + len(data) + 1024 > req.max_zip:
                # Counted uncompressed: the zip can only be smaller.
                info.append(f"{item.text}: MISSING (the zip would exceed {req.max_zip} bytes)")
            else:
                zf.writestr(item.member, data)
                info.append(f"{item.text}: collected as {item.member}, {len(data)} bytes{note}")
        zf.writestr(INFO_NAME, "\n".join(info) + "\n")
    return buf.getvalue()


def run(args: Sequence[str], writer: RecordWriter, stop: threading.Event | None = None) -> int:
    """Check the words, build the zip and send it as "zip" records; the exit code."""
    try:
        req = parse_arguments(args)
    except DiagnosticsInputError as exc:
        writer.write("refused", exc.message)
        writer.write("exit", code=-1)
        return 2
    data = build_zip(req, stop)
    for start in range(0, len(data), CHUNK):
        writer.write("zip", base64.b64encode(data[start : start + CHUNK]).decode("ascii"))
    writer.write("exit", code=0)
    return 0
