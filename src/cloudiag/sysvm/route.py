"""Which interface the routing table uses for a destination (arping needs ``-I``)."""

from __future__ import annotations

import json
import subprocess

from .process import tool_env
from .tokens import is_interface_name, parse_ip


def _run_quiet(argv: list[str]) -> str | None:
    try:
        done = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=5,
            env=tool_env(),
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0:
        return None
    return done.stdout.decode("utf-8", errors="replace")


def _route_dev_ip(target: str) -> tuple[str, bool] | None:
    """(device, is_local) from ``ip route get``, JSON first, then the text form."""
    text = _run_quiet(["ip", "-j", "route", "get", target])
    if text is not None:
        try:
            routes = json.loads(text)
        except ValueError:
            routes = None
        if isinstance(routes, list) and routes and isinstance(routes[0], dict):
            dev = routes[0].get("dev")
            if isinstance(dev, str):
                return dev, routes[0].get("type") == "local"
    # Old iproute2 without -j: "192.0.2.1 dev eth0 src 192.0.2.2 uid 0".
    text = _run_quiet(["ip", "route", "get", target])
    if text is not None:
        words = text.split()
        if "dev" in words[:-1]:
            return words[words.index("dev") + 1], bool(words) and words[0] == "local"
    return None


def _route_dev_proc(target: str, path: str = "/proc/net/route") -> str | None:
    """Longest-prefix match of an IPv4 address in /proc/net/route (no ``ip`` needed)."""
    import socket
    import struct

    try:
        with open(path, encoding="ascii", errors="replace") as handle:
            lines = handle.read().splitlines()[1:]
    except OSError:
        return None
    # /proc prints the addresses as the host stores them, so use native byte order too.
    (addr,) = struct.unpack("=I", socket.inet_aton(target))
    best: tuple[int, int, str] | None = None
    for line in lines:
        cols = line.split()
        if len(cols) < 8:
            continue
        try:
            dest, flags, metric, mask = (int(cols[i], 16) for i in (1, 3, 6, 7))
        except ValueError:
            continue
        if not flags & 1 or addr & mask != dest:  # RTF_UP
            continue
        prefix = bin(mask).count("1")
        key = (prefix, -metric, cols[0])
        if best is None or key[:2] > best[:2]:
            best = key
    return best[2] if best else None


def _owner_of_local(target: str) -> str | None:
    """The interface carrying a local IPv4 address (for arping one's own address)."""
    text = _run_quiet(["ip", "-j", "-4", "addr", "show"])
    if text is None:
        return None
    try:
        links = json.loads(text)
    except ValueError:
        return None
    for link in links if isinstance(links, list) else []:
        for info in link.get("addr_info", []) if isinstance(link, dict) else []:
            if isinstance(info, dict) and info.get("local") == target:
                name = link.get("ifname")
                return name if isinstance(name, str) and name != "lo" else None
    return None


def choose_interface(address: str) -> str | None:
    """Pick the interface the routing table uses for ``address`` (IPv4 literal or name).

    Used for arping, which needs ``-I`` on hosts with several interfaces. Returns None
    when nothing suitable is found, leaving the choice to the tool.
    """
    import socket

    ip = parse_ip(address)
    if ip is None:
        try:
            infos = socket.getaddrinfo(address, None, socket.AF_INET, socket.SOCK_DGRAM)
        except (OSError, UnicodeError):
            return None
        if not infos:
            return None
        target = str(infos[0][4][0])
    elif ip.version == 4:
        target = str(ip)
    else:
        return None
    found = _route_dev_ip(target)
    dev = found[0] if found else _route_dev_proc(target)
    if dev == "lo" or (found is not None and found[1]):
        dev = _owner_of_local(target)
    if dev is None or not is_interface_name(dev):
        return None
    return dev
