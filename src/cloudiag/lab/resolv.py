"""Each lab namespace's resolver files, so that names looked up in the lab ask the lab.

``/etc/netns/<namespace>/resolv.conf`` points at the lab's DNS server; `ip netns exec`
mounts it over /etc/resolv.conf, so a lookup inside the lab never reaches the host's
resolver. The lab's names have A and AAAA records; ``gai.conf`` beside it puts IPv4 first,
so a diagnostic aimed at a name goes over IPv4 unless it asks for IPv6 (``ping -6``,
``ping6``), as it did before the lab had IPv6. Only files written here are ever removed.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

from cloudiag.lab.topology import DNS, DNS_DOMAIN

log = logging.getLogger(__name__)

#: `ip netns exec NS` bind-mounts every file of /etc/netns/NS over the one of /etc.
ETC_NETNS = Path("/etc/netns")
_RESOLV_MARK = "# cloudiag lab: names resolve through the lab's own DNS server"
_GAI_MARK = "# cloudiag lab: IPv4 addresses first (RFC 6724's table, ::ffff:0:0/96 raised)"

#: A gai.conf with a precedence line replaces glibc's whole table: the default one, with
#: IPv4-mapped addresses moved to the top.
_GAI_CONF = f"""{_GAI_MARK}
precedence ::1/128 50
precedence ::/0 40
precedence 2002::/16 30
precedence ::/96 20
precedence ::ffff:0:0/96 100
"""


def _files() -> dict[str, str]:
    return {
        "resolv.conf": (
            f"{_RESOLV_MARK}\nnameserver {DNS}\nsearch {DNS_DOMAIN}\noptions timeout:1 attempts:2\n"
        ),
        "gai.conf": _GAI_CONF,
    }


def write_resolv(ns: str) -> None:
    """Point namespace `ns` at the lab's DNS server; best effort, a failure is logged."""
    d = ETC_NETNS / ns
    for name, text in _files().items():
        # Without the host's file to mount over, `ip netns exec` would warn on every call
        # (noise in every diagnostic's stderr): then the lab just does without.
        if not Path("/etc", name).exists():
            continue
        # Best effort: a read-only /etc only costs name resolution inside the lab.
        try:
            d.mkdir(parents=True, exist_ok=True)
            (d / name).write_text(text)
        except OSError as exc:
            log.warning("cannot write %s: %s", d / name, exc)


def remove_resolv(ns: str) -> None:
    """Remove the files `write_resolv` made for `ns`, and its directory if empty."""
    for name, mark in (("resolv.conf", _RESOLV_MARK), ("gai.conf", _GAI_MARK)):
        path = ETC_NETNS / ns / name
        with contextlib.suppress(OSError):
            # Only a file this module wrote: someone's own netns config is not ours to remove.
            if path.read_text().startswith(mark):
                path.unlink()
    with contextlib.suppress(OSError):
        (ETC_NETNS / ns).rmdir()


def remove_lab_resolv(prefix: str) -> None:
    """`remove_resolv` for every namespace of the lab ``prefix`` that has files here,
    whatever its size (prefixes have no "-": ``<prefix>-`` is that lab's alone)."""
    with contextlib.suppress(OSError):
        for d in ETC_NETNS.glob(f"{prefix}-*"):
            remove_resolv(d.name)
